"""TVM's paged KV cache attention alone (one layer, SmolLM2's heads: 9 query / 3 KV heads of 64), compiled for
WebGPU and for wasm32 exactly as the model libraries are, fed random fused q/k/v in chunks on one sequence, against
numpy causal attention over the whole sequence. Chunks after the first attend over the cache: on WebGPU that path
merges two partial attention states, which TVM's own merge kernel got wrong (compile/llama/merge_state.py). The same
as a sliding layer (attention kind "mha_sliding", Gemma 3's), each token attending to the last WINDOW only: TVM's
kernels on WebGPU, ours on the CPU."""
from pathlib import Path

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from tvm import relax as rx
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache, RopeMode, TIRPagedKVCache

from compile.build import _pipeline, replace_kv_cache_kernels
from compile.llama.cpu_attention import KEYS_PER_TILE, TILES_PER_CHUNK
from compile.toolchain import wasm32_target, wasm_fcompile, webgpu_target

Q_HEADS, KV_HEADS, HEAD_DIM, ROPE_THETA = 9, 3, 64, 100000.0
# A history over several 16-token pages; prefills of 7 and 5 over it that cross page boundaries; a single token
# (the decode kernel's path); 16 tokens starting mid-page; 40 tokens spanning three pages, five times; then a single
# token over more keys than one task of the CPU decode kernel takes (cpu_attention.TILES_PER_CHUNK), whose states it
# merges.
CHUNKS = [20, 7, 1, 5, 2, 16] + [40] * 6 + [1]
ATOL = 2e-3  # measured 5e-4 on SwiftShader (its exp2), 7e-7 on wasm32; a wrong merge is off by 1-3
# Shorter than the history before the first 40-token chunk (51 tokens), and no shorter than a chunk: TVM's attention
# among a chunk's own tokens has no window (Gemma3CausalLM refuses prefill chunks longer than the window)
WINDOW = 40


class KVCacheAttention(nn.Module):
    """`attend`: the paged KV cache's attention on fused q/k/v, as LlamaAttention calls it, and nothing else."""

    def __init__(self, target, window: int | None):
        self.target = target
        self.window = window
        # The sliding layer comes after a full one: TVM's cache leaves buffers that only full layers allocate
        # unallocated where every layer slides (CreateView on a null tensor).
        self.kinds = ["mha", "mha_sliding"] if window else ["mha"]
        self.layer = len(self.kinds) - 1

    def attend(self, qkv: nn.Tensor, kv_cache: PagedKVCache):
        return kv_cache.attention_with_fused_qkv(self.layer, qkv, Q_HEADS, sm_scale=HEAD_DIM**-0.5), kv_cache

    def create_tir_paged_kv_cache(self, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size,
                                  support_sliding_window):
        window = {"layer_sliding_window_size": self.window} if self.window else {}
        return TIRPagedKVCache(
            attn_kind=self.kinds, **window, max_batch_size=max_batch_size, max_total_seq_len=max_total_seq_len,
            prefill_chunk_size=prefill_chunk_size, page_size=page_size, support_sliding_window=support_sliding_window,
            layer_partition=rx.ShapeExpr([0, len(self.kinds)]), num_hidden_layers=len(self.kinds),
            num_attention_heads=Q_HEADS,
            num_key_value_heads=KV_HEADS, qk_head_dim=HEAD_DIM, v_head_dim=HEAD_DIM, mla_original_qk_head_dim=0,
            mla_original_v_head_dim=0, rope_mode=RopeMode.NORMAL, rope_scale=1, rope_theta=ROPE_THETA,
            rope_scaling={}, rope_ext_factors=rx.prim_value(0), rotary_dim=HEAD_DIM, enable_disaggregation=False,
            dtype="float32", target=self.target)


def build_library(target, path: Path, window: int | None) -> None:
    module = KVCacheAttention(target, window)
    no_params = {"param_mode": "none", "effect_mode": "none"}
    mod, _ = module.export_tvm(spec=nn.spec.ModuleSpec.from_raw({
        "attend": {"qkv": nn.spec.Tensor([1, "seq_len", Q_HEADS + 2 * KV_HEADS, HEAD_DIM], "float32"),
                   "kv_cache": nn.spec.Object(object_type=PagedKVCache), "$": no_params},
        "create_tir_paged_kv_cache": {"max_batch_size": int, "max_total_seq_len": int, "prefill_chunk_size": int,
                                      "page_size": int, "support_sliding_window": int, "$": no_params},
    }, module))
    replace_kv_cache_kernels(mod, KV_HEADS, Q_HEADS, HEAD_DIM, target, window)  # as compile.build.export_model does
    rx.build(mod, target=target, system_lib=True, relax_pipeline=_pipeline(target)).export_library(
        str(path), fcompile=wasm_fcompile(target, "-O1"))


