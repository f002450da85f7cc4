"""Qwen2 and Qwen2.5: Llama with biases on the q/k/v projections."""
from compile.architecture import Architecture
from compile.layers import CausalLM
from compile.weights import decoder_params
from models.llama import LlamaConfig, hf_weight_shapes


def qwen2_config(hf: dict) -> LlamaConfig:
    return LlamaConfig.from_hf(hf, model_type="qwen2", attention_bias=True)


ARCHITECTURE = Architecture(
    name="qwen2",
    hf_model_types=("qwen2",),
    config_from_hf=qwen2_config,
    weight_shapes=hf_weight_shapes,
    module=CausalLM,  # with the q/k/v biases its config names (qwen2_config)
    params=decoder_params,
)
