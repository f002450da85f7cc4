"""Phi-3 and Phi-3.5 (Hugging Face model_type phi3, GGUF architecture phi3): Llama's decoder, whose checkpoints hold
q/k/v and gate/up fused, and LongRoPE in the long-context models (config.py, model.py).

The shared layers fuse q/k/v and gate/up the same way under the same names (rows q, k, v; gate, up), so the weights
map onto them as they are; llama.cpp stores them fused too (attn_qkv, and ffn_up with 2 x intermediate rows).
"""
from collections.abc import Iterator
from functools import partial

from compile.architecture import Architecture
from compile.phi3.config import GGUF_FACTOR_TENSORS, MODEL_TYPE, phi3_config, phi3_config_from_gguf
from compile.phi3.model import Phi3CausalLM
from models.llama import GGUFLayout, LlamaConfig, hf_weight_shapes, read_llama
from models.quantization import Weight

# each fused matrix of a layer, and its parts (Llama's matrices) in the order of its rows
FUSED = {"self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
         "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj")}
FUSED_INTO = {part: fused for fused, parts in FUSED.items() for part in parts}


def phi3_weight_shapes(config: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Llama's weights, each fused matrix in place of its parts with their rows."""
    shapes = {}
    for name, (rows, *columns) in hf_weight_shapes(config).items():
        module, _, suffix = name.rpartition(".")
        layer, _, part = module.rpartition(".layers.")[2].partition(".")
        if part in FUSED_INTO:
            name = f"model.layers.{layer}.{FUSED_INTO[part]}.{suffix}"
        shapes[name] = (shapes.get(name, (0,))[0] + rows, *columns)
    return shapes


def phi3_params(config: LlamaConfig, weights: dict[str, Weight]) -> Iterator[tuple[str, Weight]]:
    """The weights as they are, by the shared layers' names (Phi-3's own)."""
    for name, shape in phi3_weight_shapes(config).items():
        assert weights[name].shape == shape, f"{name}: shape {weights[name].shape}, expected {shape}"
        yield name, weights[name]


# llama.cpp's converter keeps Phi-3's Q/K rows as they are (its RoPE for Phi-3 is NEOX-style)
GGUF_LAYOUT = GGUFLayout(MODEL_TYPE, permuted_qk=False, implied={"model_type": MODEL_TYPE},
                         extra_block_tensors={"attn_qkv": "self_attn.qkv_proj", "ffn_up": "mlp.gate_up_proj"},
                         weight_shapes=phi3_weight_shapes, config_from_gguf=phi3_config_from_gguf,
                         config_tensors=frozenset(GGUF_FACTOR_TENSORS.values()))

ARCHITECTURE = Architecture(
    name=MODEL_TYPE,
    hf_model_types=(MODEL_TYPE,),
    config_from_hf=phi3_config,
    weight_shapes=phi3_weight_shapes,
    module=Phi3CausalLM,
    params=phi3_params,
    gguf_architecture=GGUF_LAYOUT.architecture,
    read_gguf=partial(read_llama, layout=GGUF_LAYOUT),
)
