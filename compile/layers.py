"""The building blocks of decoder-only transformers as tvm.relax.frontend.nn modules, written once for every
architecture: the token embedding (doubling as the tied output projection), grouped-query attention through TVM's
paged KV cache (which applies the plain rotary embedding; one with per-frequency factors, Llama 3's scaling or Phi-3's
LongRoPE, the attention applies itself), the gated MLP, the pre-norm decoder layer and the causal LM that exports the
MLC model-library ABI.

Parameter names follow MLC-LLM (fused qkv_proj and gate_up_proj) so bundles interoperate; each architecture's
`weights.py` maps its Hugging Face names onto them.
"""
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tvm import relax as rx
from tvm import te, tirx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache, RopeMode, TIRPagedKVCache
from tvm.target import Target

from compile.options import CompileOptions
from compile.webgpu_math import exact_float32
from models.errors import UnsupportedModelError
from models.llama import LlamaConfig


def rms_norm(dim: int, eps: float) -> nn.RMSNorm:
    return nn.RMSNorm(dim, -1, eps, bias=False)


def constant_table(values: Sequence[float], i: tirx.Expr) -> tirx.Expr:
    """values[i] (float32, exactly) for a symbolic index in range: a balanced tree of selects, as TIR has no
    constant arrays that every target compiles."""
    if len(values) == 1:
        return exact_float32(values[0])
    middle = len(values) // 2
    return tirx.Select(i < middle, constant_table(values[:middle], i),
                       constant_table(values[middle:], i - middle))


def rope_inv_freq(theta: float, head_dim: int, factors: Sequence[float] | None = None) -> tuple[float, ...]:
    """RoPE's frequency of each pair of features, in float32 as transformers computes them, once:
    1 / (factor_i * theta^(2i / head_dim)), `factors` Llama 3's or LongRoPE's (by default none). Here rather than in
    the kernel, where WGSL's pow is only as exact as its exp2 and log2."""
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    divisors = np.float32(theta) ** exponents
    if factors is not None:
        divisors = np.asarray(factors, np.float32) * divisors
    return tuple(float(f) for f in np.float32(1) / divisors)


def rotary(x: Tensor, positions: Tensor, inv_freq: Sequence[float], scale: float = 1.0) -> Tensor:
    """Hugging Face's rotate-half RoPE of x [b, s, heads, head_dim] at positions [b * s], in float32 as
    transformers computes it: angle = position * inv_freq[i], then x * cos + rotate_half(x) * sin with cos and sin
    times `scale` (LongRoPE's attention factor; by default none)."""
    def compute(x: te.Tensor, positions: te.Tensor):
        _, s, _, d = x.shape
        half = d // 2

        def element(b, t, h, e):
            angle = positions[b * s + t].astype("float32") * constant_table(inv_freq, tirx.floormod(e, half))
            cos, sin = tirx.cos(angle), tirx.sin(angle)
            if scale != 1.0:
                cos, sin = cos * exact_float32(scale), sin * exact_float32(scale)
            rotated = tirx.if_then_else(e < half, -x[b, t, h, e + half], x[b, t, h, e - half])
            return x[b, t, h, e] * cos + rotated * sin

        return te.compute(x.shape, element, name="rotary")

    return op.tensor_expr_op(compute, "rotary", [x, positions])


@dataclass(frozen=True)
class Rotary:
    """RoPE that the model applies to q and k itself, where the KV cache cannot (per-frequency factors: Llama 3's
    scaling as llama.cpp's rope_freqs gives it, LongRoPE's)."""
    inv_freq: tuple[float, ...]
    scale: float = 1.0

    def __call__(self, x: Tensor, positions: Tensor) -> Tensor:
        return rotary(x, positions, self.inv_freq, self.scale)


class Embedding(nn.Embedding):
    """Token embedding whose table doubles as the output projection when embeddings are tied."""

    def lm_head_forward(self, x: Tensor) -> Tensor:
        return op.matmul(x, op.permute_dims(self.weight))


