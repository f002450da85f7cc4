"""The Llama family: its config, its Hugging Face weight names and shapes, and GGUF -> float32 conversion.

LlamaConfig also describes the Llama-style decoders that differ from Llama only in their attention (Qwen2's q/k/v
biases, Qwen3's q/k norms, Mistral's sliding window): their architectures (compile/<arch>/) read it from their
Hugging Face config.json.
"""
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, ReaderTensor
from gguf.quants import dequantize

from models.errors import UnsupportedModelError
from models.gguf_blocks import BLOCK_TYPES, unpack_blocks
from models.gguf_file import gguf_value, open_gguf
from models.quantization import BlockWeight

ARCHITECTURE = "llama"  # general.architecture in the GGUF file

FLOAT_TENSOR_TYPES = frozenset(GGMLQuantizationType[name] for name in ("F32", "F16", "BF16"))
# Types this converter reads: floats, and the block types whose blocks a bundle can hold exactly.
SUPPORTED_TENSOR_TYPES = FLOAT_TENSOR_TYPES | BLOCK_TYPES.keys()

ROPE_FREQS = "rope_freqs.weight"  # llama.cpp's tensor of Llama 3's RoPE frequency factors
LLAMA3_ROPE_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def llama3_rope_freq_factors(scaling: dict, theta: float, head_dim: int) -> list[float]:
    """Llama 3's RoPE scaling (a Hugging Face rope_scaling of rope_type llama3) as what each frequency is divided
    by, as llama.cpp's converter writes them into rope_freqs: 1 where the wavelength is at most original /
    high_freq_factor, `factor` where it is at least original / low_freq_factor, and between the two the divisor of
    transformers' smooth interpolation of the frequency, 1 / ((1 - s) / factor + s). In float32, as both compute."""
    missing = [key for key in LLAMA3_ROPE_KEYS if key not in scaling]
    if missing or scaling["high_freq_factor"] <= scaling["low_freq_factor"]:
        raise UnsupportedModelError(f"Llama 3 RoPE scaling {scaling} (it needs {', '.join(LLAMA3_ROPE_KEYS)}, "
                                    "high_freq_factor above low_freq_factor) is not supported")
    factor, low, high, original = (np.float32(scaling[key]) for key in LLAMA3_ROPE_KEYS)
    inv_freq = np.float32(1) / np.float32(theta) ** (np.arange(0, head_dim, 2).astype(np.float32) / head_dim)
    wavelength = np.float32(2 * np.pi) / inv_freq
    # 1 at original / high and shorter wavelengths, 0 at original / low and longer ones
    smooth = np.clip((original / wavelength - low) / (high - low), 0, 1)
    divisors = np.where(smooth == 0, factor, 1 / ((1 - smooth) / factor + smooth))
    return [float(d) for d in divisors.astype(np.float32)]


def gguf_rope_freq_factors(tensor: ReaderTensor, head_dim: int) -> list[float]:
    """A GGUF's rope_freqs tensor, checked to be a divisor of each frequency: head_dim / 2 positive floats."""
    def malformed(what):
        raise UnsupportedModelError(f"{ROPE_FREQS} {what}; expected {head_dim // 2} positive floats, each RoPE "
                                    f"frequency's divisor (Llama 3's scaling, for a head of {head_dim})")

    if tensor.tensor_type not in FLOAT_TENSOR_TYPES:
        malformed(f"is {tensor.tensor_type.name}")
    factors = dequantize(tensor.data, tensor.tensor_type).astype(np.float32).reshape(-1)
    if len(tensor.shape) != 1 or factors.size != head_dim // 2:
        malformed(f"has shape {[int(n) for n in tensor.shape]}")
    positive = np.isfinite(factors) & (factors > 0)
    if not positive.all():
        malformed(f"holds {factors[~positive][0]}")
    return [float(f) for f in factors]


