"""Gemma 2's config: Gemma 3's (compile/gemma3/config.py) without q/k norms, with one RoPE base for every layer,
sliding layers alternating with global ones, and soft caps on the attention scores and the output logits."""
from dataclasses import dataclass

from compile.gemma3.config import FULL, SLIDING, Gemma3Config, gemma3_config, pattern_layer_types

SLIDING_PATTERN = 2  # even layers sliding, odd ones global (transformers' Gemma2Config and llama.cpp)
# transformers' Gemma2Config defaults where they differ from Gemma 3's (gemma-2-2b-it's config.json has each key)
DEFAULTS = {"rope_theta": 10000.0, "sliding_window": 4096, "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0}


@dataclass(frozen=True)
class Gemma2Config(Gemma3Config):
    model_type: str = "gemma2"
    qk_norm: bool = False


def gemma2_config(hf: dict) -> Gemma2Config:
    """From a config.json of transformers 5 (rope_parameters, layer_types) or 4 (rope_theta; the layer kinds by
    parity)."""
    hf = {**DEFAULTS, **hf}
    rope = hf.get("rope_parameters") or {"rope_theta": hf["rope_theta"], **(hf.get("rope_scaling") or {})}
    layer_types = hf.get("layer_types") or list(pattern_layer_types(hf["num_hidden_layers"], SLIDING_PATTERN))
    as_gemma3 = gemma3_config({**hf, "rope_parameters": {FULL: rope, SLIDING: rope}, "layer_types": layer_types})
    return Gemma2Config(**(as_gemma3.to_dict() | {"model_type": "gemma2", "qk_norm": False}))
