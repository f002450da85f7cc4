"""CPU attention kernels for TVM's paged KV cache: decode, prefill over the cached pages, and prefill over the new
tokens (ragged), in place of TVM's own CPU kernels (tvm.relax.frontend.nn.llm._decode_kernels /
_prefill_kernels), with the same signatures, arguments and results.

TVM's CPU kernels are scalar: per key they run a 64-step dot product, an exp2 and a rescale of the output row,
the prefill kernel walks every row of the page pool (the whole context window) testing each against the
sequence length, and the ragged kernel scores masked keys too. Measured in Chromium (wasm32, one thread) with
SmolLM2: decode fell from 26 to 9 tokens/s as the context grew from 67 to 1,642 tokens, and a 1,642-token prompt
took 94 s. Here: keys in tiles of 16 (one KV page, located once per tile), dot products in SIMD lanes over a
group of keys at once, one online softmax rescale per tile, the tile's exponentials as a vector polynomial (libm's
exp2f is a call per score), output lanes accumulated in registers over the tile's keys, only the keys the mask
lets through. The query heads that share a KV head go together, so each key and value row is loaded once for them:
decode over 2,048 keys reads 3x less of the cache than with a task per query head, and took 1.7x less time (native,
one thread). A prefill task is one token and KV head. A decode task is a chunk of TILES_PER_CHUNK tiles of one
sequence for every head, reading the keys and values in the order a page holds them (_attend); the chunks' states
are merged after, in order. Tasks run in parallel on the CPU library's threads; each one's arithmetic, and the
chunks, are the same whatever the thread count.

Scores are in the log2 domain (x log2(e), exp2), and the log-sum-exp state starts at m = -5e4, d = 1, as in TVM's
kernels, so the merged states TVM combines (tir_attention_merge_state) mean the same. RoPE inside attention
(rotary_mode 1) is not supported: tabllm's models apply it when they split the fused QKV (RopeMode.NORMAL), or
themselves (Gemma 2 and 3, RopeMode.NONE).

Attention logit soft-capping (Gemma 2's: scores -> cap * tanh(scores / cap) before the mask and softmax) is a
compile-time option of every kernel, which emits nothing when it is off.

Sliding layers (attention kind "mha_sliding", Gemma 2's and 3's) have their own variants of the paged kernels: TVM
passes them the pages of the window, whose first key sits mid-page, so there a tile is 16 consecutive keys that each
find their page, and the prefill masks what lies before a row's window as TVM's does. Their speed is not measured
yet.
"""
import math

import numpy as np
import tvm
from tvm.script import tirx as T

KEYS_PER_TILE = 16
# A decode task: a chunk of a sequence's tiles (256 keys), so that a long context keeps every thread busy whatever the
# number of KV heads; the chunks' states are merged after.
TILES_PER_CHUNK = 16
# TVM's attention kernels are built for pages of 16 tokens (their default); the engine and the native runner
# create the cache with that page size.
PAGE_SIZE = 16
LANES = 4  # float32 lanes of a 128-bit SIMD vector
LOG2_E = math.log2(math.exp(1))
EMPTY_MAX = -5e4  # TVM's initial running maximum (log2 domain)
# 2^f on [0, 1]: the polynomial through 6 Chebyshev nodes, coefficients from the constant term up.
_EXP2_NODES = 0.5 + 0.5 * np.cos((2 * np.arange(6) + 1) * np.pi / 12)
EXP2_COEFFICIENTS = tuple(float(c) for c in np.polynomial.polynomial.polyfit(_EXP2_NODES, 2.0 ** _EXP2_NODES, 5))
ROTARY_MODE_ERROR = "tabllm's CPU attention kernels take RoPE applied before attention (rotary_mode 0)"
# The names of TVM's CPU kernels in a module exported with a TIRPagedKVCache, which ours take over; the paged ones
# have variants for the layers of kind "mha_sliding" (Gemma 3's sliding layers).
DECODE, PREFILL_PAGED, PREFILL_RAGGED = ("batch_decode_paged_kv_cpu", "batch_prefill_paged_kv_cpu",
                                         "batch_prefill_ragged_kv")
SLIDING = "_sliding_window"


