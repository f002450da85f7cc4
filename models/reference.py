"""A readable pure-numpy Llama forward pass with a KV cache: the float32 reference later stages compare against.

Weights use Hugging Face names and layout (see models.llama), so RoPE is HF's rotate_half form; its frequencies are
divided by the config's per-frequency factors where it has them (Llama 3's scaling).
"""
import numpy as np

from models.errors import UnsupportedModelError
from models.llama import LlamaConfig, check_weights


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * weight


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.exp(-x))


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class NumpyLlama:
    """prefill() and decode() append to the KV cache of one sequence; reset() starts a new one."""

    def __init__(self, config: LlamaConfig, weights: dict[str, np.ndarray]):
        if config.attention_bias or config.rope_scaling or config.sliding_window:
            raise UnsupportedModelError("the numpy reference computes Llama: no attention biases, RoPE scaling other "
                                        "than Llama 3's or sliding window (transformers is the others' reference)")
        check_weights(config, weights)
        self.config, self.w = config, weights
        self.lm_head = weights["model.embed_tokens.weight" if config.tie_word_embeddings else "lm_head.weight"]
        hd = config.head_dim
        # Llama 3's scaling divides each frequency by its factor
        divisors = config.rope_theta ** (np.arange(0, hd, 2) / hd) * np.asarray(config.rope_freq_factors or 1.0)
        self.inv_freq = (1.0 / divisors).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        c = self.config
        empty = np.zeros((c.num_key_value_heads, 0, c.head_dim), np.float32)
        self.k_cache = [empty] * c.num_hidden_layers  # per layer: [kv_heads, seq_len, head_dim]
        self.v_cache = [empty] * c.num_hidden_layers

    @property
    def seq_len(self) -> int:
        return self.k_cache[0].shape[1]

    def prefill(self, ids) -> np.ndarray:
        """Logits [T, vocab] for the tokens `ids`, which continue the cached sequence (so prefill can be chunked)."""
        c, w = self.config, self.w
        ids = np.asarray(ids, dtype=np.int64)
        start = self.seq_len
        if start + len(ids) > c.context_length:
            raise ValueError(f"{start} cached + {len(ids)} new tokens exceed the context of {c.context_length}")
        angles = np.outer(np.arange(start, start + len(ids), dtype=np.float32), self.inv_freq)
        angles = np.concatenate([angles, angles], axis=-1)  # [T, head_dim], as HF's rotate_half expects
        cos, sin = np.cos(angles), np.sin(angles)
        x = w["model.embed_tokens.weight"][ids]
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            x = x + self.attention(i, rms_norm(x, w[p + "input_layernorm.weight"], c.rms_norm_eps), cos, sin)
            x = x + self.mlp(i, rms_norm(x, w[p + "post_attention_layernorm.weight"], c.rms_norm_eps))
        return rms_norm(x, w["model.norm.weight"], c.rms_norm_eps) @ self.lm_head.T

    def decode(self, token_id: int) -> np.ndarray:
        """Logits [vocab] for one more token."""
        return self.prefill([token_id])[0]

    def generate_greedy(self, prompt_ids, max_new_tokens: int, stop_ids) -> list[int]:
        """New token ids (argmax each step) from a fresh sequence, up to and including the first stop id."""
        self.reset()
        logits = self.prefill(prompt_ids)[-1]
        out = []
        while True:
            out.append(int(np.argmax(logits)))
            if out[-1] in stop_ids or len(out) == max_new_tokens:
                return out
            logits = self.decode(out[-1])

    def attention(self, i: int, x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
        c, w, p = self.config, self.w, f"model.layers.{i}.self_attn."
        T, hd = len(x), c.head_dim

        def heads(y, n):  # [T, n * hd] -> [n, T, hd]
            return y.reshape(T, n, hd).transpose(1, 0, 2)

        q = heads(x @ w[p + "q_proj.weight"].T, c.num_attention_heads)
        k = heads(x @ w[p + "k_proj.weight"].T, c.num_key_value_heads)
        v = heads(x @ w[p + "v_proj.weight"].T, c.num_key_value_heads)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = self.k_cache[i] = np.concatenate([self.k_cache[i], k], axis=1)
        v = self.v_cache[i] = np.concatenate([self.v_cache[i], v], axis=1)
        # Grouped-query attention: query head j reads KV head j // group (HF's repeat_kv order).
        group = c.num_attention_heads // c.num_key_value_heads
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(hd))  # [heads, T, S]
        S = k.shape[1]
        future = np.arange(S)[None, :] > np.arange(S - T, S)[:, None]  # key after the query's position
        scores = np.where(future, -np.inf, scores)
        out = (softmax(scores) @ v).transpose(1, 0, 2).reshape(T, -1)
        return out @ w[p + "o_proj.weight"].T

    def mlp(self, i: int, x: np.ndarray) -> np.ndarray:
        w, p = self.w, f"model.layers.{i}.mlp."
        return (silu(x @ w[p + "gate_proj.weight"].T) * (x @ w[p + "up_proj.weight"].T)) @ w[p + "down_proj.weight"].T
