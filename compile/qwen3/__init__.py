"""Qwen3 (dense): Llama with an RMSNorm over each head of q and k before the rotary embedding, and head_dim free of
hidden_size / heads."""
from collections.abc import Iterator
from functools import partial

from compile.architecture import Architecture
from compile.layers import CausalLM
from compile.weights import decoder_params
from models.llama import GGUFLayout, LlamaConfig, hf_weight_shapes, read_llama
from models.quantization import Weight

QK_NORMS = ("self_attn.q_norm.weight", "self_attn.k_norm.weight")


def qwen3_config(hf: dict) -> LlamaConfig:
    return LlamaConfig.from_hf(hf, model_type="qwen3")


def qwen3_weight_shapes(config: LlamaConfig) -> dict[str, tuple[int, ...]]:
    return hf_weight_shapes(config) | {
        f"model.layers.{i}.{norm}": (config.head_dim,) for i in range(config.num_hidden_layers) for norm in QK_NORMS
    }


def qwen3_params(config: LlamaConfig, weights: dict[str, Weight]) -> Iterator[tuple[str, Weight]]:
    yield from decoder_params(config, weights)
    for i in range(config.num_hidden_layers):
        for norm in QK_NORMS:
            yield f"model.layers.{i}.{norm}", weights[f"model.layers.{i}.{norm}"]


# llama.cpp's converter keeps Qwen's Q/K rows as they are (its RoPE for Qwen is NEOX-style)
GGUF_LAYOUT = GGUFLayout("qwen3", permuted_qk=False, implied={"model_type": "qwen3"}, weight_shapes=qwen3_weight_shapes,
                         extra_block_tensors={"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"})

ARCHITECTURE = Architecture(
    name="qwen3",
    hf_model_types=("qwen3",),
    config_from_hf=qwen3_config,
    weight_shapes=qwen3_weight_shapes,
    module=partial(CausalLM, qk_norm=True),
    params=qwen3_params,
    gguf_architecture=GGUF_LAYOUT.architecture,
    read_gguf=partial(read_llama, layout=GGUF_LAYOUT),
)
