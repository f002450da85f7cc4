"""The logits helpers of the model library ABI (MLC-LLM / WebLLM names, argument orders and semantics).

`add_logits_functions(mod, target)` adds six functions to a Relax IRModule (e.g. the one
`nn.Module.export_tvm` produced) before `relax.build(mod, target=...)`:

Relax functions (called through the VM, they return new tensors):
  softmax_with_temperature(logits f32[batch, num_probs, vocab], temperature f32[batch]) -> f32[batch, num_probs, vocab]
      probs[b, p, :] = softmax(logits[b, p, :] / temperature[b]). A temperature <= 1e-5 (WebLLM clamps 0 to 1e-6)
      means greedy: probability 1/k on each of the k tokens equal to the row's maximum, 0 elsewhere (no NaN, no
      division by zero). Logits of -inf or float32-lowest (masked tokens) get probability 0. A row whose logits
      are all -inf gets the uniform distribution instead of NaN.
  argsort_probs(probs f32[batch, vocab]) -> (sorted_probs f32[batch, vocab], sorted_indices i32[batch, vocab])
      each row sorted in descending order; equal probabilities keep ascending token order (a stable sort:
      the same result as numpy `np.argsort(-probs, kind="stable")`).
  sample_with_top_p(sorted_probs f32[batch, vocab], sorted_indices i32[batch, vocab],
                    uniform_samples f32[num_samples], sample_indices i32[num_samples], top_p f32[batch])
                    -> i32[num_samples]
      for sample i, row r = sample_indices[i] and c = cumsum(sorted_probs[r]): keep the k tokens of the smallest
      prefix with c[k-1] >= top_p[r] (all tokens when the row never reaches top_p; at least one, so a top_p <= 0
      or tiny means argmax), renormalise by c[k-1], and return sorted_indices[r, j] for the first j < k with
      c[j] > uniform_samples[i] * c[k-1] (j = k-1 when rounding leaves none).

TIR functions (exported by name like MLC-LLM's; tvmjs `vm.getFunction` finds them through the VM's imports,
in Python use `vm.module.get_function(name, query_imports=True)`). They modify `logits` in place and return
nothing:
  apply_penalty_inplace(logits f32[batch, vocab], seq_ids i32[num_seq], pos2seq_id i32[num_token],
                        token_ids i32[num_token], token_cnt i32[num_token], penalties f32[num_seq, 3])
      for each j: s = pos2seq_id[j], x = logits[seq_ids[s], token_ids[j]] - (penalties[s, 0] + token_cnt[j] *
      penalties[s, 1]) (presence, frequency), then repetition: x * penalties[s, 2] if x < 0 else x / penalties[s, 2].
      Each (row, token) pair must appear at most once.
  apply_logit_bias_inplace(logits f32[batch, vocab], pos2seq_id i32[num_token], token_ids i32[num_token],
                           logit_bias f32[num_token])
      logits[pos2seq_id[j], token_ids[j]] += logit_bias[j] (pos2seq_id indexes logits rows directly).
  apply_bitmask_inplace(logits f32[batch, vocab], seq_ids i32[num_seq], bitmask i32[batch, ceil(vocab / 32)])
      for each s and token v: logits[seq_ids[s], v] = the lowest float32 (as MLC-LLM: no inf literal in WGSL; WGSL
      code prints it rounded, -3.402823e38) where bit v % 32 of bitmask[seq_ids[s], v // 32] is 0.

Every dimension is symbolic (TIR int32 vars named batch_size, num_probs, vocab_size, num_token, num_seq,
num_samples). GPU targets (webgpu, ...) get thread-bound kernels; llvm targets (native CPU, wasm32) get the
same kernel bodies in plain serial loops. The kernels are written for WebGPU on SwiftShader (a CPU
implementation, where barriers are very slow and each invocation costs): no shared memory, no barriers, several
elements per thread and few dispatches: softmax 3, argsort 1 + ceil(log2(vocab / 16)) (13 for vocab 49152; a
register sort of runs of 16, then merge-path merges), sampling 2, each in-place function 1. (TVM's own GPU
sort, which relax argsort dispatches to, does not build for WebGPU: it uses blockIdx.z.)
Measured in headless Chromium at vocab 49152 (batch 1, 2-core machine): SwiftShader WebGPU argsort ~17 ms,
softmax ~2.7 ms, sampling ~0.4 ms, bitmask ~0.4 ms, penalty/bias ~0.2 ms; wasm32 CPU argsort ~5 ms, softmax
~0.6 ms, the rest < 0.2 ms.
"""
import functools

