"""Mistral: Llama with a sliding attention window over every layer (v0.1's is 4,096 tokens; Mistral 7B v0.2+ and
Nemo have none): compile/layers.py's CausalLM makes each layer a sliding one where the context window outgrows it."""
from compile.architecture import Architecture
from compile.layers import CausalLM
from compile.weights import decoder_params
from models.llama import LlamaConfig, hf_weight_shapes


def mistral_config(hf: dict) -> LlamaConfig:
    return LlamaConfig.from_hf(hf, model_type="mistral")


ARCHITECTURE = Architecture(
    name="mistral",
    hf_model_types=("mistral",),
    config_from_hf=mistral_config,
    weight_shapes=hf_weight_shapes,
    module=CausalLM,
    params=decoder_params,
)
