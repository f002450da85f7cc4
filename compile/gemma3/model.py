"""Gemma 3's decoder as tvm.relax.frontend.nn modules over TVM's paged KV cache, and Gemma 2's (the config says which:
Gemma 2 has no q/k norms, one RoPE base for every layer, and soft caps).

What differs from compile/layers.py: the embeddings are scaled by sqrt(hidden_size); every sublayer's output is
normalised too (post-attention and post-feed-forward norms) before it joins the residual; q and k are RMS-normalised
per head (Gemma 3); the MLP is GeGLU (tanh-approximated GELU); scores are scaled by query_pre_attn_scalar^-0.5;
sliding layers attend to the last `sliding_window` tokens only and rotate q and k with their own RoPE base (Gemma
3); the output logits are soft-capped where the config says so (Gemma 2). The attention scores' soft cap (Gemma 2)
is not in these modules: TVM's attention kernels have none, so the CPU library's own kernels apply it
(compile/llama/cpu_attention.py) and TVM's GPU kernels get it put in (compile/llama/soft_cap.py), both given the cap
by compile/build.py. The norms scale by (1 + w): compile/gemma3/__init__.py stores 1 + w, so the RMSNorm here is the
shared one.

The attention is the shared one, with Gemma's score scale and RoPE base per layer. The cache holds one attention
kind per layer ("mha_sliding" for the sliding layers, whose window TVM's runtime applies: it passes those layers the
keys inside the window). It cannot apply two RoPE bases, so the attention applies RoPE itself (RopeMode.NONE), at
the query positions the cache reports.
"""
import math

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache, RopeMode
from tvm.target import Target

from compile.gemma3.config import SLIDING, Gemma3Config
from compile.layers import (Attention, CausalLM, Embedding, GatedMLP, Rotary, check_prefill_chunk, rms_norm,
                            rope_inv_freq)
from compile.options import CompileOptions


def gelu_tanh(x: Tensor) -> Tensor:
    """transformers' gelu_pytorch_tanh."""
    return op.gelu(x, approximate="tanh")


class Gemma3DecoderLayer(nn.Module):
    """x + norm(attention(norm(x))), then + norm(mlp(norm(x)))."""

    def __init__(self, config: Gemma3Config, layer: int):
        h, eps = config.hidden_size, config.rms_norm_eps
        self.input_layernorm = rms_norm(h, eps)
        self.self_attn = Attention(config, qk_norm=config.qk_norm,
                                   rotary=Rotary(rope_inv_freq(config.rope_theta_of(layer), config.head_dim)),
                                   sm_scale=config.query_pre_attn_scalar ** -0.5)
        self.post_attention_layernorm = rms_norm(h, eps)
        self.pre_feedforward_layernorm = rms_norm(h, eps)
        self.mlp = GatedMLP(config, gelu_tanh)
        self.post_feedforward_layernorm = rms_norm(h, eps)

    def forward(self, x: Tensor, kv_cache: PagedKVCache, layer_id: int) -> Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), kv_cache, layer_id))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class Gemma3DecoderModel(nn.Module):
    def __init__(self, config: Gemma3Config):
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([Gemma3DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = rms_norm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: Tensor, kv_cache: PagedKVCache) -> Tensor:
        for layer_id, layer in enumerate(self.layers):
            x = layer(x, kv_cache, layer_id)
        return self.norm(x)


class Gemma3CausalLM(CausalLM):
    """compile/layers.py's CausalLM (its ABI, logits and KV cache) with Gemma's decoder, embedding scale and logit
    soft cap; its own __init__, as the shared one builds the Llama-style decoder."""

    def __init__(self, config: Gemma3Config, options: CompileOptions, target: Target):
        check_prefill_chunk(config, options)
        self.config = config
        self.options = options
        self.target = target
        self.model = Gemma3DecoderModel(config)
        # float32(sqrt(hidden_size)), as transformers casts it to the embedding's dtype
        self.embed_scale = float(math.sqrt(config.hidden_size))
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.model.embed_tokens(input_ids) * self.embed_scale

    def logits(self, hidden: Tensor) -> Tensor:
        """cap * tanh(logits / cap), as transformers computes it, where the config has a final soft cap."""
        logits, cap = super().logits(hidden), self.config.final_logit_softcapping
        return logits if cap is None else op.tanh(logits / cap) * cap

    def kv_cache_attention(self) -> dict:
        return {
            "attn_kind": ["mha_sliding" if kind == SLIDING else "mha" for kind in self.config.layer_types],
            "layer_sliding_window_size": self.config.sliding_window or 0,
            "rope_mode": RopeMode.NONE,
        }
