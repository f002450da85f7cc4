"""Llama (SmolLM2, Llama 2/3 with Llama 3's RoPE scaling): the shared decoder as it is."""
from compile.architecture import Architecture
from compile.layers import CausalLM
from compile.options import CompileOptions
from compile.weights import decoder_params
from models.llama import LlamaConfig, hf_weight_shapes


class LlamaForCausalLM(CausalLM):
    def __init__(self, config: LlamaConfig, options: CompileOptions, target):
        super().__init__(config, options, target, qkv_bias=config.attention_bias, qk_norm=False)


ARCHITECTURE = Architecture(
    name="llama",
    hf_model_types=("llama",),
    config_from_hf=LlamaConfig.from_hf,
    weight_shapes=hf_weight_shapes,
    module=LlamaForCausalLM,
    params=decoder_params,
)