def _exp2(x):
    """2^x for x <= 0 (scores less their running maximum) in vector arithmetic: 2^floor(x) from the exponent
    bits, 2^frac(x) from a degree-5 polynomial (relative error 1.8e-7). T.exp2 compiles to a call of libm's
    exp2f per score, which WebAssembly cannot vectorize."""
    x = T.max(x, T.float32(-126))  # 2^-126, the smallest normal float, stands for every smaller value
    whole = T.floor(x)
    frac = x - whole
    poly = T.float32(EXP2_COEFFICIENTS[-1])
    for coefficient in EXP2_COEFFICIENTS[-2::-1]:
        poly = poly * frac + T.float32(coefficient)
    return poly * T.reinterpret("float32", T.shift_left(T.Cast("int32", whole) + 127, 23))


def _chains(rows: int) -> int:
    """How many keys (scores) or output vectors (values) a task takes at once per row: about 12 chains of
    multiply-adds in all, enough to hide the multiply-add's latency and few enough to stay in 16 vector registers.
    One key at a time, each row's dot product was one chain of 16 dependent multiply-adds: 1.13x slower (decode
    over 2,048 keys, native, one thread: 161 against 143 us a layer)."""
    return 1 << max(0, min(2, (12 // rows).bit_length() - 1))


def _query_scale(sm_scale, softcap: float | None):
    """What _attend scales the query rows by: sm_scale into the log2 domain, so that a dot product is the score; with
    a soft cap, sm_scale / cap, so that a dot product is tanh's argument (as transformers computes it, up to
    rounding)."""
    return sm_scale * LOG2_E if softcap is None else sm_scale / softcap


def _score(dot, softcap: float | None):
    """The score (log2 domain) of a dot product of a scaled query row and a key: itself, or cap * tanh(it)."""
    return dot if softcap is None else T.float32(softcap * LOG2_E) * T.tanh(dot)


def _attend(head_dim: int):
    """Query rows against the same keys: `heads` KV heads, each with `rows` query rows (the query heads that share
    it), over the tiles [first_tile, end_tile) of keys [0, length). tile_start(tile) locates the tile of keys
    [tile * KEYS_PER_TILE, ...) (a page, or a first row) once per tile; key(h, start, j, d) and value(h, start, j, d)
    read element d of the tile's key j for KV head h; query(h, r, d), out(h, r, d, value, sum) and
    state_out(h, r, maximum, sum) address query row r of KV head h: out gets the output not yet divided by the sum
    of the exponentials, state_out the running maximum of the scores (log2 domain) and that sum.

    Each key and value row is loaded once for all the rows. Per tile, every head's keys are read before any value:
    a page holds them in that order (keys, then values, head after head), so a tile of several heads is one forward
    stream. Head by head, a page was six streams of 4 KB, each a fresh start for the prefetcher: decode over 2,048
    keys in memory rather than cache (30 layers' pages in turn, as a decode step reads them) took 524 against 276 us
    a layer (native, one thread, CPU time).

    `softcap`: None, or the attention logit soft-cap (scores -> cap * tanh(scores / cap)), fixed at compile time."""

    @T.macro(hygienic=False)
    def attend(heads, rows, query, first_tile, end_tile, length, tile_start, key, value, out, state_out, sm_scale,
               softcap):
        with T.sblock("attend"):
            T.reads()  # opaque: the loops below read rows chosen at run time
            T.writes()
            visible: T.let[T.int32] = length
            q_rows = T.sblock_alloc_buffer((heads, rows, head_dim), "float32")
            o_rows = T.sblock_alloc_buffer((heads, rows, head_dim), "float32")
            scores = T.sblock_alloc_buffer((heads, rows, KEYS_PER_TILE), "float32")
            lane_sums = T.sblock_alloc_buffer((rows, _chains(rows), LANES), "float32")
            # per row: running max, running sum, max of the tile, rescale of what came before it
            state = T.sblock_alloc_buffer((heads, rows, 4), "float32")
            for h in T.serial(heads):
                for r in T.unroll(rows):
                    for d in T.vectorized(head_dim):
                        q_rows[h, r, d] = query(h, r, d) * T.float32(_query_scale(sm_scale, softcap))
                        o_rows[h, r, d] = T.float32(0)
                    state[h, r, 0] = T.float32(EMPTY_MAX)
                    state[h, r, 1] = T.float32(1)
            for tile in T.serial(first_tile, end_tile):
                tile_length: T.let[T.int32] = T.min(KEYS_PER_TILE, visible - tile * KEYS_PER_TILE)
                start: T.let[T.int32] = tile_start(tile)
                for h in T.serial(heads):
                    # A group of keys at once: its rows' dot products are independent chains of multiply-adds.
                    for group in T.serial(T.ceildiv(tile_length, _chains(rows))):
                        for g in T.unroll(_chains(rows)):
                            for r in T.unroll(rows):
                                for lane in T.vectorized(LANES):
                                    lane_sums[r, g, lane] = T.float32(0)
                        for i in T.serial(head_dim // LANES):
                            for g in T.unroll(_chains(rows)):
                                for r in T.unroll(rows):
                                    for lane in T.vectorized(LANES):
                                        # past the tile's last key (a partial group): score that key again, unused
                                        lane_sums[r, g, lane] += q_rows[h, r, i * LANES + lane] * key(
                                            h, start, T.min(group * _chains(rows) + g, tile_length - 1),
                                            i * LANES + lane)
                        for g in T.unroll(_chains(rows)):
                            for r in T.unroll(rows):
                                scores[h, r, group * _chains(rows) + g] = _score(
                                    (lane_sums[r, g, 0] + lane_sums[r, g, 1])
                                    + (lane_sums[r, g, 2] + lane_sums[r, g, 3]), softcap)
                for h in T.serial(heads):
                    for r in T.unroll(rows):
                        state[h, r, 2] = state[h, r, 0]
                        for j in T.serial(tile_length):
                            state[h, r, 2] = T.max(state[h, r, 2], scores[h, r, j])
                        state[h, r, 3] = _exp2(state[h, r, 0] - state[h, r, 2])
                        state[h, r, 0] = state[h, r, 2]
                        for j in T.vectorized(KEYS_PER_TILE):
                            scores[h, r, j] = T.if_then_else(
                                j < tile_length, _exp2(scores[h, r, j] - state[h, r, 0]), T.float32(0))
                        state[h, r, 1] = state[h, r, 1] * state[h, r, 3]
                        for j in T.serial(KEYS_PER_TILE):
                            state[h, r, 1] = state[h, r, 1] + scores[h, r, j]
                        for d in T.vectorized(head_dim):
                            o_rows[h, r, d] = o_rows[h, r, d] * state[h, r, 3]
                for h in T.serial(heads):
                    # A block of output vectors outermost: its rows accumulate over the tile's keys in registers, as
                    # independent chains of multiply-adds.
                    for block in T.serial(head_dim // (LANES * _chains(rows))):
                        for j in T.serial(tile_length):
                            for v in T.unroll(_chains(rows)):
                                for r in T.unroll(rows):
                                    for lane in T.vectorized(LANES):
                                        o_rows[h, r, (block * _chains(rows) + v) * LANES + lane] += (
                                            scores[h, r, j] * value(
                                                h, start, j, (block * _chains(rows) + v) * LANES + lane))
            for h in T.serial(heads):
                for r in T.unroll(rows):
                    for d in T.vectorized(head_dim):
                        out(h, r, d, o_rows[h, r, d], state[h, r, 1])
                    state_out(h, r, state[h, r, 0], state[h, r, 1])

    return attend


class _CachedKeys:
    """The cached keys a sequence's queries attend to, in the form TVM's kernels get them: all of its pages
    (length_info: each sequence's last page length), or, for a sliding layer, the pages of the window (length_info:
    [last page length, offset of the window's first key in its first page, attention sink size] per sequence; key k
    is at page position k below the sink, k - sink + offset beyond it)."""

    def __init__(self, sliding: bool, page_size: int):
        self.sliding = sliding
        self.page_size = page_size

    def length_info(self, handle, batch_size, elem_offset):
        shape = (3, batch_size) if self.sliding else (batch_size,)
        return T.match_buffer(handle, shape, "int32", elem_offset=elem_offset)

    def count(self, page_indptr, length_info, b):
        begin, end = page_indptr[b], page_indptr[b + 1]
        if not self.sliding:
            return T.if_then_else(begin != end, (end - begin - 1) * self.page_size + length_info[b], 0)
        return T.if_then_else(begin != end, (end - begin - 1) * self.page_size + length_info[0, b]
                              - length_info[1, b] + length_info[2, b], 0)

    def position(self, length_info, b, k):
        if not self.sliding:
            return k
        return T.if_then_else(k < length_info[2, b], k, k - length_info[2, b] + length_info[1, b])

    # _attend's tile_start and key/value readers over the keys from `first_key` on. Every layer but a sliding one
    # has its keys from the start of its first page: a tile is a page, located once. A sliding layer's window starts
    # mid-page: a tile is the index of its first key, and each key finds its page.
    def tile_start(self, page_values, begin):
        if not self.sliding:
            return lambda tile: page_values[begin + tile]
        return lambda tile: tile * KEYS_PER_TILE

    def reader(self, pages, page_values, begin, length_info, b, slot, first_key=0):
        if not self.sliding:
            return lambda kv_head, page, j, d: pages[page, slot, kv_head, j, d]
        ps = self.page_size

        def element(kv_head, start, j, d):
            pos = self.position(length_info, b, first_key + start + j)
            return pages[page_values[begin + pos // ps], slot, kv_head, pos % ps, d]

        return element


def decode_kernel(num_kv_heads: int, num_q_heads: int, head_dim: int, page_size: int,
                  sliding: bool = False, softcap: float | None = None) -> tvm.tirx.PrimFunc:
    """One new token per sequence against the sequence's pages (TVM's batch_decode_paged_kv_cpu; `sliding`: its
    variant for sliding layers, against the window's pages; `softcap`: scores soft-capped)."""
    assert page_size == KEYS_PER_TILE, "a tile of keys is one KV page"
    group_size = num_q_heads // num_kv_heads
    attend = _attend(head_dim)
    cached = _CachedKeys(sliding, page_size)

    @T.prim_func(s_tir=True)
    def batch_decode_paged_kv_cpu(
        Q_handle: T.handle, pages_handle: T.handle, page_table_indptr_handle: T.handle,
        page_table_values_handle: T.handle, var_length_info: T.handle, k_rope_pos_offset_handle: T.handle,
        q_rope_position_handle: T.handle, output_handle: T.handle, lse_handle: T.handle, rotary_mode: T.int32,
        rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32,
    ):
        T.func_attr({"tirx.is_scheduled": True, "global_symbol": DECODE + (SLIDING if sliding else "")})
        B = T.int32()
        nnz_pages = T.int32()
        max_num_pages = T.int32()
        page_indptr_offset = T.int32()
        page_values_offset = T.int32()
        k_rope_offset = T.int32()
        q_rope_offset = T.int32()
        length_info_offset = T.int32()
        Q = T.match_buffer(Q_handle, (B, num_q_heads, head_dim), "float32")
        pages = T.match_buffer(pages_handle, (max_num_pages, 2, num_kv_heads, page_size, head_dim), "float32")
        page_indptr = T.match_buffer(page_table_indptr_handle, (B + 1,), "int32", elem_offset=page_indptr_offset)
        page_values = T.match_buffer(page_table_values_handle, (nnz_pages,), "int32", elem_offset=page_values_offset)
        length_info = cached.length_info(var_length_info, B, length_info_offset)
        k_rope_pos_offset = T.match_buffer(k_rope_pos_offset_handle, (B,), "int32", elem_offset=k_rope_offset)
        q_rope_position = T.match_buffer(q_rope_position_handle, (B,), "int32", elem_offset=q_rope_offset)
        output = T.match_buffer(output_handle, (B, num_q_heads, head_dim), "float32")
        lse = T.match_buffer(lse_handle, (B, num_q_heads), "float32")
        T.Assert(rotary_mode == 0, ROTARY_MODE_ERROR)
        # As many chunks as the longest sequence could need (its pages are among nnz_pages), and at least one.
        partial_out = T.alloc_buffer((B, _chunks(nnz_pages), num_q_heads, head_dim), "float32")
        partial_state = T.alloc_buffer((B, _chunks(nnz_pages), num_q_heads, 2), "float32")  # running maximum, sum
        chunks: T.let[T.int32] = _chunks(nnz_pages)
        for task in T.parallel(B * chunks):
            b: T.let[T.int32] = task // chunks
            chunk: T.let[T.int32] = task % chunks
            begin: T.let[T.int32] = page_indptr[b]
            length: T.let[T.int32] = cached.count(page_indptr, length_info, b)
            attend(
                num_kv_heads, group_size, lambda h, r, d: Q[b, h * group_size + r, d],
                T.min(chunk * TILES_PER_CHUNK, T.ceildiv(length, KEYS_PER_TILE)),
                T.min((chunk + 1) * TILES_PER_CHUNK, T.ceildiv(length, KEYS_PER_TILE)), length,
                cached.tile_start(page_values, begin),
                cached.reader(pages, page_values, begin, length_info, b, 0),
                cached.reader(pages, page_values, begin, length_info, b, 1),
                lambda h, r, d, value, total: T.buffer_store(
                    partial_out, value, [b, chunk, h * group_size + r, d]),
                lambda h, r, maximum, total: _store_state(
                    partial_state, [b, chunk, h * group_size + r], maximum, total),
                sm_scale, softcap)
        # The chunks' states, merged in chunk order (one chunk: the output divided by its sum, bit for bit).
        for row in T.serial(B * num_q_heads):
            with T.sblock("merge"):
                T.reads()
                T.writes()
                b: T.let[T.int32] = row // num_q_heads
                head: T.let[T.int32] = row % num_q_heads
                used: T.let[T.int32] = _chunks(T.ceildiv(cached.count(page_indptr, length_info, b), KEYS_PER_TILE))
                merged = T.sblock_alloc_buffer((head_dim,), "float32")
                total = T.sblock_alloc_buffer((3,), "float32")  # maximum, sum, the chunk's weight
                total[0] = partial_state[b, 0, head, 0]
                for chunk in T.serial(1, used):
                    total[0] = T.max(total[0], partial_state[b, chunk, head, 0])
                total[1] = T.float32(0)
                for d in T.vectorized(head_dim):
                    merged[d] = T.float32(0)
                for chunk in T.serial(used):
                    total[2] = T.exp2(partial_state[b, chunk, head, 0] - total[0])
                    total[1] = total[1] + partial_state[b, chunk, head, 1] * total[2]
                    for d in T.vectorized(head_dim):
                        merged[d] = merged[d] + partial_out[b, chunk, head, d] * total[2]
                for d in T.vectorized(head_dim):
                    output[b, head, d] = merged[d] / total[1]
                lse[b, head] = total[0] + T.log2(total[1])

    return batch_decode_paged_kv_cpu


def _chunks(tiles):
    """The decode tasks of a sequence of `tiles` tiles of keys: at least one, whose empty state merges to nothing."""
    return T.max(1, T.ceildiv(tiles, TILES_PER_CHUNK))


def _store_state(buffer, index: list, maximum, total) -> None:
    """A decode task's state_out: its rows' running maximum and sum, for the merge."""
    T.buffer_store(buffer, maximum, index + [0])
    T.buffer_store(buffer, total, index + [1])


def _visible_keys(causal, row, kv_length, q_length):
    """How many keys query `row` of `q_length` new ones sees of `kv_length`: all, or (causal) those up to its own
    position, as TVM's _causal_mask lets through."""
    return T.if_then_else(causal > 0, T.max(T.min(kv_length, kv_length - q_length + row + 1), 0), kv_length)


def _first_windowed_key(causal, row, kv_length, window: int):
    """The first of `kv_length` cached keys (a sliding layer's) that query `row` of the new ones sees, as TVM's
    _causal_or_sliding_cross_mask lets through: the last window - row - 1 of them (the row's own and the new ones
    before it fill the rest of its window). Without causality, all of them."""
    return T.if_then_else(causal > 0, T.max(kv_length - T.max(window - row - 1, 0), 0), 0)


def prefill_paged_kernel(num_kv_heads: int, num_q_heads: int, head_dim: int, page_size: int,
                         sliding_window: int = 0, softcap: float | None = None) -> tvm.tirx.PrimFunc:
    """New tokens against their sequence's cached pages (TVM's batch_prefill_paged_kv_cpu; `sliding_window` > 0:
    its variant for sliding layers of that window, against the window's pages; `softcap`: scores soft-capped)."""
    assert page_size == KEYS_PER_TILE, "a tile of keys is one KV page"
    group_size = num_q_heads // num_kv_heads
    attend = _attend(head_dim)
    sliding = sliding_window > 0
    cached = _CachedKeys(sliding, page_size)

    @T.prim_func(s_tir=True)
    def batch_prefill_paged_kv_cpu(
        var_q: T.handle, var_q_indptr: T.handle, var_pages: T.handle, var_page_indptr: T.handle,
        var_page_values: T.handle, var_length_info: T.handle, var_k_rope_pos_offset: T.handle,
        var_q_rope_position: T.handle, var_output: T.handle, var_lse: T.handle, causal: T.int32,
        rotary_mode: T.int32, rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32,
    ):
        T.func_attr({"tirx.is_scheduled": True, "global_symbol": PREFILL_PAGED + (SLIDING if sliding else "")})
        batch_size = T.int32()
        total_len = T.int32()
        nnz_pages = T.int32()
        max_num_pages = T.int32()
        q_indptr_offset = T.int32()
        page_indptr_offset = T.int32()
        page_values_offset = T.int32()
        k_rope_offset = T.int32()
        q_rope_offset = T.int32()
        length_info_offset = T.int32()
        q = T.match_buffer(var_q, (total_len, num_q_heads, head_dim), "float32")
        q_indptr = T.match_buffer(var_q_indptr, (batch_size + 1,), "int32", elem_offset=q_indptr_offset)
        pages = T.match_buffer(var_pages, (max_num_pages, 2, num_kv_heads, page_size, head_dim), "float32")
        page_indptr = T.match_buffer(var_page_indptr, (batch_size + 1,), "int32", elem_offset=page_indptr_offset)
        page_values = T.match_buffer(var_page_values, (nnz_pages,), "int32", elem_offset=page_values_offset)
        length_info = cached.length_info(var_length_info, batch_size, length_info_offset)
        k_rope_pos_offset = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=k_rope_offset)
        q_rope_position = T.match_buffer(var_q_rope_position, (total_len,), "int32", elem_offset=q_rope_offset)
        output = T.match_buffer(var_output, (total_len, num_q_heads, head_dim), "float32")
        lse = T.match_buffer(var_lse, (total_len, num_q_heads), "float32")
        T.Assert(rotary_mode == 0, ROTARY_MODE_ERROR)
        for b in T.serial(batch_size):
            q_start: T.let[T.int32] = q_indptr[b]
            q_length: T.let[T.int32] = q_indptr[b + 1] - q_start
            begin: T.let[T.int32] = page_indptr[b]
            kv_length: T.let[T.int32] = cached.count(page_indptr, length_info, b)
            for pair in T.parallel(q_length * num_kv_heads):
                row: T.let[T.int32] = pair // num_kv_heads
                kv_head: T.let[T.int32] = pair % num_kv_heads
                first: T.let[T.int32] = _first_windowed_key(causal, row, kv_length, sliding_window) if sliding else 0
                visible: T.let[T.int32] = (
                    kv_length - first if sliding else _visible_keys(causal, row, kv_length, q_length))
                attend(
                    1, group_size, lambda h, r, d: q[q_start + row, kv_head * group_size + r, d],
                    0, T.ceildiv(visible, KEYS_PER_TILE), visible, cached.tile_start(page_values, begin),
                    lambda h, start, j, d: cached.reader(pages, page_values, begin, length_info, b, 0, first)(
                        kv_head, start, j, d),
                    lambda h, start, j, d: cached.reader(pages, page_values, begin, length_info, b, 1, first)(
                        kv_head, start, j, d),
                    lambda h, r, d, value, total: T.buffer_store(
                        output, value / total, [q_start + row, kv_head * group_size + r, d]),
                    lambda h, r, maximum, total: T.buffer_store(
                        lse, maximum + T.log2(total), [q_start + row, kv_head * group_size + r]),
                    sm_scale, softcap)

    return batch_prefill_paged_kv_cpu


def prefill_ragged_kernel(num_kv_heads: int, num_q_heads: int, head_dim: int,
                          softcap: float | None = None) -> tvm.tirx.PrimFunc:
    """New tokens against the new tokens' own keys and values (TVM's batch_prefill_ragged_kv; `softcap`: scores
    soft-capped)."""
    group_size = num_q_heads // num_kv_heads
    attend = _attend(head_dim)

    @T.prim_func(s_tir=True)
    def batch_prefill_ragged_kv_cpu(
        var_q: T.handle, var_q_indptr: T.handle, var_k: T.handle, var_v: T.handle, var_kv_indptr: T.handle,
        var_q_rope_position: T.handle, var_k_rope_pos_offset: T.handle, var_output: T.handle, var_lse: T.handle,
        causal: T.int32, rotary_mode: T.int32, rope_scale: T.float32, rope_theta: T.float32, sm_scale: T.float32,
    ):
        T.func_attr({"tirx.is_scheduled": True, "global_symbol": PREFILL_RAGGED})
        batch_size = T.int32()
        qo_len = T.int32()
        kv_len = T.int32()
        q_indptr_offset = T.int32()
        kv_indptr_offset = T.int32()
        q_rope_offset = T.int32()
        k_rope_offset = T.int32()
        q = T.match_buffer(var_q, (qo_len, num_q_heads, head_dim), "float32")
        q_indptr = T.match_buffer(var_q_indptr, (batch_size + 1,), "int32", elem_offset=q_indptr_offset)
        k = T.match_buffer(var_k, (kv_len, num_kv_heads, head_dim), "float32")
        v = T.match_buffer(var_v, (kv_len, num_kv_heads, head_dim), "float32")
        kv_indptr = T.match_buffer(var_kv_indptr, (batch_size + 1,), "int32", elem_offset=kv_indptr_offset)
        q_rope_position = T.match_buffer(var_q_rope_position, (qo_len,), "int32", elem_offset=q_rope_offset)
        k_rope_pos_offset = T.match_buffer(var_k_rope_pos_offset, (batch_size,), "int32", elem_offset=k_rope_offset)
        output = T.match_buffer(var_output, (qo_len, num_q_heads, head_dim), "float32")
        lse = T.match_buffer(var_lse, (qo_len, num_q_heads), "float32")
        T.Assert(rotary_mode == 0, ROTARY_MODE_ERROR)
        for b in T.serial(batch_size):
            q_start: T.let[T.int32] = q_indptr[b]
            q_length: T.let[T.int32] = q_indptr[b + 1] - q_start
            kv_start: T.let[T.int32] = kv_indptr[b]
            kv_length: T.let[T.int32] = kv_indptr[b + 1] - kv_start
            for pair in T.parallel(q_length * num_kv_heads):
                row: T.let[T.int32] = pair // num_kv_heads
                kv_head: T.let[T.int32] = pair % num_kv_heads
                visible: T.let[T.int32] = _visible_keys(causal, row, kv_length, q_length)
                attend(
                    1, group_size, lambda h, r, d: q[q_start + row, kv_head * group_size + r, d],
                    0, T.ceildiv(visible, KEYS_PER_TILE), visible, lambda tile: kv_start + tile * KEYS_PER_TILE,
                    lambda h, first, j, d: k[first + j, kv_head, d], lambda h, first, j, d: v[first + j, kv_head, d],
                    lambda h, r, d, value, total: T.buffer_store(
                        output, value / total, [q_start + row, kv_head * group_size + r, d]),
                    lambda h, r, maximum, total: T.buffer_store(
                        lse, maximum + T.log2(total), [q_start + row, kv_head * group_size + r]),
                    sm_scale, softcap)

    return batch_prefill_ragged_kv_cpu


def replace_cpu_attention_kernels(mod: tvm.IRModule, num_kv_heads: int, num_q_heads: int, head_dim: int,
                                  sliding_window: int | None = None, softcap: float | None = None) -> None:
    """Swap TVM's CPU attention kernels in `mod` (exported with a TIRPagedKVCache for a CPU target) for ours;
    `sliding_window`: the window of the model's sliding layers, whose kernels are swapped too (a model without
    such layers never runs them); `softcap`: the model's attention logit soft-cap (TVM's kernels have none)."""
    kernels = [(DECODE, decode_kernel(num_kv_heads, num_q_heads, head_dim, PAGE_SIZE, softcap=softcap)),
               (PREFILL_PAGED, prefill_paged_kernel(num_kv_heads, num_q_heads, head_dim, PAGE_SIZE, softcap=softcap)),
               (PREFILL_RAGGED, prefill_ragged_kernel(num_kv_heads, num_q_heads, head_dim, softcap))]
    if sliding_window:
        kernels += [(DECODE + SLIDING,
                     decode_kernel(num_kv_heads, num_q_heads, head_dim, PAGE_SIZE, sliding=True, softcap=softcap)),
                    (PREFILL_PAGED + SLIDING,
                     prefill_paged_kernel(num_kv_heads, num_q_heads, head_dim, PAGE_SIZE, sliding_window, softcap))]
    for name, kernel in kernels:
        mod.update_func(mod.get_global_var(name), kernel)
