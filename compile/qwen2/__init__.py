"""Qwen2 and Qwen2.5: Llama with biases on the q/k/v projections."""
from functools import partial

from compile.architecture import Architecture
from compile.layers import CausalLM
from compile.weights import decoder_params
from models.llama import GGUFLayout, LlamaConfig, hf_weight_shapes, read_llama

IMPLIED = {"model_type": "qwen2", "attention_bias": True}
# llama.cpp's converter keeps Qwen's Q/K rows as they are (its RoPE for Qwen is NEOX-style)
GGUF_LAYOUT = GGUFLayout("qwen2", permuted_qk=False, implied=IMPLIED)


def qwen2_config(hf: dict) -> LlamaConfig:
    return LlamaConfig.from_hf(hf, **IMPLIED)


ARCHITECTURE = Architecture(
    name="qwen2",
    hf_model_types=("qwen2",),
    config_from_hf=qwen2_config,
    weight_shapes=hf_weight_shapes,
    module=CausalLM,  # with the q/k/v biases its config names (qwen2_config)
    params=decoder_params,
    gguf_architecture=GGUF_LAYOUT.architecture,
    read_gguf=partial(read_llama, layout=GGUF_LAYOUT),
)
