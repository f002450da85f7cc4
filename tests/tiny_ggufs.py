"""The tiny Qwen2, Qwen3 and Phi-3 checkpoints of tests/tiny_checkpoints.py as llama.cpp's converter writes them
into a GGUF (general.architecture qwen2 / qwen3 / phi3): its tensor names, Q/K rows unpermuted (its RoPE for Qwen
and Phi-3 is NEOX-style), Qwen2's q/k/v biases and Qwen3's q/k norms as tensors of their own, Phi-3's fused
matrices and LongRoPE factors as it stores them, float32; Qwen's with a tokenizer of tests/bpe_ggufs.py where
asked (the vocabulary then that tokenizer's size)."""
import json
import math
from pathlib import Path

import gguf
import numpy as np

from compile.pipeline import load_hf_source
from models.llama import GGUF_BLOCK_TO_HF, LlamaConfig, gguf_name
from models.synthetic import add_decoder_metadata
from tests.bpe_ggufs import add_tokenizer
from tests.tiny_checkpoints import write_checkpoint

IN_BLOCK = GGUF_BLOCK_TO_HF | {"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}  # Qwen3's too


def write_qwen_gguf(name: str, directory: Path, seed: int,
                    tokenizer: dict | None = None) -> tuple[Path, LlamaConfig, dict]:
    """(directory/tiny-NAME.gguf, the checkpoint's config, its float32 weights); `tokenizer`: a recorded
    tokenizer's "gguf" entry (tests/bpe_ggufs.py)."""
    changes = {"vocab_size": len(tokenizer["tokens"])} if tokenizer else None
    config, weights = load_hf_source(write_checkpoint(name, directory / "checkpoint", seed, changes))
    path = directory / f"tiny-{name}.gguf"
    writer = gguf.GGUFWriter(path, name)
    add_decoder_metadata(writer, config)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    if tokenizer:
        add_tokenizer(writer, tokenizer)
    for hf, w in weights.items():
        writer.add_tensor(gguf_name(hf, in_block=IN_BLOCK), w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, config, weights


# LongRoPE's factors, by config.json key
PHI3_FACTOR_TENSORS = {key: gguf.TENSOR_NAMES[tensor] + ".weight" for key, tensor in (
    ("short_factor", gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT), ("long_factor", gguf.MODEL_TENSOR.ROPE_FACTORS_LONG))}


def write_phi3_gguf(directory: Path, seed: int, rope_dimension_count: int | None = None
                    ) -> tuple[Path, LlamaConfig, dict]:
    """(directory/tiny-phi3.gguf, the checkpoint's config, its float32 weights), as llama.cpp's Phi3MiniModel
    writes them: the `gguf` package's names for Phi-3's tensors (attn_qkv, ffn_up = gate and up), the LongRoPE
    factors as tensors and its original context and attention factor as keys, the sliding window.
    `rope_dimension_count`: another than head_dim (a partial rotary embedding, as Phi-4-mini's)."""
    checkpoint = write_checkpoint("phi3", directory / "checkpoint", seed)
    hf = json.loads((checkpoint / "config.json").read_text())
    config, weights = load_hf_source(checkpoint)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI3, config.num_hidden_layers)
    path = directory / "tiny-phi3.gguf"
    writer = gguf.GGUFWriter(path, "phi3")
    add_decoder_metadata(writer, config)
    writer.add_rope_dimension_count(rope_dimension_count or config.head_dim)
    writer.add_sliding_window(hf["sliding_window"])
    original = hf["original_max_position_embeddings"]
    writer.add_rope_scaling_orig_ctx_len(original)
    scale = hf["max_position_embeddings"] / original
    writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)))
    for hf_name, w in weights.items():
        writer.add_tensor(names.get_name(hf_name, try_suffixes=(".weight",)), w)
    for key, tensor in PHI3_FACTOR_TENSORS.items():
        writer.add_tensor(tensor, np.array(hf["rope_scaling"][key], np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, config, weights
