"""The Llama architecture as a tvm.relax.frontend.nn graph, with attention through TVM's paged KV cache.

Parameter names follow MLC-LLM (fused qkv_proj and gate_up_proj) so bundles interoperate; `weights.py` maps
the Hugging Face names of models/ onto them.
"""
from dataclasses import dataclass

from tvm import relax as rx
from tvm import te
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache, RopeMode, TIRPagedKVCache
from tvm.target import Target

from models.llama import LlamaConfig


@dataclass(frozen=True)
class CompileOptions:
    """What is fixed at compile time besides the architecture."""

    context_window_size: int = 4096
    prefill_chunk_size: int = 1024

    def __post_init__(self):
        if not 0 < self.prefill_chunk_size <= self.context_window_size:
            raise ValueError(
                f"prefill chunk size {self.prefill_chunk_size} must be in 1..context window "
                f"{self.context_window_size}"
            )


class LlamaEmbedding(nn.Embedding):
    """Token embedding whose table doubles as the output projection when embeddings are tied."""

    def lm_head_forward(self, x: Tensor) -> Tensor:
        return op.matmul(x, op.permute_dims(self.weight))


class LlamaAttention(nn.Module):
    def __init__(self, config: LlamaConfig):
        self.head_dim = config.head_dim
        self.num_q_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        qkv_features = (self.num_q_heads + 2 * self.num_kv_heads) * self.head_dim
        self.qkv_proj = nn.Linear(config.hidden_size, qkv_features, bias=False)
        self.o_proj = nn.Linear(self.num_q_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x: Tensor, kv_cache: PagedKVCache, layer_id: int) -> Tensor:
        b, s, _ = x.shape
        qkv = op.reshape(self.qkv_proj(x), (b, s, self.num_q_heads + 2 * self.num_kv_heads, self.head_dim))
        # The cache applies RoPE to q and k, appends k and v, and attends over everything cached so far.
        out = kv_cache.attention_with_fused_qkv(layer_id, qkv, self.num_q_heads, sm_scale=self.head_dim**-0.5)
        return self.o_proj(op.reshape(out, (b, s, self.num_q_heads * self.head_dim)))


class LlamaMLP(nn.Module):
    def __init__(self, config: LlamaConfig):
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = op.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(op.silu(gate) * up)


class LlamaDecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig):
        self.input_layernorm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)
        self.self_attn = LlamaAttention(config)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)
        self.mlp = LlamaMLP(config)

    def forward(self, x: Tensor, kv_cache: PagedKVCache, layer_id: int) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), kv_cache, layer_id)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, config: LlamaConfig):
        self.embed_tokens = LlamaEmbedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([LlamaDecoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.RMSNorm(config.hidden_size, -1, config.rms_norm_eps, bias=False)

    def forward(self, x: Tensor, kv_cache: PagedKVCache) -> Tensor:
        for layer_id, layer in enumerate(self.layers):
            x = layer(x, kv_cache, layer_id)
        return self.norm(x)


class LlamaForCausalLM(nn.Module):
    """The exported functions follow the MLC model-library ABI: embed, prefill, decode and
    create_tir_paged_kv_cache (the KV cache kernels depend on the target, hence `target`)."""

    def __init__(self, config: LlamaConfig, options: CompileOptions, target: Target):
        self.config = config
        self.options = options
        self.target = target
        self.model = LlamaModel(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

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

    def create_tir_paged_kv_cache(
        self, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size, support_sliding_window
    ) -> PagedKVCache:
        c = self.config
        return TIRPagedKVCache(
            attn_kind="mha",
            max_batch_size=max_batch_size,
            max_total_seq_len=max_total_seq_len,
            prefill_chunk_size=prefill_chunk_size,
            page_size=page_size,
            support_sliding_window=support_sliding_window,
            layer_partition=rx.ShapeExpr([0, c.num_hidden_layers]),
            num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads,
            qk_head_dim=c.head_dim,
            v_head_dim=c.head_dim,
            mla_original_qk_head_dim=0,
            mla_original_v_head_dim=0,
            rope_mode=RopeMode.NORMAL,  # Hugging Face rotate-half RoPE, matching the un-permuted Q/K weights
            rope_scale=1,
            rope_theta=c.rope_theta,
            rope_scaling={},
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
