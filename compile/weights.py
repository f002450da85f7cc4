"""Hugging Face weight names (models/) -> the parameter names of compile/layers.py, fusing q/k/v and gate/up.
Matrices are float32 arrays or BlockWeights (a GGUF's own blocks, or already quantized)."""
from collections.abc import Iterator

import numpy as np

from models.llama import LlamaConfig
from models.quantization import BlockWeight, Weight, stack_rows


def fused(weights: dict[str, Weight], names: list[str], shapes: list[tuple[int, ...]]) -> Weight:
    """The parts stacked along their first axis (output features)."""
    parts = [weights[n] for n in names]
    for name, part, shape in zip(names, parts, shapes):
        assert part.shape == shape, f"{name}: shape {part.shape}, expected {shape}"
    if all(isinstance(part, BlockWeight) for part in parts):
        return stack_rows(parts)
    # A float part makes the fused matrix float, which still holds every part's values exactly.
    return np.concatenate([p.dequantize() if isinstance(p, BlockWeight) else p for p in parts], axis=0)


def decoder_params(config: LlamaConfig, weights: dict[str, Weight]) -> Iterator[tuple[str, Weight]]:
    """The parameters that `layers.CausalLM` declares for every architecture, before packing."""
    c = config
    q_rows, kv_rows = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    yield "model.embed_tokens.weight", weights["model.embed_tokens.weight"]
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."  # the same prefix in both namings
        qkv = [p + f"self_attn.{x}_proj." for x in "qkv"]
        yield p + "input_layernorm.weight", weights[p + "input_layernorm.weight"]
        yield p + "self_attn.qkv_proj.weight", fused(
            weights, [n + "weight" for n in qkv], [(rows, c.hidden_size) for rows in (q_rows, kv_rows, kv_rows)])
        if c.attention_bias:
            yield p + "self_attn.qkv_proj.bias", fused(
                weights, [n + "bias" for n in qkv], [(q_rows,), (kv_rows,), (kv_rows,)])
        yield p + "self_attn.o_proj.weight", weights[p + "self_attn.o_proj.weight"]
        yield p + "post_attention_layernorm.weight", weights[p + "post_attention_layernorm.weight"]
        yield p + "mlp.gate_up_proj.weight", fused(
            weights, [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"],
            [(c.intermediate_size, c.hidden_size)] * 2)
        yield p + "mlp.down_proj.weight", weights[p + "mlp.down_proj.weight"]
    yield "model.norm.weight", weights["model.norm.weight"]
    if not c.tie_word_embeddings:
        yield "lm_head.weight", weights["lm_head.weight"]