@dataclass(frozen=True)
class LlamaConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rope_theta: float
    rms_norm_eps: float
    vocab_size: int
    tie_word_embeddings: bool
    context_length: int
    model_type: str = ARCHITECTURE  # the architecture (compile/<model_type>/) that computes this config
    attention_bias: bool = False  # q/k/v projections with a bias
    # RoPE scaling the layers do not compute from per-frequency factors alone (Phi-3's LongRoPE: its two factor
    # sets and attention factor, compile/phi3/); None: none
    rope_scaling: dict | None = field(default=None, hash=False)
    # What each RoPE frequency is divided by (Llama 3's scaling, as llama.cpp's rope_freqs tensor holds it): one
    # float32 per pair of features; None: none
    rope_freq_factors: list[float] | None = field(default=None, hash=False)
    # Mistral's sliding window: each token attends to the last `sliding_window` ones. None: to all of them.
    sliding_window: int | None = None

    def __post_init__(self):
        if self.num_attention_heads % self.num_key_value_heads:
            raise UnsupportedModelError(
                f"{self.num_attention_heads} attention heads are not a multiple of {self.num_key_value_heads} KV heads"
            )

    @classmethod
    def from_gguf(cls, reader: GGUFReader, layout: "GGUFLayout | None" = None) -> "LlamaConfig":
        """The config of a GGUF of `layout`'s general.architecture (default: llama)."""
        layout = layout or LLAMA_LAYOUT
        arch = gguf_value(reader, "general.architecture")
        if arch != layout.architecture:
            raise UnsupportedModelError(f"{Path(reader.data.filename).name}: architecture {arch!r} is not supported "
                                        f"(supported: {layout.architecture})")

        def value(key, *default):
            return gguf_value(reader, f"{layout.architecture}.{key}", *default)

        hidden, heads = value("embedding_length"), value("attention.head_count")
        kv_heads = value("attention.head_count_kv", heads)
        head_dim = value("attention.key_length", hidden // heads)
        if isinstance(kv_heads, list):
            raise UnsupportedModelError("per-layer KV head counts are not supported")
        if value("rope.dimension_count", head_dim) != head_dim:
            raise UnsupportedModelError("partial rotary embeddings (rope.dimension_count < head_dim) are not supported")
        if value("rope.scaling.type", "none") != "none":
            raise UnsupportedModelError(f"RoPE scaling {value('rope.scaling.type')!r} is not supported")
        tensors = {t.name: t for t in reader.tensors}
        if "token_embd.weight" not in tensors:
            raise UnsupportedModelError(f"{Path(reader.data.filename).name} has no token_embd.weight tensor")
        rope_freqs = tensors.get(ROPE_FREQS) if ROPE_FREQS in layout.config_tensors else None
        return cls(
            hidden_size=hidden,
            intermediate_size=value("feed_forward_length"),
            num_hidden_layers=value("block_count"),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            rope_theta=value("rope.freq_base", 10000.0),
            rms_norm_eps=value("attention.layer_norm_rms_epsilon"),
            vocab_size=int(tensors["token_embd.weight"].shape[1]),  # GGML shape is (in, out): (hidden, vocab)
            tie_word_embeddings="output.weight" not in tensors,
            context_length=value("context_length"),
            rope_freq_factors=None if rope_freqs is None else gguf_rope_freq_factors(rope_freqs, head_dim),
            **layout.implied,
        )

    @classmethod
    def from_hf(cls, hf: dict, **implied) -> "LlamaConfig":
        """From a Hugging Face config.json of a Llama-style model; `implied` sets what the architecture fixes
        (Qwen2: attention_bias=True). Refuses what the shared layers do not compute."""
        def unsupported(what):
            raise UnsupportedModelError(f"{hf.get('model_type')}: {what} is not supported")

        if hf.get("hidden_act", "silu") != "silu":
            unsupported(f"activation {hf['hidden_act']!r}")
        if hf.get("mlp_bias"):
            unsupported("an MLP with biases")
        if hf.get("use_sliding_window"):  # Qwen's switch; its sliding_window is unused without it
            unsupported("sliding-window attention")
        if hf.get("partial_rotary_factor", 1.0) != 1.0:
            unsupported("partial rotary embeddings")
        # transformers 5 moved rope_theta and rope_scaling into rope_parameters
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        rope_type = rope.pop("rope_type", rope.pop("type", "default"))
        theta = rope.pop("rope_theta", hf.get("rope_theta", 10000.0))
        if rope_type not in ("default", "llama3"):
            unsupported(f"RoPE scaling {rope_type!r}")
        heads = hf["num_attention_heads"]
        head_dim = hf.get("head_dim") or hf["hidden_size"] // heads
        factors = None if rope_type == "default" else llama3_rope_freq_factors(rope, float(theta), head_dim)
        fields = dict(
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_hidden_layers=hf["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=hf.get("num_key_value_heads") or heads,
            head_dim=head_dim,
            rope_theta=float(theta),
            rms_norm_eps=hf["rms_norm_eps"],
            vocab_size=hf["vocab_size"],
            tie_word_embeddings=hf.get("tie_word_embeddings", False),
            context_length=hf["max_position_embeddings"],
            attention_bias=hf.get("attention_bias", False),
            rope_freq_factors=factors,
            sliding_window=None if "use_sliding_window" in hf else hf.get("sliding_window"),
        )
        return cls(**(fields | implied))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def hf_weight_shapes(config: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every weight of the model, by Hugging Face name, with its (out_features, in_features) shape."""
    c = config
    q_out, kv_out = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
    shapes = {"model.embed_tokens.weight": (c.vocab_size, c.hidden_size)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "input_layernorm.weight": (c.hidden_size,),
            p + "self_attn.q_proj.weight": (q_out, c.hidden_size),
            p + "self_attn.k_proj.weight": (kv_out, c.hidden_size),
            p + "self_attn.v_proj.weight": (kv_out, c.hidden_size),
            **({p + "self_attn.q_proj.bias": (q_out,), p + "self_attn.k_proj.bias": (kv_out,),
                p + "self_attn.v_proj.bias": (kv_out,)} if c.attention_bias else {}),
            p + "self_attn.o_proj.weight": (c.hidden_size, q_out),
            p + "post_attention_layernorm.weight": (c.hidden_size,),
            p + "mlp.gate_proj.weight": (c.intermediate_size, c.hidden_size),
            p + "mlp.up_proj.weight": (c.intermediate_size, c.hidden_size),
            p + "mlp.down_proj.weight": (c.hidden_size, c.intermediate_size),
        }
    shapes["model.norm.weight"] = (c.hidden_size,)
    if not c.tie_word_embeddings:
        shapes["lm_head.weight"] = (c.vocab_size, c.hidden_size)
    return shapes


def check_weights(config: LlamaConfig, weights: dict[str, np.ndarray | BlockWeight]) -> None:
    """Every weight present with its shape; float weights in float32, matrices possibly as BlockWeights."""
    check_weight_shapes(hf_weight_shapes(config), weights)


def check_weight_shapes(expected: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray | BlockWeight]) -> None:
    """Exactly the weights of `expected` (Hugging Face names and shapes): float32 arrays, or BlockWeights for
    matrices."""
    if weights.keys() != expected.keys():
        raise UnsupportedModelError(
            f"weights do not match the config: missing {sorted(expected.keys() - weights.keys())[:5]}, "
            f"unexpected {sorted(weights.keys() - expected.keys())[:5]}"
        )
    for name, shape in expected.items():
        w = weights[name]
        blocks = isinstance(w, BlockWeight)
        if w.shape != shape or not (w.dtype == np.float32 if not blocks else len(shape) == 2):
            kind = w.format.name if blocks else w.dtype
            raise UnsupportedModelError(f"{name}: {kind}{list(w.shape)}, expected float32{list(shape)}")


GGUF_TO_HF = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
GGUF_BLOCK_TO_HF = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(gguf_name: str, top_level: dict[str, str] = GGUF_TO_HF, in_block: dict[str, str] = GGUF_BLOCK_TO_HF,
            architecture: str = ARCHITECTURE) -> str:
    """'blk.3.attn_q.weight' -> 'model.layers.3.self_attn.q_proj.weight'; 'output.weight' -> 'lm_head.weight'
    (by Llama's names, or the architecture's given)."""
    parts = gguf_name.split(".")
    if len(parts) == 2 and parts[0] in top_level:
        return f"{top_level[parts[0]]}.{parts[1]}"
    if len(parts) == 4 and parts[0] == "blk" and parts[2] in in_block:
        return f"model.layers.{parts[1]}.{in_block[parts[2]]}.{parts[3]}"
    raise UnsupportedModelError(f"unexpected tensor {gguf_name!r} for a {architecture} model")


def gguf_name(hf: str, top_level: dict[str, str] = GGUF_TO_HF, in_block: dict[str, str] = GGUF_BLOCK_TO_HF) -> str:
    """hf_name's inverse, as llama.cpp's converter names a weight: 'model.layers.3.self_attn.q_proj.weight' ->
    'blk.3.attn_q.weight'."""
    to_gguf = {hf_module: g for g, hf_module in (top_level | in_block).items()}
    if hf.startswith("model.layers."):
        _, _, layer, rest = hf.split(".", 3)
        module, suffix = rest.rsplit(".", 1)
        return f"blk.{layer}.{to_gguf[module]}.{suffix}"
    module, suffix = hf.rsplit(".", 1)
    return f"{to_gguf[module]}.{suffix}"


def unpermute_qk(w: np.ndarray | BlockWeight, n_heads: int) -> np.ndarray | BlockWeight:
    """Undo llama.cpp's Q/K row permutation so the weights work with HF's rotate_half RoPE.

    llama.cpp's converter reorders each head's rows from [first half, second half] to interleaved pairs
    (w.reshape(n_heads, 2, head_dim // 2, in).swapaxes(1, 2)) for GGML's pairwise RoPE; this is the inverse.
    It moves whole rows, so a BlockWeight's blocks move with them.
    """
    out_features = w.shape[0]
    rows = np.arange(out_features).reshape(n_heads, out_features // n_heads // 2, 2).swapaxes(1, 2).reshape(-1)
    return w.take_rows(rows) if isinstance(w, BlockWeight) else w[rows]


@dataclass(frozen=True)
class GGUFLayout:
    """How llama.cpp's converter stores a Llama-style decoder of one general.architecture."""
    architecture: str
    # Q/K rows interleaved per head for GGML's pairwise RoPE (llama); models with NEOX-style RoPE (Qwen) keep
    # Hugging Face's order
    permuted_qk: bool = True
    extra_block_tensors: dict[str, str] = field(default_factory=dict)  # GGUF name in a block -> Hugging Face name
    implied: dict = field(default_factory=dict)  # LlamaConfig fields the architecture fixes
    weight_shapes: Callable[[LlamaConfig], dict[str, tuple[int, ...]]] = hf_weight_shapes
    # the config from the file's keys, and from `config_tensors`, which are no weights (Phi-3's RoPE factors)
    config_from_gguf: Callable[[GGUFReader, "GGUFLayout"], LlamaConfig] = LlamaConfig.from_gguf
    config_tensors: frozenset[str] = frozenset()


# Llama 3.1+'s rope_freqs: config, no weight
LLAMA_LAYOUT = GGUFLayout(ARCHITECTURE, config_tensors=frozenset({ROPE_FREQS}))


def read_llama(path: Path, keep_blocks: bool, layout: GGUFLayout = LLAMA_LAYOUT
               ) -> tuple[LlamaConfig, dict[str, np.ndarray | BlockWeight]]:
    """A Llama-style GGUF file's config and weights with HF names and layout (by default a llama one; `layout` for
    another architecture): float tensors as float32, and block-quantized ones as their own blocks (`keep_blocks`)
    or dequantized to float32."""
    reader = open_gguf(path)
    config = layout.config_from_gguf(reader, layout)
    unsupported = {t.name: t.tensor_type.name for t in reader.tensors if t.tensor_type not in SUPPORTED_TENSOR_TYPES}
    if unsupported:
        raise UnsupportedModelError(
            f"{path.name}: unsupported tensor types {unsupported} "
            f"(supported: {', '.join(sorted(t.name for t in SUPPORTED_TENSOR_TYPES))})"
        )
    heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads} if layout.permuted_qk else {}
    in_block = GGUF_BLOCK_TO_HF | layout.extra_block_tensors
    weights = {}
    for tensor in (t for t in reader.tensors if t.name not in layout.config_tensors):
        shape = tuple(int(n) for n in reversed(tensor.shape))  # numpy order: (out_features, in_features) as in HF
        if keep_blocks and tensor.tensor_type in BLOCK_TYPES:
            w = unpack_blocks(tensor.data, tensor.tensor_type, shape)
        else:
            w = np.ascontiguousarray(dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False))
        assert w.shape == shape, (tensor.name, w.shape, tensor.shape)
        block_part = tensor.name.split(".")[2] if tensor.name.startswith("blk.") else None
        if block_part in heads:
            w = unpermute_qk(w, heads[block_part])
        weights[hf_name(tensor.name, GGUF_TO_HF, in_block, layout.architecture)] = w
    check_weight_shapes(layout.weight_shapes(config), weights)
    return config, weights


def dequantize_llama(path: Path) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    """Read a llama-family GGUF file into its config and float32 weights with HF names and layout."""
    return read_llama(path, keep_blocks=False)