def rope(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Hugging Face's rotate-half RoPE on x [tokens, heads, head_dim]."""
    inv_freq = 1.0 / ROPE_THETA ** (np.arange(0, HEAD_DIM, 2) / HEAD_DIM)
    angles = np.outer(positions, inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)[:, None, :]
    half = HEAD_DIM // 2
    return x * np.cos(angles) + np.concatenate([-x[..., half:], x[..., :half]], axis=-1) * np.sin(angles)


def causal_attention(qkv: np.ndarray, window: int | None) -> np.ndarray:
    """[tokens, q+2kv heads, head_dim] -> [tokens, q heads, head_dim], every token attending to all before it (or
    to the last `window` tokens, its own included)."""
    positions = np.arange(len(qkv))
    q = rope(qkv[:, :Q_HEADS].astype(np.float64), positions)
    k = rope(qkv[:, Q_HEADS:Q_HEADS + KV_HEADS].astype(np.float64), positions)
    v = qkv[:, Q_HEADS + KV_HEADS:].astype(np.float64)
    future = np.triu(np.ones((len(qkv), len(qkv)), bool), k=1)
    if window:
        future |= np.tril(np.ones((len(qkv), len(qkv)), bool), k=-window)  # further back than the window
    out = np.empty((len(qkv), Q_HEADS, HEAD_DIM))
    for h in range(Q_HEADS):
        kv_head = h // (Q_HEADS // KV_HEADS)
        scores = np.where(future, -np.inf, q[:, h] @ k[:, kv_head].T * HEAD_DIM**-0.5)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        out[:, h] = weights / weights.sum(axis=-1, keepdims=True) @ v[:, kv_head]
    return out


@pytest.fixture(scope="module")
def runner_url(tmp_path_factory, serve, web_dist):
    libraries = tmp_path_factory.mktemp("kv-attention")
    for window in (None, WINDOW):
        kind = "sliding" if window else "full"
        build_library(webgpu_target(), libraries / f"attention-{kind}-webgpu.wasm", window)
        build_library(wasm32_target(), libraries / f"attention-{kind}-wasm32.wasm", window)
    return serve(Starlette(routes=[
        Mount("/static", StaticFiles(directory=web_dist)),
        Mount("/libs", StaticFiles(directory=libraries)),
        Mount("/", StaticFiles(directory=Path(__file__).parent / "pages")),
    ])) + "/kv_attention_runner.html"


@pytest.mark.parametrize("window", [None, WINDOW], ids=["full", "sliding"])
@pytest.mark.parametrize("device", ["webgpu", "cpu"])
def test_chunks_attending_over_the_cache_match_numpy(device, window, page, runner_url):
    assert sum(CHUNKS[:-1]) > TILES_PER_CHUNK * KEYS_PER_TILE and CHUNKS[-1] == 1
    qkv = np.random.default_rng(0).standard_normal((sum(CHUNKS), Q_HEADS + 2 * KV_HEADS, HEAD_DIM)).astype(np.float32)
    expected = causal_attention(qkv, window)
    page.goto(runner_url)
    kind = "sliding" if window else "full"
    outputs = page.evaluate("spec => window.attendInChunks(spec)", {
        "library": f"/libs/attention-{kind}-{'webgpu' if device == 'webgpu' else 'wasm32'}.wasm", "device": device,
        "chunks": CHUNKS, "qkv": qkv.ravel().tolist(), "width": [Q_HEADS + 2 * KV_HEADS, HEAD_DIM]})
    start, errors = 0, []
    for n, output in zip(CHUNKS, outputs):
        errors.append(float(np.abs(np.reshape(output, (n, Q_HEADS, HEAD_DIM)) - expected[start:start + n]).max()))
        start += n
    print(f"{device}, {kind}: max |error| per chunk {dict(zip(CHUNKS, (f'{e:.1e}' for e in errors)))}")
    assert max(errors) < ATOL, f"chunks (after {CHUNKS}) differ from numpy by {errors}"
