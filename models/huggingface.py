"""A Hugging Face checkpoint directory: config.json, the weights in safetensors files (one, or shards listed by
model.safetensors.index.json) in float32, float16 or bfloat16, and the tokenizer files.

Safetensors is read here, memory-mapped: an 8-byte little-endian header length, a JSON header giving each tensor's
dtype, shape and [begin, end) byte offsets into the data that follows, row-major little-endian values.
"""
import json
from pathlib import Path

import numpy as np

from models.errors import ModelError, UnsupportedModelError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
FLOAT_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}  # bfloat16: raw bits


def is_hf_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def read_hf_config(directory: Path) -> dict:
    return _read_json(directory / "config.json")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path} is not valid JSON: {e}") from None


def safetensors_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint: the shards its index names, or its single model.safetensors."""
    if (directory / INDEX).is_file():
        weight_map = _read_json(directory / INDEX).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(f"{directory / INDEX} has no weight_map")
        files = [directory / name for name in sorted(set(weight_map.values()))]
    else:
        files = [directory / SINGLE]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ModelError(f"{directory}: weight files missing: {', '.join(missing)}")
    return files


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of one file as float32 (float16 and bfloat16 widen exactly)."""
    data = np.memmap(path, dtype=np.uint8, mode="r")
    if len(data) < 8:
        raise ModelError(f"{path.name} is not a safetensors file (too short)")
    header_len = int(np.frombuffer(data[:8], "<u8")[0])
    if not 8 + header_len <= len(data):
        raise ModelError(f"{path.name} is not a safetensors file (header length {header_len})")
    try:
        header = json.loads(bytes(data[8:8 + header_len]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path.name} is not a safetensors file: {e}") from None
    header.pop("__metadata__", None)
    body = data[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        dtype = FLOAT_DTYPES.get(info["dtype"])
        if dtype is None:
            raise UnsupportedModelError(f"{path.name}: {name} is {info['dtype']}; supported: F32, F16, BF16")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - begin != int(np.prod(shape)) * dtype.itemsize or end > len(body):
            raise ModelError(f"{path.name}: {name}'s bytes [{begin}, {end}) do not hold {info['dtype']}{list(shape)}")
        raw = body[begin:end].view(dtype).reshape(shape)
        if info["dtype"] == "BF16":  # the upper half of a float32
            tensors[name] = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            tensors[name] = raw.astype(np.float32)
    return tensors


def generation_eos_ids(directory: Path) -> list[int]:
    """The tokens that end a generation by the checkpoint's generation_config.json (Qwen2.5: <|im_end|> and
    <|endoftext|>); none where it has no such file."""
    path = directory / "generation_config.json"
    eos = _read_json(path).get("eos_token_id") if path.is_file() else None
    ids = eos if isinstance(eos, list) else [] if eos is None else [eos]
    if not all(isinstance(i, int) for i in ids):
        raise ModelError(f"{path}: eos_token_id must be a token id or a list of them, not {eos!r}")
    return ids


def read_hf_checkpoint(directory: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """config.json as a dict, and every weight by its Hugging Face name as float32."""
    config = read_hf_config(directory)
    weights = {}
    for path in safetensors_files(directory):
        for name, tensor in read_safetensors(path).items():
            if name in weights:
                raise ModelError(f"{directory}: {name} is in more than one weight file")
            weights[name] = tensor
    return config, weights