class Attention(nn.Module):
    """Grouped-query attention over the paged KV cache, with fused q/k/v; the projection has a bias where the
    config says so (Qwen2). `qk_norm`: q and k are RMS-normalised per head before the rotary embedding (Qwen3).
    `rotary`: RoPE applied here, at the positions the cache reports, rather than by the cache (per-frequency
    factors: Llama 3's scaling, Phi-3's LongRoPE; Gemma's RoPE base per layer). `sm_scale`: what the scores are
    scaled by (head_dim^-0.5 by default; Gemma's query_pre_attn_scalar^-0.5)."""

    def __init__(self, config: LlamaConfig, *, qk_norm: bool, rotary: Rotary | None = None,
                 sm_scale: float | None = None):
        self.head_dim = config.head_dim
        self.sm_scale = config.head_dim ** -0.5 if sm_scale is None else sm_scale
        self.num_q_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        qkv_features = (self.num_q_heads + 2 * self.num_kv_heads) * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, qkv_features, bias=config.attention_bias)
        self.o_proj = nn.Linear(self.num_q_heads * self.head_dim, config.hidden_size, bias=False)
        if qk_norm:
            self.q_norm = rms_norm(self.head_dim, config.rms_norm_eps)
            self.k_norm = rms_norm(self.head_dim, config.rms_norm_eps)
        self.qk_norm = qk_norm
        self.rotary = rotary

    def forward(self, x: Tensor, kv_cache: PagedKVCache, layer_id: int) -> Tensor:
        b, s, _ = x.shape
        qkv = op.reshape(self.qkv_proj(x), (b, s, self.num_q_heads + 2 * self.num_kv_heads, self.head_dim))
        if self.qk_norm or self.rotary:
            q, k, v = op.split(qkv, [self.num_q_heads, self.num_q_heads + self.num_kv_heads], axis=2)
            if self.qk_norm:
                q, k = self.q_norm(q), self.k_norm(k)
            if self.rotary:
                positions = kv_cache.get_query_positions(b * s)
                q, k = self.rotary(q, positions), self.rotary(k, positions)
            qkv = op.concat([q, k, v], dim=2)
        # The cache applies RoPE to q and k (unless `rotary` did), appends k and v, and attends over everything
        # cached so far.
        out = kv_cache.attention_with_fused_qkv(layer_id, qkv, self.num_q_heads, sm_scale=self.sm_scale)
        return self.o_proj(op.reshape(out, (b, s, self.num_q_heads * self.head_dim)))


class GatedMLP(nn.Module):
    """down(activation(gate(x)) * up(x)), with gate and up fused: SwiGLU (silu, the default) or GeGLU (Gemma)."""

    def __init__(self, config: LlamaConfig, activation: Callable[[Tensor], Tensor] = op.silu):
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        gate, up = op.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(self.activation(gate) * up)


class DecoderLayer(nn.Module):
    """x + attention(norm(x)), then + mlp(norm(x))."""

    def __init__(self, config: LlamaConfig, attention: Attention):
        self.input_layernorm = rms_norm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = attention
        self.post_attention_layernorm = rms_norm(config.hidden_size, config.rms_norm_eps)
        self.mlp = GatedMLP(config)

    def forward(self, x: Tensor, kv_cache: PagedKVCache, layer_id: int) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), kv_cache, layer_id)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderModel(nn.Module):
    def __init__(self, config: LlamaConfig, *, qk_norm: bool, rotary: Rotary | None):
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([
            DecoderLayer(config, Attention(config, qk_norm=qk_norm, rotary=rotary))
            for _ in range(config.num_hidden_layers)
        ])
        self.norm = rms_norm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: Tensor, kv_cache: PagedKVCache) -> Tensor:
        for layer_id, layer in enumerate(self.layers):
            x = layer(x, kv_cache, layer_id)
        return self.norm(x)


def sliding_window(config: LlamaConfig, options: CompileOptions) -> int | None:
    """The window of the model's sliding-window layers, or None when it has none: Gemma's sliding layers, or every
    layer of a model with one window (Mistral v0.1's 4,096 tokens, Phi-3-mini-4k's 2,047) where the context window
    outgrows it (a window that holds the whole context changes nothing)."""
    if "sliding_attention" in getattr(config, "layer_types", ()):
        return config.sliding_window
    window = config.sliding_window
    return window if window and options.context_window_size > window else None


def check_prefill_chunk(config: LlamaConfig, options: CompileOptions) -> None:
    """TVM's attention among a prefill chunk's own tokens has no window: a chunk must fit in the sliding window."""
    window = sliding_window(config, options)
    if window and options.prefill_chunk_size > window:
        raise UnsupportedModelError(
            f"{config.model_type}: a prefill chunk of {options.prefill_chunk_size} tokens is longer than the sliding "
            f"window ({window}): TVM's attention among a chunk's own tokens has no window; compile with a prefill "
            f"chunk of at most {window} tokens")