import tvm
from tvm import relax, tirx
from tvm.script import tirx as T

__all__ = ["LOGITS_FUNCTIONS", "GREEDY_TEMPERATURE", "add_logits_functions"]

LOGITS_FUNCTIONS = (
    "softmax_with_temperature",
    "argsort_probs",
    "sample_with_top_p",
    "apply_penalty_inplace",
    "apply_logit_bias_inplace",
    "apply_bitmask_inplace",
)
GREEDY_TEMPERATURE = 1e-5  # temperatures at or below this mean greedy (argmax one-hot), as in MLC-LLM

TX = 256  # threads per workgroup: WebGPU's default maxComputeInvocationsPerWorkgroup
SOFTMAX_CHUNK = 128  # elements per thread in the softmax statistics pass
TOP_P_CHUNK = 256  # elements per chunk sum in sample_with_top_p
NORM_PER_THREAD = 16  # elements each thread writes in softmax_normalize
SORT_RUN = 16  # elements each thread sorts in registers before the merge passes (a power of two)
SORT_OUT = 32  # outputs each thread writes in a merge pass (a power of two, at most 2 * SORT_RUN)
SORT_MAX_PASSES = 27  # merge passes for widths SORT_RUN << 0 .. SORT_RUN << 26 = 2**29: vocab up to 2**30
assert SORT_RUN & (SORT_RUN - 1) == 0 and SORT_OUT & (SORT_OUT - 1) == 0 and SORT_OUT <= 2 * SORT_RUN
FLOAT32_LOWEST = -3.4028234663852886e38
EXP_FLOOR = -1.0e4  # exp() arguments are clamped here: exp(-1e4) == 0, and no -inf reaches exp


def _thread_loops(gpu: bool):
    """(blockIdx loop, threadIdx loop) for GPU kernels, or two plain serial loops for CPU code."""
    if gpu:
        return (functools.partial(T.thread_binding, thread="blockIdx.x"),
                functools.partial(T.thread_binding, thread="threadIdx.x"))
    return T.serial, T.serial


def _f32(value):
    return tirx.const(value, "float32")


def _weight(x, row_max, temperature):
    """The unnormalised probability of logit `x` in a row whose maximum logit is `row_max`."""
    greedy = temperature <= _f32(GREEDY_TEMPERATURE)
    scaled = (x - row_max) / tirx.max(temperature, _f32(GREEDY_TEMPERATURE))
    soft = tirx.exp(tirx.max(scaled, _f32(EXP_FLOOR)))
    return tirx.Select(greedy, tirx.Select(x == row_max, _f32(1.0), _f32(0.0)), soft)


