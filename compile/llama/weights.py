"""Hugging Face Llama weight names (models/) -> this package's parameter names, fusing q/k/v and gate/up.
Matrices are float32 arrays or BlockWeights (a GGUF's own blocks, or already quantized)."""
from collections.abc import Iterator

import numpy as np

from models.llama import LlamaConfig
from models.quantization import BlockWeight, Weight, stack_rows


def _fused(weights: dict[str, Weight], names: list[str], rows: list[int], cols: int) -> Weight:
    parts = [weights[n] for n in names]
    for name, part, expected_rows in zip(names, parts, rows):
        assert part.shape == (expected_rows, cols), f"{name}: shape {part.shape}, expected {(expected_rows, cols)}"
    if all(isinstance(part, BlockWeight) for part in parts):
        return stack_rows(parts)
    # A float part makes the fused matrix float, which still holds every part's values exactly.
    return np.concatenate([p.dequantize() if isinstance(p, BlockWeight) else p for p in parts], axis=0)


def llama_params(config: LlamaConfig, weights: dict[str, Weight]) -> Iterator[tuple[str, Weight]]:
    """Yields the parameters named as `LlamaForCausalLM` declares them, before packing."""
    c = config
    q_rows, kv_rows = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    yield "model.embed_tokens.weight", weights["model.embed_tokens.weight"]
    for i in range(c.num_hidden_layers):
        hf, ours = f"model.layers.{i}.", f"model.layers.{i}."
        yield ours + "input_layernorm.weight", weights[hf + "input_layernorm.weight"]
        yield ours + "self_attn.qkv_proj.weight", _fused(
            weights, [hf + f"self_attn.{p}_proj.weight" for p in "qkv"], [q_rows, kv_rows, kv_rows], c.hidden_size)
        yield ours + "self_attn.o_proj.weight", weights[hf + "self_attn.o_proj.weight"]
        yield ours + "post_attention_layernorm.weight", weights[hf + "post_attention_layernorm.weight"]
        yield ours + "mlp.gate_up_proj.weight", _fused(
            weights, [hf + "mlp.gate_proj.weight", hf + "mlp.up_proj.weight"],
            [c.intermediate_size] * 2, c.hidden_size)
        yield ours + "mlp.down_proj.weight", weights[hf + "mlp.down_proj.weight"]
    yield "model.norm.weight", weights["model.norm.weight"]
    if not c.tie_word_embeddings:
        yield "lm_head.weight", weights["lm_head.weight"]
