"""Phi-3's config: Llama's (LlamaConfig), with LongRoPE where the model was trained past its original context (the
128k models, Phi-3.5), from a Hugging Face config.json or from llama.cpp's GGUF keys and RoPE factor tensors.

LongRoPE divides each RoPE frequency by its own factor, one set for sequences within the original context
(`short_factor`) and one beyond it (`long_factor`), and scales cos and sin by sqrt(1 + ln s / ln original), s the
ratio of the longest context to the original one. rope_scaling keeps all of it, the factors rounded to float32 as
transformers computes with them (and as a GGUF stores them).
"""
import dataclasses
import math

import numpy as np
from gguf import GGUFReader

from models.errors import UnsupportedModelError
from models.gguf_file import gguf_value
from models.llama import GGUFLayout, LlamaConfig

MODEL_TYPE = "phi3"
LONGROPE = "longrope"
LONGROPE_TYPES = (LONGROPE, "su")  # "su": the first Phi-3 128k config.json's name for it
DEFAULT_ORIGINAL_CONTEXT = 4096  # transformers' Phi3Config's original_max_position_embeddings
# llama.cpp's tensors of the factors, by rope_scaling key
GGUF_FACTOR_TENSORS = {"short_factor": "rope_factors_short.weight", "long_factor": "rope_factors_long.weight"}


def longrope_scaling(short_factor, long_factor, original_context: int, factor: float, head_dim: int) -> dict:
    """rope_scaling of a LongRoPE model; `factor`: how many times longer than the original its context is."""
    for name, factors in (("short_factor", short_factor), ("long_factor", long_factor)):
        if len(factors) != head_dim // 2:
            raise UnsupportedModelError(f"{MODEL_TYPE}: {len(factors)} LongRoPE {name}s for a head of {head_dim} "
                                        f"(expected {head_dim // 2}: one per frequency)")

    def float32(factors) -> list[float]:  # each as the shortest decimal of its float32 (1.01, not 1.00999999)
        return [float(str(x)) for x in np.asarray(factors, np.float32)]

    return {"rope_type": LONGROPE, "original_max_position_embeddings": original_context, "factor": float(factor),
            "short_factor": float32(short_factor), "long_factor": float32(long_factor)}


def longrope_attention_factor(scaling: dict) -> float:
    """What cos and sin are scaled by: transformers' default (and what llama.cpp's converter writes)."""
    factor, original = scaling["factor"], scaling["original_max_position_embeddings"]
    return math.sqrt(1 + math.log(factor) / math.log(original)) if factor > 1 else 1.0


def phi3_config(hf: dict) -> LlamaConfig:
    """From a config.json of transformers 4 (rope_scaling, original_max_position_embeddings beside it) or 5
    (rope_parameters). Refuses partial rotary embeddings (Phi-4-mini) and RoPE scalings other than LongRoPE."""
    def unsupported(what):
        raise UnsupportedModelError(f"{MODEL_TYPE}: {what} is not supported")

    rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    partial = rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial != 1.0:
        unsupported(f"a partial rotary embedding (partial_rotary_factor {partial}, as in Phi-4-mini)")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", *LONGROPE_TYPES):
        unsupported(f"RoPE scaling {rope_type!r}")
    if rope.get("attention_factor") is not None:
        unsupported("a LongRoPE attention_factor of its own")
    llama_style = {k: v for k, v in hf.items() if k not in ("rope_parameters", "rope_scaling")}
    config = LlamaConfig.from_hf({**llama_style, "rope_theta": rope.get("rope_theta", hf.get("rope_theta", 10000.0))},
                                 model_type=MODEL_TYPE)
    if rope_type == "default":
        return config
    # transformers takes the top-level original_max_position_embeddings (its default where absent) over
    # rope_parameters' own
    original = hf.get("original_max_position_embeddings", DEFAULT_ORIGINAL_CONTEXT)
    factor = rope.get("factor") or hf["max_position_embeddings"] / original
    return dataclasses.replace(config, rope_scaling=longrope_scaling(
        rope["short_factor"], rope["long_factor"], original, factor, config.head_dim))


def phi3_config_from_gguf(reader: GGUFReader, layout: GGUFLayout) -> LlamaConfig:
    """llama.cpp's converter writes LongRoPE's factors as two tensors, the original context and the attention factor
    as keys (and no rope.scaling.type), and the sliding window as 0 where the model has none."""
    config = LlamaConfig.from_gguf(reader, layout)

    def value(key, *default):
        return gguf_value(reader, f"{layout.architecture}.{key}", *default)

    config = dataclasses.replace(config, sliding_window=value("attention.sliding_window", 0) or None)
    tensors = {t.name: t for t in reader.tensors if t.name in GGUF_FACTOR_TENSORS.values()}
    if not tensors:
        return config
    if len(tensors) != len(GGUF_FACTOR_TENSORS):
        raise UnsupportedModelError(f"{MODEL_TYPE}: the GGUF has {', '.join(tensors)} without "
                                    f"{', '.join(set(GGUF_FACTOR_TENSORS.values()) - set(tensors))}")
    original = value("rope.scaling.original_context_length")
    scaling = longrope_scaling(*(tensors[GGUF_FACTOR_TENSORS[key]].data for key in ("short_factor", "long_factor")),
                               original, config.context_length / original, config.head_dim)
    attention_factor = value("rope.scaling.attn_factor", None)
    if attention_factor is not None and not math.isclose(attention_factor, longrope_attention_factor(scaling),
                                                         rel_tol=1e-6):
        raise UnsupportedModelError(
            f"{MODEL_TYPE}: a LongRoPE attention factor of {attention_factor} (not sqrt(1 + ln s / ln n) of the "
            f"context s times longer than the original n = {original}) is not supported")
    return dataclasses.replace(config, rope_scaling=scaling)