def _softmax_kernels(gpu: bool):
    bx, tx = _thread_loops(gpu)

    @T.prim_func(private=True)
    def softmax_chunk_stats(var_logits: T.handle, var_temperature: T.handle, var_chunk_max: T.handle,
                            var_chunk_sum: T.handle):
        """Thread (row, c) reduces the strided slice logits[row, c::num_chunks]: its max and weight sum."""
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        num_probs = T.int32()
        vocab_size = T.int32()
        num_chunks = T.int32()
        logits = T.match_buffer(var_logits, (batch_size, num_probs, vocab_size), "float32")
        temperature = T.match_buffer(var_temperature, (batch_size,), "float32")
        chunk_max = T.match_buffer(var_chunk_max, (batch_size, num_probs, num_chunks), "float32")
        chunk_sum = T.match_buffer(var_chunk_sum, (batch_size, num_probs, num_chunks), "float32")
        for b0 in bx((batch_size * num_probs * num_chunks + TX - 1) // TX):
            for t0 in tx(TX):
                acc = T.alloc_buffer((2,), "float32", scope="local")
                g = b0 * TX + t0
                if g < batch_size * num_probs * num_chunks:
                    b = g // (num_probs * num_chunks)
                    p = g // num_chunks % num_probs
                    c = g % num_chunks
                    acc[0] = T.float32(FLOAT32_LOWEST)
                    for k in T.serial(SOFTMAX_CHUNK):
                        if c + k * num_chunks < vocab_size:
                            acc[0] = T.max(acc[0], logits[b, p, c + k * num_chunks])
                    acc[1] = T.float32(0)
                    for k in T.serial(SOFTMAX_CHUNK):
                        if c + k * num_chunks < vocab_size:
                            acc[1] = acc[1] + _weight(logits[b, p, c + k * num_chunks], acc[0], temperature[b])
                    chunk_max[b, p, c] = acc[0]
                    chunk_sum[b, p, c] = acc[1]

    @T.prim_func(private=True)
    def softmax_row_stats(var_chunk_max: T.handle, var_chunk_sum: T.handle, var_temperature: T.handle,
                          var_row_max: T.handle, var_row_sum: T.handle):
        """Thread (b, p) merges the chunk statistics of its row."""
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        num_probs = T.int32()
        num_chunks = T.int32()
        chunk_max = T.match_buffer(var_chunk_max, (batch_size, num_probs, num_chunks), "float32")
        chunk_sum = T.match_buffer(var_chunk_sum, (batch_size, num_probs, num_chunks), "float32")
        temperature = T.match_buffer(var_temperature, (batch_size,), "float32")
        row_max = T.match_buffer(var_row_max, (batch_size, num_probs), "float32")
        row_sum = T.match_buffer(var_row_sum, (batch_size, num_probs), "float32")
        for b0 in bx((batch_size * num_probs + TX - 1) // TX):
            for t0 in tx(TX):
                acc = T.alloc_buffer((2,), "float32", scope="local")
                g = b0 * TX + t0
                if g < batch_size * num_probs:
                    b = g // num_probs
                    p = g % num_probs
                    acc[0] = T.float32(FLOAT32_LOWEST)
                    for c in T.serial(num_chunks):
                        acc[0] = T.max(acc[0], chunk_max[b, p, c])
                    acc[1] = T.float32(0)
                    for c in T.serial(num_chunks):
                        acc[1] = acc[1] + chunk_sum[b, p, c] * _weight(chunk_max[b, p, c], acc[0], temperature[b])
                    row_max[b, p] = acc[0]
                    row_sum[b, p] = acc[1]

    @T.prim_func(private=True)
    def softmax_normalize(var_logits: T.handle, var_temperature: T.handle, var_row_max: T.handle,
                          var_row_sum: T.handle, var_probs: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        num_probs = T.int32()
        vocab_size = T.int32()
        logits = T.match_buffer(var_logits, (batch_size, num_probs, vocab_size), "float32")
        temperature = T.match_buffer(var_temperature, (batch_size,), "float32")
        row_max = T.match_buffer(var_row_max, (batch_size, num_probs), "float32")
        row_sum = T.match_buffer(var_row_sum, (batch_size, num_probs), "float32")
        probs = T.match_buffer(var_probs, (batch_size, num_probs, vocab_size), "float32")
        for b0 in bx((batch_size * num_probs * ((vocab_size + NORM_PER_THREAD - 1) // NORM_PER_THREAD) + TX - 1) // TX):
            for t0 in tx(TX):
                threads_per_row = (vocab_size + NORM_PER_THREAD - 1) // NORM_PER_THREAD
                g = b0 * TX + t0
                if g < batch_size * num_probs * threads_per_row:
                    b = g // (num_probs * threads_per_row)
                    p = g // threads_per_row % num_probs
                    t = g % threads_per_row
                    for k in T.serial(NORM_PER_THREAD):
                        if t + k * threads_per_row < vocab_size:
                            # A row of only -inf logits has no weight at all: give it the uniform distribution.
                            probs[b, p, t + k * threads_per_row] = T.Select(
                                row_sum[b, p] > T.float32(0),
                                _weight(logits[b, p, t + k * threads_per_row], row_max[b, p], temperature[b])
                                / row_sum[b, p],
                                T.float32(1) / T.Cast("float32", vocab_size))

    return softmax_chunk_stats, softmax_row_stats, softmax_normalize


def _num_sort_passes(vocab_size):
    """How many merge passes sort runs of SORT_RUN into one run of vocab_size (a host-side expression)."""
    total = tirx.const(0, "int32")
    for s in range(SORT_MAX_PASSES):
        total = total + tirx.Select(tirx.const(SORT_RUN << s, "int32") < vocab_size, 1, 0)
    return total


def _argsort_kernel(gpu: bool):
    bx, tx = _thread_loops(gpu)

    @T.macro
    def sort_runs(probs, dst_val, dst_idx, batch_size, vocab_size):
        """Thread (row, r) sorts probs[row, r*RUN : (r+1)*RUN]: each element's output position is the number of
        elements of the run that precede it (larger, or equal and earlier: the order of a stable sort),
        counted branch-free with constant register indices."""
        for b0 in bx((batch_size * ((vocab_size + SORT_RUN - 1) // SORT_RUN) + TX - 1) // TX):
            for t0 in tx(TX):
                val = T.alloc_buffer((SORT_RUN,), "float32", scope="local")
                rank = T.alloc_buffer((SORT_RUN,), "int32", scope="local")
                num_runs = (vocab_size + SORT_RUN - 1) // SORT_RUN
                g = b0 * TX + t0
                if g < batch_size * num_runs:
                    row = g // num_runs
                    base = g % num_runs * SORT_RUN
                    for k in T.unroll(SORT_RUN):
                        # Past the end of the row: the lowest float, which sorts after every real element.
                        val[k] = T.if_then_else(base + k < vocab_size, probs[row, T.min(base + k, vocab_size - 1)],
                                                T.float32(FLOAT32_LOWEST))
                        rank[k] = 0
                    for k in T.unroll(SORT_RUN):
                        for m in T.unroll(SORT_RUN):
                            rank[k] = rank[k] + T.Select(
                                val[m] > val[k] or (m < k and val[m] == val[k]), 1, 0)
                    for k in T.unroll(SORT_RUN):
                        if base + k < vocab_size:
                            dst_val[row, base + rank[k]] = val[k]
                            dst_idx[row, base + rank[k]] = base + k

    @T.macro
    def merge_pass(src_val, src_idx, dst_val, dst_idx, width, batch_size, vocab_size):
        """Merges sorted runs of `width` pairwise (ties: the left run first) by merge path: thread (row, o)
        writes outputs o .. o+SORT_OUT-1 of its pair; a binary search on its diagonal finds where to start."""
        for b0 in bx((batch_size * ((vocab_size + SORT_OUT - 1) // SORT_OUT) + TX - 1) // TX):
            for t0 in tx(TX):
                pos = T.alloc_buffer((2,), "int32", scope="local")  # binary search bounds, then (i, j)
                threads_per_row = (vocab_size + SORT_OUT - 1) // SORT_OUT
                g = b0 * TX + t0
                if g < batch_size * threads_per_row:
                    row = g // threads_per_row
                    o = g % threads_per_row * SORT_OUT
                    a_start = o - o % (width * 2)
                    a_len = T.min(width, vocab_size - a_start)
                    b_start = a_start + width
                    b_len = T.max(T.min(width, vocab_size - b_start), 0)
                    d = o - a_start
                    pos[0] = T.max(d - b_len, 0)
                    pos[1] = T.min(d, a_len)
                    while pos[0] < pos[1]:
                        mid = (pos[0] + pos[1]) // 2
                        if src_val[row, a_start + mid] >= src_val[row, b_start + d - 1 - mid]:
                            pos[0] = mid + 1
                        else:
                            pos[1] = mid
                    pos[1] = d - pos[0]
                    for k in T.serial(SORT_OUT):
                        if o + k < vocab_size:
                            a_at = a_start + T.min(pos[0], a_len - 1)
                            b_at = T.min(b_start + pos[1], vocab_size - 1)
                            if pos[1] >= b_len or (pos[0] < a_len and src_val[row, a_at] >= src_val[row, b_at]):
                                dst_val[row, o + k] = src_val[row, a_at]
                                dst_idx[row, o + k] = src_idx[row, a_at]
                                pos[0] = pos[0] + 1
                            else:
                                dst_val[row, o + k] = src_val[row, b_at]
                                dst_idx[row, o + k] = src_idx[row, b_at]
                                pos[1] = pos[1] + 1

    @T.prim_func(private=True)
    def argsort_desc(var_probs: T.handle, var_sorted_probs: T.handle, var_sorted_indices: T.handle,
                     var_scratch_probs: T.handle, var_scratch_indices: T.handle):
        """Merge sort that ping-pongs between the outputs and scratch buffers so it ends in the outputs."""
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        vocab_size = T.int32()
        probs = T.match_buffer(var_probs, (batch_size, vocab_size), "float32")
        sorted_probs = T.match_buffer(var_sorted_probs, (batch_size, vocab_size), "float32")
        sorted_indices = T.match_buffer(var_sorted_indices, (batch_size, vocab_size), "int32")
        scratch_probs = T.match_buffer(var_scratch_probs, (batch_size, vocab_size), "float32")
        scratch_indices = T.match_buffer(var_scratch_indices, (batch_size, vocab_size), "int32")
        num_passes = _num_sort_passes(vocab_size)
        if num_passes % 2 == 0:
            sort_runs(probs, sorted_probs, sorted_indices, batch_size, vocab_size)
        else:
            sort_runs(probs, scratch_probs, scratch_indices, batch_size, vocab_size)
        for s in T.serial(SORT_MAX_PASSES):
            if T.shift_left(SORT_RUN, s) < vocab_size:
                if (num_passes - 1 - s) % 2 == 0:
                    merge_pass(scratch_probs, scratch_indices, sorted_probs, sorted_indices,
                               T.shift_left(SORT_RUN, s), batch_size, vocab_size)
                else:
                    merge_pass(sorted_probs, sorted_indices, scratch_probs, scratch_indices,
                               T.shift_left(SORT_RUN, s), batch_size, vocab_size)

    return argsort_desc


def _sample_kernels(gpu: bool):
    bx, tx = _thread_loops(gpu)

    @T.prim_func(private=True)
    def top_p_chunk_sums(var_sorted_probs: T.handle, var_chunk_sums: T.handle):
        """chunk_sums[row, c] = sum of sorted_probs[row, c*CHUNK : (c+1)*CHUNK], added left to right."""
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        vocab_size = T.int32()
        num_chunks = T.int32()
        sorted_probs = T.match_buffer(var_sorted_probs, (batch_size, vocab_size), "float32")
        chunk_sums = T.match_buffer(var_chunk_sums, (batch_size, num_chunks), "float32")
        for b0 in bx((batch_size * num_chunks + TX - 1) // TX):
            for t0 in tx(TX):
                acc = T.alloc_buffer((1,), "float32", scope="local")
                g = b0 * TX + t0
                if g < batch_size * num_chunks:
                    row = g // num_chunks
                    c = g % num_chunks
                    acc[0] = T.float32(0)
                    for k in T.serial(TOP_P_CHUNK):
                        if c * TOP_P_CHUNK + k < vocab_size:
                            acc[0] = acc[0] + sorted_probs[row, c * TOP_P_CHUNK + k]
                    chunk_sums[row, c] = acc[0]

    @T.prim_func(private=True)
    def top_p_sample(var_sorted_probs: T.handle, var_sorted_indices: T.handle, var_uniform_samples: T.handle,
                     var_sample_indices: T.handle, var_top_p: T.handle, var_chunk_sums: T.handle,
                     var_sampled: T.handle):
        """Thread i walks the chunk sums, then one chunk, to find the top-p cut and then the sampled token.

        The cumulative sum at j is (sum of the chunk sums before j's chunk) + (the sum of j's chunk up to j),
        computed identically in both walks and in top_p_chunk_sums, so the walks agree with each other."""
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        vocab_size = T.int32()
        num_samples = T.int32()
        num_chunks = T.int32()
        sorted_probs = T.match_buffer(var_sorted_probs, (batch_size, vocab_size), "float32")
        sorted_indices = T.match_buffer(var_sorted_indices, (batch_size, vocab_size), "int32")
        uniform_samples = T.match_buffer(var_uniform_samples, (num_samples,), "float32")
        sample_indices = T.match_buffer(var_sample_indices, (num_samples,), "int32")
        top_p = T.match_buffer(var_top_p, (batch_size,), "float32")
        chunk_sums = T.match_buffer(var_chunk_sums, (batch_size, num_chunks), "float32")
        sampled = T.match_buffer(var_sampled, (num_samples,), "int32")
        for b0 in bx((num_samples + TX - 1) // TX):
            for t0 in tx(TX):
                # fv: 0 prefix before the chunk, 1 running cumsum, 2 renormaliser, 3 target
                fv = T.alloc_buffer((4,), "float32", scope="local")
                # iv: 0 chunk, 1 position, 2 last kept position, 3 chosen position, 4 done
                iv = T.alloc_buffer((5,), "int32", scope="local")
                i = b0 * TX + t0
                if i < num_samples:
                    row = sample_indices[i]
                    # 1. The cut: the first j with cumsum[j] >= top_p (the last j if none) is the last kept token.
                    fv[0] = T.float32(0)
                    iv[0] = 0
                    while iv[0] < num_chunks - 1 and fv[0] + chunk_sums[row, iv[0]] < top_p[row]:
                        fv[0] = fv[0] + chunk_sums[row, iv[0]]
                        iv[0] = iv[0] + 1
                    iv[1] = iv[0] * TOP_P_CHUNK
                    iv[2] = T.min(iv[0] * TOP_P_CHUNK + TOP_P_CHUNK, vocab_size) - 1
                    fv[1] = T.float32(0)
                    iv[4] = 0
                    while iv[4] == 0 and iv[1] <= iv[2]:
                        fv[1] = fv[1] + sorted_probs[row, iv[1]]
                        if fv[0] + fv[1] >= top_p[row] or iv[1] == iv[2]:
                            iv[2] = iv[1]
                            iv[4] = 1
                        iv[1] = iv[1] + 1
                    fv[2] = fv[0] + fv[1]
                    # 2. The sample: the first j <= cut with cumsum[j] > u * renormaliser (the cut if none).
                    fv[3] = uniform_samples[i] * fv[2]
                    fv[0] = T.float32(0)
                    iv[0] = 0
                    while iv[0] < num_chunks - 1 and fv[0] + chunk_sums[row, iv[0]] <= fv[3]:
                        fv[0] = fv[0] + chunk_sums[row, iv[0]]
                        iv[0] = iv[0] + 1
                    iv[1] = iv[0] * TOP_P_CHUNK
                    iv[3] = iv[2]
                    fv[1] = T.float32(0)
                    iv[4] = 0
                    while iv[4] == 0 and iv[1] < iv[2]:
                        fv[1] = fv[1] + sorted_probs[row, iv[1]]
                        if fv[0] + fv[1] > fv[3]:
                            iv[3] = iv[1]
                            iv[4] = 1
                        iv[1] = iv[1] + 1
                    sampled[i] = sorted_indices[row, iv[3]]

    return top_p_chunk_sums, top_p_sample


def _inplace_kernels(gpu: bool):
    bx, tx = _thread_loops(gpu)

    @T.prim_func
    def apply_penalty_inplace(var_logits: T.handle, var_seq_ids: T.handle, var_pos2seq_id: T.handle,
                              var_token_ids: T.handle, var_token_cnt: T.handle, var_penalties: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        vocab_size = T.int32()
        num_token = T.int32()
        num_seq = T.int32()
        logits = T.match_buffer(var_logits, (batch_size, vocab_size), "float32")
        seq_ids = T.match_buffer(var_seq_ids, (num_seq,), "int32")
        pos2seq_id = T.match_buffer(var_pos2seq_id, (num_token,), "int32")
        token_ids = T.match_buffer(var_token_ids, (num_token,), "int32")
        token_cnt = T.match_buffer(var_token_cnt, (num_token,), "int32")
        penalties = T.match_buffer(var_penalties, (num_seq, 3), "float32")
        for b0 in bx((num_token + TX - 1) // TX):
            for t0 in tx(TX):
                j = b0 * TX + t0
                if j < num_token:
                    s = pos2seq_id[j]
                    x = logits[seq_ids[s], token_ids[j]] - (
                        penalties[s, 0] + T.Cast("float32", token_cnt[j]) * penalties[s, 1])
                    logits[seq_ids[s], token_ids[j]] = T.Select(x < T.float32(0), x * penalties[s, 2],
                                                                x / penalties[s, 2])

    @T.prim_func
    def apply_logit_bias_inplace(var_logits: T.handle, var_pos2seq_id: T.handle, var_token_ids: T.handle,
                                 var_logit_bias: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        vocab_size = T.int32()
        num_token = T.int32()
        logits = T.match_buffer(var_logits, (batch_size, vocab_size), "float32")
        pos2seq_id = T.match_buffer(var_pos2seq_id, (num_token,), "int32")
        token_ids = T.match_buffer(var_token_ids, (num_token,), "int32")
        logit_bias = T.match_buffer(var_logit_bias, (num_token,), "float32")
        for b0 in bx((num_token + TX - 1) // TX):
            for t0 in tx(TX):
                j = b0 * TX + t0
                if j < num_token:
                    logits[pos2seq_id[j], token_ids[j]] = logits[pos2seq_id[j], token_ids[j]] + logit_bias[j]

    @T.prim_func
    def apply_bitmask_inplace(var_logits: T.handle, var_seq_ids: T.handle, var_bitmask: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        batch_size = T.int32()
        vocab_size = T.int32()
        num_seq = T.int32()
        logits = T.match_buffer(var_logits, (batch_size, vocab_size), "float32")
        seq_ids = T.match_buffer(var_seq_ids, (num_seq,), "int32")
        bitmask = T.match_buffer(var_bitmask, (batch_size, (vocab_size + 31) // 32), "int32")
        for b0 in bx((num_seq * ((vocab_size + 31) // 32) + TX - 1) // TX):
            for t0 in tx(TX):
                num_words = (vocab_size + 31) // 32
                g = b0 * TX + t0
                if g < num_seq * num_words:
                    row = seq_ids[g // num_words]
                    w = g % num_words
                    word = bitmask[row, w]
                    for k in T.serial(32):
                        if w * 32 + k < vocab_size and T.bitwise_and(T.shift_right(word, k), 1) == 0:
                            logits[row, w * 32 + k] = T.float32(FLOAT32_LOWEST)

    return {"apply_penalty_inplace": apply_penalty_inplace,
            "apply_logit_bias_inplace": apply_logit_bias_inplace,
            "apply_bitmask_inplace": apply_bitmask_inplace}


def _is_gpu(target: tvm.target.Target) -> bool:
    return target.kind.name != "llvm"


def _tensor(shape, dtype="float32"):
    return relax.TensorType(shape, dtype)


def _add_softmax(bb: relax.BlockBuilder, gpu: bool):
    chunk_stats, row_stats, normalize = _softmax_kernels(gpu)
    batch, num_probs, vocab = (tirx.Var(n, "int64") for n in ("batch_size", "num_probs", "vocab_size"))
    logits = relax.Var("logits", _tensor([batch, num_probs, vocab]))
    temperature = relax.Var("temperature", _tensor([batch]))
    num_chunks = (vocab + SOFTMAX_CHUNK - 1) // SOFTMAX_CHUNK
    with bb.function("softmax_with_temperature", [logits, temperature]):
        chunks = bb.emit(relax.call_tir(
            bb.add_func(chunk_stats, "softmax_chunk_stats"), [logits, temperature],
            out_ty=[_tensor([batch, num_probs, num_chunks])] * 2))
        rows = bb.emit(relax.call_tir(
            bb.add_func(row_stats, "softmax_row_stats"),
            [bb.emit(relax.TupleGetItem(chunks, 0)), bb.emit(relax.TupleGetItem(chunks, 1)), temperature],
            out_ty=[_tensor([batch, num_probs])] * 2))
        probs = bb.emit(relax.call_tir(
            bb.add_func(normalize, "softmax_normalize"),
            [logits, temperature, bb.emit(relax.TupleGetItem(rows, 0)), bb.emit(relax.TupleGetItem(rows, 1))],
            out_ty=_tensor([batch, num_probs, vocab])))
        bb.emit_func_output(probs)


def _add_argsort(bb: relax.BlockBuilder, gpu: bool):
    batch, vocab = tirx.Var("batch_size", "int64"), tirx.Var("vocab_size", "int64")
    probs = relax.Var("probs", _tensor([batch, vocab]))
    with bb.function("argsort_probs", [probs]):
        sorted_all = bb.emit(relax.call_tir(
            bb.add_func(_argsort_kernel(gpu), "argsort_desc"), [probs],
            out_ty=[_tensor([batch, vocab]), _tensor([batch, vocab], "int32"),
                    _tensor([batch, vocab]), _tensor([batch, vocab], "int32")]))
        result = bb.emit(relax.Tuple([bb.emit(relax.TupleGetItem(sorted_all, 0)),
                                      bb.emit(relax.TupleGetItem(sorted_all, 1))]))
        bb.emit_func_output(result)


def _add_sample(bb: relax.BlockBuilder, gpu: bool):
    chunk_sums_func, sample_func = _sample_kernels(gpu)
    batch, vocab, num_samples = (tirx.Var(n, "int64") for n in ("batch_size", "vocab_size", "num_samples"))
    sorted_probs = relax.Var("sorted_probs", _tensor([batch, vocab]))
    sorted_indices = relax.Var("sorted_indices", _tensor([batch, vocab], "int32"))
    uniform_samples = relax.Var("uniform_samples", _tensor([num_samples]))
    sample_indices = relax.Var("sample_indices", _tensor([num_samples], "int32"))
    top_p = relax.Var("top_p", _tensor([batch]))
    params = [sorted_probs, sorted_indices, uniform_samples, sample_indices, top_p]
    with bb.function("sample_with_top_p", params):
        chunk_sums = bb.emit(relax.call_tir(
            bb.add_func(chunk_sums_func, "top_p_chunk_sums"), [sorted_probs],
            out_ty=_tensor([batch, (vocab + TOP_P_CHUNK - 1) // TOP_P_CHUNK])))
        sampled = bb.emit(relax.call_tir(
            bb.add_func(sample_func, "top_p_sample"), [*params, chunk_sums],
            out_ty=_tensor([num_samples], "int32")))
        bb.emit_func_output(sampled)


def add_logits_functions(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """A copy of `mod` with the six logits helpers added, compiled later by `relax.build(mod, target=...)`.

    `target` only selects the code shape: thread-bound kernels for GPU targets (webgpu), serial loops for
    llvm targets (native CPU, wasm32). Raises ValueError if `mod` already defines one of the names.
    """
    taken = {gv.name_hint for gv in mod.get_global_vars()}
    clashes = sorted(taken.intersection(LOGITS_FUNCTIONS))
    if clashes:
        raise ValueError(f"the module already defines logits helper(s) {clashes}")
    gpu = _is_gpu(target)
    bb = relax.BlockBuilder(mod)
    _add_softmax(bb, gpu)
    _add_argsort(bb, gpu)
    _add_sample(bb, gpu)
    result = bb.finalize()
    for name, func in _inplace_kernels(gpu).items():
        result[name] = func.with_attr("global_symbol", name)
    return result