class CausalLM(nn.Module):
    """A decoder with its output projection. The exported functions follow the MLC model-library ABI: embed,
    prefill, decode and create_tir_paged_kv_cache (the KV cache kernels depend on the target, hence `target`)."""

    def __init__(self, config: LlamaConfig, options: CompileOptions, target: Target, *, qk_norm: bool = False):
        check_prefill_chunk(config, options)
        self.config = config
        self.options = options
        self.target = target
        self.window = sliding_window(config, options)
        self.rotary = self.model_rotary()
        self.model = DecoderModel(config, qk_norm=qk_norm, rotary=self.rotary)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def model_rotary(self) -> Rotary | None:
        """RoPE that the attention applies itself: with the config's per-frequency factors (Llama 3's scaling), where
        it has them, or plain where the layers slide (TVM's cache would apply it inside its attention kernels then,
        which tabllm's CPU kernels do not). None: the KV cache applies plain RoPE."""
        c = self.config
        if c.rope_freq_factors is None and not self.window:
            return None
        return Rotary(rope_inv_freq(c.rope_theta, c.head_dim, c.rope_freq_factors))

    def logits(self, hidden: Tensor) -> Tensor:
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.lm_head_forward(hidden)
        return self.lm_head(hidden)

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.model.embed_tokens(input_ids)

    def prefill(self, embeds: Tensor, kv_cache: PagedKVCache):
        def last_position(x: te.Tensor):
            b, s, d = x.shape
            return te.compute((b, 1, d), lambda i, _, k: x[i, s - 1, k], name="last_position")

        hidden = self.model(embeds, kv_cache)
        # Only the last position's logits are needed to continue: skip the lm_head for the others.
        hidden = op.tensor_expr_op(last_position, "last_position", [hidden])
        return self.logits(hidden), kv_cache

    def decode(self, embeds: Tensor, kv_cache: PagedKVCache):
        return self.logits(self.model(embeds, kv_cache)), kv_cache

    def kv_cache_attention(self) -> dict:
        """The cache's attention kind per layer and where RoPE is applied: every layer attends to the whole context,
        or to the last `window` tokens (kind "mha_sliding": TVM's runtime passes those layers the keys inside the
        window), and the cache applies Hugging Face's rotate-half RoPE (matching the un-permuted Q/K weights) as it
        splits the fused q/k/v, unless the attention did (model_rotary)."""
        rope_mode = RopeMode.NORMAL if self.rotary is None else RopeMode.NONE
        if self.window:
            # TVM 0.27's runtime allocates the buffers every attention splits its fused q/k/v into only where some
            # cache layer is of kind "mha" (PagedAttentionKVCacheObj's constructor): a cache of sliding layers alone
            # fails on its first forward ("data_ != nullptr", measured natively). So the cache gets one global layer
            # more, which no layer of the model uses: one layer's pages (1/num_hidden_layers of the cache).
            return {"attn_kind": ["mha_sliding"] * self.config.num_hidden_layers + ["mha"],
                    "layer_sliding_window_size": self.window, "rope_mode": rope_mode}
        return {"attn_kind": "mha", "rope_mode": rope_mode}

    def kv_cache_layers(self) -> int:
        """How many layers the KV cache holds: the model's, and the unused one of kv_cache_attention if any."""
        kinds = self.kv_cache_attention()["attn_kind"]
        return len(kinds) if isinstance(kinds, list) else self.config.num_hidden_layers

    def create_tir_paged_kv_cache(
        self, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size, support_sliding_window
    ) -> PagedKVCache:
        c = self.config
        layers = self.kv_cache_layers()
        return TIRPagedKVCache(
            **self.kv_cache_attention(),
            max_batch_size=max_batch_size,
            max_total_seq_len=max_total_seq_len,
            prefill_chunk_size=prefill_chunk_size,
            page_size=page_size,
            support_sliding_window=support_sliding_window,
            layer_partition=rx.ShapeExpr([0, layers]),
            num_hidden_layers=layers,
            num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads,
            qk_head_dim=c.head_dim,
            v_head_dim=c.head_dim,
            mla_original_qk_head_dim=0,
            mla_original_v_head_dim=0,
            rope_scale=1,
            rope_theta=c.rope_theta,
            rope_scaling={},  # the cache's RoPE is plain: the model applies any scaled one (model_rotary)
            rope_ext_factors=rx.prim_value(0),  # relax has no Optional: 0 stands for "none"
            rotary_dim=c.head_dim,
            enable_disaggregation=False,
            dtype="float32",
            target=self.target,
        )

    def export_spec(self) -> nn.spec.ModuleSpec:
        """Every exported function with its symbolic dims; weights are one packed tuple argument."""
        hidden = self.config.hidden_size
        packed = {"param_mode": "packed", "effect_mode": "none"}
        kv_cache = nn.spec.Object(object_type=PagedKVCache)
        return nn.spec.ModuleSpec.from_raw({
            "embed": {"input_ids": nn.spec.Tensor(["seq_len"], "int32"), "$": packed},
            "prefill": {"embeds": nn.spec.Tensor([1, "seq_len", hidden], "float32"), "kv_cache": kv_cache,
                        "$": packed},
            "decode": {"embeds": nn.spec.Tensor([1, 1, hidden], "float32"), "kv_cache": kv_cache, "$": packed},
            "create_tir_paged_kv_cache": {
                "max_batch_size": int, "max_total_seq_len": int, "prefill_chunk_size": int, "page_size": int,
                "support_sliding_window": int, "$": {"param_mode": "none", "effect_mode": "none"},
            },
        }, self)
