"""Gemma 3 (text; Hugging Face model_type gemma3_text, GGUF architecture gemma3): config.py, model.py, and the
weight mapping here (Gemma 2's too: compile/gemma2/)."""
from collections.abc import Iterator

import numpy as np

from compile.architecture import Architecture
from compile.gemma3.config import Gemma3Config, extra_norms, gemma3_config, gemma3_weight_shapes
from compile.gemma3.gguf import ARCHITECTURE as GGUF_ARCHITECTURE, read_gemma3_gguf
from compile.gemma3.model import Gemma3CausalLM
from compile.weights import decoder_params
from models.quantization import Weight


def gemma3_params(config: Gemma3Config, weights: dict[str, Weight]) -> Iterator[tuple[str, Weight]]:
    """Gemma's RMSNorms scale by 1 + w: the parameter holds 1 + w (in float32, as transformers adds them)."""
    def scale(name: str, w: Weight) -> Weight:
        return np.float32(1) + w if name.endswith("norm.weight") else w

    for name, w in decoder_params(config, weights):
        yield name, scale(name, w)
    for i in range(config.num_hidden_layers):
        for norm in extra_norms(config):
            name = f"model.layers.{i}.{norm}"
            yield name, scale(name, weights[name])


ARCHITECTURE = Architecture(
    name="gemma3",
    hf_model_types=("gemma3_text",),
    gguf_architecture=GGUF_ARCHITECTURE,
    read_gguf=read_gemma3_gguf,
    config_from_hf=gemma3_config,
    weight_shapes=gemma3_weight_shapes,
    module=Gemma3CausalLM,
    params=gemma3_params,
)
