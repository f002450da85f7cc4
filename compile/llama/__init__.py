"""Llama (SmolLM2, Llama 2/3 with Llama 3's RoPE scaling): the shared decoder as it is."""
from compile.architecture import Architecture
from compile.layers import CausalLM
from compile.weights import decoder_params
from models.llama import ARCHITECTURE as GGUF_ARCHITECTURE, LlamaConfig, hf_weight_shapes, read_llama


ARCHITECTURE = Architecture(
    name="llama",
    hf_model_types=("llama",),
    config_from_hf=LlamaConfig.from_hf,
    weight_shapes=hf_weight_shapes,
    module=CausalLM,
    params=decoder_params,
    gguf_architecture=GGUF_ARCHITECTURE,
    read_gguf=read_llama,
)
