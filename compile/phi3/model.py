"""Phi-3's decoder: the shared one (compile/layers.py), its attention rotating q and k by LongRoPE where the config
has it (TVM 0.27's KV cache has a LongRoPE kernel, which does not parse, and would pick a factor set per forward
pass, by its length).

transformers picks LongRoPE's factor set by the length of the sequence so far: the short factors while it fits the
original context, the long ones past it (keeping the keys it cached, rotated by the other set). A compiled model
picks once, by its context window, as llama.cpp does by its context size: the short factors where the window fits
the original context (transformers' choice for every sequence the window holds), else the long ones (transformers'
choice for a sequence longer than the original context from its first forward pass on).
"""
from compile.layers import CausalLM, Rotary, rope_inv_freq
from compile.phi3.config import longrope_attention_factor


class Phi3CausalLM(CausalLM):
    def model_rotary(self) -> Rotary | None:
        scaling = self.config.rope_scaling
        if not scaling:
            return super().model_rotary()
        long = self.options.context_window_size > scaling["original_max_position_embeddings"]
        factors = scaling["long_factor" if long else "short_factor"]
        return Rotary(rope_inv_freq(self.config.rope_theta, self.config.head_dim, factors),
                      longrope_attention_factor(scaling))
