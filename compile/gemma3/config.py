"""Gemma 3's config (text only: Hugging Face model_type gemma3_text) on top of the Llama-style one; Gemma 2's
(compile/gemma2/config.py) is the same with other defaults."""
from dataclasses import dataclass

from models.errors import UnsupportedModelError
from models.llama import LlamaConfig, hf_weight_shapes

SLIDING, FULL = "sliding_attention", "full_attention"
DEFAULT_SLIDING_PATTERN = 6  # five sliding layers, then a global one (Gemma 3's, in transformers and llama.cpp)
DEFAULT_LOCAL_ROPE_THETA = 10000.0
QK_NORMS = ("self_attn.q_norm.weight", "self_attn.k_norm.weight")
FEED_FORWARD_NORMS = ("pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight")


@dataclass(frozen=True)
class Gemma3Config(LlamaConfig):
    model_type: str = "gemma3"
    # per layer: SLIDING (attends to the last `sliding_window` tokens, RoPE base rope_local_theta) or FULL (attends
    # to all of them, RoPE base rope_theta)
    layer_types: tuple[str, ...] = ()
    rope_local_theta: float = DEFAULT_LOCAL_ROPE_THETA
    query_pre_attn_scalar: float = 256.0  # attention scores are scaled by its inverse square root
    qk_norm: bool = True  # q and k RMS-normalised per head (Gemma 3; Gemma 2 has no such norms)
    # soft caps: attention scores -> cap * tanh(scores / cap) before the mask and softmax, and the same of the output
    # logits (Gemma 2's 50 and 30; None: no cap, as in Gemma 3)
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None

    def __post_init__(self):
        super().__post_init__()
        if len(self.layer_types) != self.num_hidden_layers or not set(self.layer_types) <= {SLIDING, FULL}:
            raise UnsupportedModelError(f"{self.model_type}: layer types {list(self.layer_types)} are not one of "
                                        f"{SLIDING!r} or {FULL!r} per layer")
        if SLIDING in self.layer_types and not self.sliding_window:
            raise UnsupportedModelError(f"{self.model_type}: sliding-attention layers need a sliding_window")
        for name, cap in (("attn_logit_softcapping", self.attn_logit_softcapping),
                          ("final_logit_softcapping", self.final_logit_softcapping)):
            if cap is not None and not cap > 0:
                raise UnsupportedModelError(f"{self.model_type}: {name} {cap} is not positive")

    def rope_theta_of(self, layer: int) -> float:
        return self.rope_local_theta if self.layer_types[layer] == SLIDING else self.rope_theta


def pattern_layer_types(num_layers: int, pattern: int = DEFAULT_SLIDING_PATTERN) -> tuple[str, ...]:
    """Every `pattern`-th layer global, the others sliding."""
    return tuple(FULL if (i + 1) % pattern == 0 else SLIDING for i in range(num_layers))


def gemma3_config(hf: dict) -> Gemma3Config:
    """From a config.json of transformers 5 (rope_parameters per layer type, layer_types) or 4 (rope_theta,
    rope_local_base_freq, sliding_window_pattern)."""
    def unsupported(what):
        raise UnsupportedModelError(f"{hf.get('model_type')}: {what} is not supported")

    activation = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
    if activation != "gelu_pytorch_tanh":
        unsupported(f"activation {activation!r}")
    if hf.get("use_bidirectional_attention"):
        unsupported("bidirectional attention")
    rope = hf.get("rope_parameters") or {}
    if FULL in rope:
        global_rope, local_rope = dict(rope[FULL]), dict(rope.get(SLIDING) or {})
    else:
        global_rope = {"rope_theta": hf.get("rope_theta", 1000000.0), **(hf.get("rope_scaling") or {})}
        local_rope = {"rope_theta": hf.get("rope_local_base_freq", DEFAULT_LOCAL_ROPE_THETA)}
    for kind, params in (("global", global_rope), ("local", local_rope)):
        rope_type = params.get("rope_type", params.get("type", "default"))
        if rope_type != "default":
            unsupported(f"{kind} RoPE scaling {rope_type!r}")
    layers = hf["num_hidden_layers"]
    layer_types = tuple(hf.get("layer_types") or
                        pattern_layer_types(layers, hf.get("sliding_window_pattern", DEFAULT_SLIDING_PATTERN)))
    llama_style = {k: v for k, v in hf.items()
                   if k not in ("rope_parameters", "rope_scaling", "hidden_act", "sliding_window")}
    base = LlamaConfig.from_hf({**llama_style, "rope_theta": global_rope.get("rope_theta", 1000000.0)})
    return Gemma3Config(**(base.to_dict() | dict(
        model_type="gemma3", sliding_window=hf.get("sliding_window"), layer_types=layer_types,
        rope_local_theta=float(local_rope.get("rope_theta", DEFAULT_LOCAL_ROPE_THETA)),
        query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar", 256)),
        attn_logit_softcapping=_optional_float(hf.get("attn_logit_softcapping")),
        final_logit_softcapping=_optional_float(hf.get("final_logit_softcapping")),
        tie_word_embeddings=hf.get("tie_word_embeddings", True))))


def _optional_float(value) -> float | None:
    return None if value is None else float(value)


def extra_norms(config: Gemma3Config) -> tuple[str, ...]:
    """The norms of each layer beyond Llama's, by their Hugging Face names within the layer."""
    return (QK_NORMS if config.qk_norm else ()) + FEED_FORWARD_NORMS


def gemma3_weight_shapes(config: Gemma3Config) -> dict[str, tuple[int, ...]]:
    """Every weight by its Hugging Face name: Llama's, and per layer the q/k norms (where the config has them) and
    the feed-forward norms."""
    c = config
    norm_sizes = {"self_attn.q_norm.weight": c.head_dim, "self_attn.k_norm.weight": c.head_dim}
    return hf_weight_shapes(config) | {
        f"model.layers.{i}.{norm}": (norm_sizes.get(norm, c.hidden_size),)
        for i in range(c.num_hidden_layers) for norm in extra_norms(config)
    }
