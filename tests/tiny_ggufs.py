"""The tiny Llama 3, Qwen2, Qwen3 and Phi-3 checkpoints of tests/tiny_checkpoints.py as llama.cpp's converter writes
them into a GGUF (general.architecture llama / qwen2 / qwen3 / phi3): its tensor names, Q/K rows permuted for GGML's
pairwise RoPE (Llama) or not (its RoPE for Qwen and Phi-3 is NEOX-style), Llama 3's RoPE scaling as its rope_freqs
tensor, Qwen2's q/k/v biases and Qwen3's q/k norms as tensors of their own, Phi-3's fused matrices and LongRoPE
factors as it stores them, float32 (Llama 3's matrices also in a block type); Qwen's with a tokenizer of
tests/bpe_ggufs.py where asked (the vocabulary then that tokenizer's size)."""
import json
import math
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType

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


def llama_cpp_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py's LlamaModel.permute: HF rotate_half rows -> GGML interleaved pairs."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_cpp_rope_freqs(hf: dict) -> np.ndarray:
    """The rope_freqs tensor llama.cpp's converter (LlamaModel.generate_extra_tensors) computes from a config.json
    with Llama 3's rope_scaling, step by step as it does in float32: for each base frequency, 1 under the short
    wavelengths, the factor over the long ones, and 1 / ((1 - smooth) / factor + smooth) between them.

    The converter takes the original context from the config's top level, by default 8192: the value inside
    rope_scaling, where Llama 3.1/3.2's config.json holds it (and transformers reads it). The tiny checkpoint's
    there is 64 (so the 89-token prompt reaches the scaled frequencies); it is taken from there, as the converter
    reads a real model's."""
    rope = hf["rope_scaling"]
    dim = hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]
    freqs = np.float32(1) / np.float32(hf["rope_theta"]) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    original = rope["original_max_position_embeddings"]
    factors = []
    for freq in freqs:
        wavelength = np.float32(2 * math.pi) / freq
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            smooth = (np.float32(original) / wavelength - np.float32(low)) / np.float32(high - low)
            factors.append(np.float32(1) / ((np.float32(1) - smooth) / np.float32(factor) + smooth))
    return np.array(factors, np.float32)


def write_llama3_gguf(directory: Path, seed: int, matrix_type: GGMLQuantizationType = GGMLQuantizationType.F32,
                      rope_freqs: np.ndarray | None = None, tokenizer: dict | None = None
                      ) -> tuple[Path, LlamaConfig, dict]:
    """(directory/tiny-llama3-TYPE.gguf, the checkpoint's config, its float32 weights), as llama.cpp's LlamaModel
    writes Llama 3.1/3.2: the `gguf` package's names, Q/K rows permuted, the RoPE scaling as rope_freqs (no
    rope.scaling keys), the matrices in `matrix_type`. `rope_freqs`: another tensor in its place (a malformed one);
    `tokenizer`: a recorded tokenizer's "gguf" entry (tests/bpe_ggufs.py; the vocabulary then its size)."""
    changes = {"vocab_size": len(tokenizer["tokens"])} if tokenizer else None
    checkpoint = write_checkpoint("llama3", directory / "checkpoint", seed, changes)
    hf = json.loads((checkpoint / "config.json").read_text())
    config, weights = load_hf_source(checkpoint)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    path = directory / f"tiny-llama3-{matrix_type.name}.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    add_decoder_metadata(writer, config)
    writer.add_rope_dimension_count(config.head_dim)
    if tokenizer:
        add_tokenizer(writer, tokenizer)
    for hf_name, w in weights.items():
        if hf_name.endswith(("q_proj.weight", "k_proj.weight")):
            heads = config.num_attention_heads if "q_proj" in hf_name else config.num_key_value_heads
            w = llama_cpp_permute(w, heads)
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        if w.ndim == 2 and matrix_type != GGMLQuantizationType.F32:
            writer.add_tensor(name, gguf.quants.quantize(w, matrix_type), raw_dtype=matrix_type)
        else:
            writer.add_tensor(name, w)
    writer.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                      llama_cpp_rope_freqs(hf) if rope_freqs is None else rope_freqs)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, config, weights
