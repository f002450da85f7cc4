"""A Gemma 3 GGUF (general.architecture "gemma3", llama.cpp's layout) -> Gemma3Config and weights with Hugging Face
names: float tensors as float32, block-quantized ones as their own blocks (`keep_blocks`) or float32. Gemma 2's
(compile/gemma2/gguf.py) has the same layout, less the q/k norms, and is read here too.

llama.cpp's converter stores each RMSNorm's 1 + w (it adds Gemma's 1 once, at conversion), and Q/K rows as
transformers has them (Gemma's RoPE is NEOX-style in llama.cpp: no permutation). Its GGUF has no local RoPE base,
window pattern or query scalar: llama.cpp fixes them for Gemma 3 (10,000, every 6th layer global, head_dim).
"""
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

from compile.gemma3.config import (DEFAULT_LOCAL_ROPE_THETA, Gemma3Config, gemma3_weight_shapes,
                                   pattern_layer_types)
from models.errors import UnsupportedModelError
from models.gguf_blocks import BLOCK_TYPES, unpack_blocks
from models.gguf_file import gguf_value, open_gguf
from models.llama import SUPPORTED_TENSOR_TYPES, check_weight_shapes, hf_name
from models.quantization import Weight

ARCHITECTURE = "gemma3"
GGUF_TO_HF = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}
GGUF_BLOCK_TO_HF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_output": "self_attn.o_proj",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "post_ffw_norm": "post_feedforward_layernorm",
}


def gemma_gguf_fields(reader, architecture: str) -> dict:
    """The config fields Gemma 2's and 3's GGUFs give alike, under `architecture`'s keys."""
    def value(key, *default):
        return gguf_value(reader, f"{architecture}.{key}", *default)

    hidden, heads = value("embedding_length"), value("attention.head_count")
    head_dim = value("attention.key_length", hidden // heads)
    if value("attention.value_length", head_dim) != head_dim:
        raise UnsupportedModelError(f"{architecture}: value heads of another size than key heads are not supported")
    if value("rope.scaling.type", "none") != "none":
        raise UnsupportedModelError(f"{architecture}: RoPE scaling {value('rope.scaling.type')!r} is not supported")
    tensors = {t.name: t for t in reader.tensors}
    return dict(
        hidden_size=hidden,
        intermediate_size=value("feed_forward_length"),
        num_hidden_layers=value("block_count"),
        num_attention_heads=heads,
        num_key_value_heads=value("attention.head_count_kv", heads),
        head_dim=head_dim,
        rms_norm_eps=value("attention.layer_norm_rms_epsilon"),
        vocab_size=int(tensors["token_embd.weight"].shape[1]),
        tie_word_embeddings="output.weight" not in tensors,
        context_length=value("context_length"),
    )


def gemma3_config_from_gguf(reader) -> Gemma3Config:
    fields = gemma_gguf_fields(reader, ARCHITECTURE)
    return Gemma3Config(
        **fields,
        rope_theta=gguf_value(reader, f"{ARCHITECTURE}.rope.freq_base", 1000000.0),
        sliding_window=gguf_value(reader, f"{ARCHITECTURE}.attention.sliding_window"),
        layer_types=pattern_layer_types(fields["num_hidden_layers"]),
        rope_local_theta=DEFAULT_LOCAL_ROPE_THETA,
        query_pre_attn_scalar=float(fields["head_dim"]),
        final_logit_softcapping=gguf_value(reader, f"{ARCHITECTURE}.final_logit_softcapping", None),
    )


def read_gemma3_gguf(path: Path, keep_blocks: bool) -> tuple[Gemma3Config, dict[str, Weight]]:
    return read_gemma_gguf(path, keep_blocks, ARCHITECTURE, gemma3_config_from_gguf)


def read_gemma_gguf(path: Path, keep_blocks: bool, architecture: str,
                    config_from_gguf: Callable[[GGUFReader], Gemma3Config]) -> tuple[Gemma3Config, dict[str, Weight]]:
    """A GGUF of `architecture` (gemma2 or gemma3), its config read by `config_from_gguf`."""
    reader = open_gguf(path)
    if gguf_value(reader, "general.architecture") != architecture:
        raise UnsupportedModelError(f"{path.name} is not a {architecture} GGUF")
    unsupported = {t.name: t.tensor_type.name for t in reader.tensors if t.tensor_type not in SUPPORTED_TENSOR_TYPES}
    if unsupported:
        raise UnsupportedModelError(f"{path.name}: unsupported tensor types {unsupported}")
    config = config_from_gguf(reader)
    weights = {}
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))  # numpy order: (out_features, in_features)
        name = hf_name(tensor.name, GGUF_TO_HF, GGUF_BLOCK_TO_HF, architecture)
        if keep_blocks and tensor.tensor_type in BLOCK_TYPES:
            weights[name] = unpack_blocks(tensor.data, tensor.tensor_type, shape)
            continue
        w = np.ascontiguousarray(dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False))
        if name.endswith("norm.weight"):
            # back to transformers' w (compile/gemma3 adds the 1 again): exact for 1 + w >= 0.5, else within
            # 2^-25 of it
            w = w - np.float32(1)
        weights[name] = w.reshape(shape)
    check_weight_shapes(gemma3_weight_shapes(config), weights)
    return config, weights
