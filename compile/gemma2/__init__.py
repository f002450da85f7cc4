"""Gemma 2 (Hugging Face model_type gemma2, GGUF architecture gemma2; gemma-2-2b-it): Gemma 3's modules, weight
mapping and GGUF layout (compile/gemma3/) with Gemma 2's config (config.py): no q/k norms, one RoPE base, sliding
and global layers in turn, attention and final logit soft caps."""
from compile.architecture import Architecture
from compile.gemma2.config import gemma2_config
from compile.gemma2.gguf import ARCHITECTURE as GGUF_ARCHITECTURE, read_gemma2_gguf
from compile.gemma3 import gemma3_params
from compile.gemma3.config import gemma3_weight_shapes
from compile.gemma3.model import Gemma3CausalLM

ARCHITECTURE = Architecture(
    name="gemma2",
    hf_model_types=("gemma2",),
    gguf_architecture=GGUF_ARCHITECTURE,
    read_gguf=read_gemma2_gguf,
    config_from_hf=gemma2_config,
    weight_shapes=gemma3_weight_shapes,
    module=Gemma3CausalLM,
    params=gemma3_params,
)
