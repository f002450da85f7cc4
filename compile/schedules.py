"""Schedules of our own for the quantized matmuls (quantization.py), ahead of TVM's dlight rules.

GPU: WebGPU without a GPU runs on SwiftShader, a CPU implementation where a workgroup barrier is very
expensive. dlight's GEMV and Reduction rules reduce across the threads of a workgroup (one output row per
workgroup, a shared-memory tree of barriers): measured there, a 3072x576 q4 matvec takes 132 ms that way and
13 ms with one output per thread and the reduction in registers. Real GPUs also run this shape fine: every
output reads its own weight row once.

CPU (native and wasm32): the matmul comes in its grouped form (quantization._quant_matmul_grouped), whose
arithmetic per weight is a mask, a convert and a multiply-add in SIMD lanes. Measured in V8 (wasm SIMD, one
thread) for a 576x1536 q4 matvec: 0.30 ms with 8 per-lane partial sums over the plain form (the per-lane shifts
became scalar code), 0.12 ms grouped; prefill tiles of 2 tokens add 20-35%.
"""
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import SBlockInfo, normalize_prim_func
from tvm.s_tir.dlight.base import ScheduleRule, try_inline
from tvm.s_tir.dlight.gpu.base import GPUScheduleRule
from tvm.target import Target

from compile.quantization import CPU_TOKEN_TILE

THREADS_PER_WORKGROUP = 64
TOKENS_PER_THREAD = 8  # prefill: each decoded weight serves this many tokens
# CPU threads take blocks of this many output features (a parallel loop gives each thread a contiguous run of
# blocks); a block's weight rows, a few KB, stay in cache while every token tile of a prefill uses them.
FEATURES_PER_BLOCK = 16
GROUPED_BLOCKS = {"quant_x_scaled", "quant_x_offset", "quant_group_partial", "quant_matmul"}
# The GPU reduction is unrolled 8 weights at a time: one word of 4-bit codes, two of 8-bit ones, so every
# shift is a constant.
UNROLLED_WEIGHTS = 8


def _quant_matmul(sch: s_tir.Schedule) -> tuple[SBlockInfo, list[SBlockInfo]] | None:
    """The quant_matmul block of a function and the blocks after it (epilogues), with producers inlined."""
    infos = normalize_prim_func(sch)
    if infos is None:
        return None
    infos = try_inline(sch, infos)
    reductions = [info for info in infos if info.is_reduction()]
    if len(reductions) != 1 or not sch.get(reductions[0].block_rv).name_hint.startswith("quant_matmul"):
        return None
    return reductions[0], [info for info in infos if info is not reductions[0]]


class QuantMatmulPerThread(GPUScheduleRule):
    """quant_matmul (quantization.py): each thread computes one output feature, for one token (decode) or for
    a tile of tokens (prefill, so that each weight is dequantized once per tile); the reduction runs over
    8 weights at a time, unrolled, so every shift is a constant; epilogues (residual add) fuse in."""

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc) or not self.is_target_available(target):
            return None
        sch = s_tir.Schedule(func)
        found = _quant_matmul(sch)
        if found is None:
            return None
        matmul, after = found
        epilogues = [info.block_rv for info in after]

        block = matmul.block_rv
        kinds = matmul.dom_kind()
        loops = sch.get_loops(block)
        spatial = [loop for loop, kind in zip(loops, kinds) if kind == "S"]
        (reduction,) = [loop for loop, kind in zip(loops, kinds) if kind == "R"]
        # Accumulate in a register: the intermediate itself when an epilogue follows, else a local copy.
        if epilogues:
            sch.set_scope(block, 0, "local")
        else:
            epilogues = [sch.cache_write(block, 0, "local")]
        *token_loops, feature = spatial  # unit loops (decode's single token) may have been dropped
        tokens = sch.fuse(*token_loops) if token_loops else sch.add_unit_loop(block)
        feature_group, thread = sch.split(feature, factors=[None, THREADS_PER_WORKGROUP])
        words, within_word = sch.split(reduction, factors=[None, UNROLLED_WEIGHTS])
        if isinstance(sch.get(tokens).extent, tirx.IntImm):  # decode: one token (or a fixed few)
            sch.reorder(tokens, feature_group, thread, words, within_word)
            workgroup = sch.fuse(tokens, feature_group)
        else:
            # No bounds predicate on the accumulation (a partial last tile computes a few unused rows:
            # WebGPU clamps out-of-bounds reads) so the accumulators are a fixed TOKENS_PER_THREAD registers;
            # the epilogue, which writes memory, keeps its predicate.
            token_tile, token_in_tile = sch.split(tokens, factors=[None, TOKENS_PER_THREAD],
                                                  disable_predication=True)
            sch.reorder(token_tile, feature_group, thread, words, within_word, token_in_tile)
            sch.unroll(token_in_tile)
            workgroup = sch.fuse(token_tile, feature_group)
        sch.bind(workgroup, "blockIdx.x")
        sch.bind(thread, "threadIdx.x")
        sch.unroll(within_word)
        sch.decompose_reduction(block, words)
        for epilogue in epilogues:
            sch.reverse_compute_at(epilogue, thread)
        return sch


class QuantMatmulGrouped(ScheduleRule):
    """The grouped quant_matmul (quantization._quant_matmul_grouped) on a CPU. Per output feature (and per tile of
    CPU_TOKEN_TILE tokens in prefill, so each code is converted once for the whole tile): a lane sum per position
    in a word (8 for 4-bit codes, 4 for 8-bit) kept in registers as SIMD vectors; per group the words' products
    are summed in registers, then scaled into the lane sums; the lanes are added once per output. Blocks of
    output features run in parallel (threads), each with its epilogue (the copy out of the padded rows, a
    residual add); each output's arithmetic, and so its bits, does not depend on the thread count. The x_scaled
    and x_offset prologues run once per call.

    The accumulators stay in the default ("global") scope: TVM lowers small global allocations to stack slots,
    which LLVM promotes to registers, but "local" ones inside a parallel loop to TVMBackendAllocWorkspace
    calls, whose memory LLVM must assume aliases the weights: measured in V8, every partial sum then went
    through a store and a load, and a 576x1536 q4 prefill in 2-token tiles took 0.20 ms per token against 0.14."""

    def apply(self, func: tirx.PrimFunc, target: Target, _: bool) -> s_tir.Schedule | None:
        if not isinstance(func, tirx.PrimFunc):
            return None
        sch = s_tir.Schedule(func)
        infos = normalize_prim_func(sch)
        names = {info.name for info in infos or []}
        if not GROUPED_BLOCKS <= names:
            return None
        try_inline(sch, [info for info in infos if info.name not in GROUPED_BLOCKS])
        matmul, partial = sch.get_sblock("quant_matmul"), sch.get_sblock("quant_group_partial")

        *token_loops, _, _, lanes = sch.get_loops(matmul)
        lane_sums = sch.rfactor(lanes, factor_axis=len(token_loops) + 1)
        *token_loops, feature, _ = sch.get_loops(matmul)  # the write-back of the lane sums
        tokens = sch.fuse(*token_loops) if token_loops else sch.add_unit_loop(feature)
        feature_block, feature = sch.split(feature, factors=[None, FEATURES_PER_BLOCK])
        tiled = not isinstance(sch.get(tokens).extent, tirx.IntImm)  # prefill: a symbolic number of tokens
        if tiled:
            token_tile, token_in_tile = sch.split(tokens, factors=[None, CPU_TOKEN_TILE])
            sch.reorder(feature_block, token_tile, feature, token_in_tile)
        else:
            sch.reorder(feature_block, tokens, feature)
        sch.parallel(feature_block)
        for consumer in sch.get_consumers(matmul):
            sch.reverse_compute_at(consumer, feature_block)
        depth = 3  # the loops over feature blocks, tokens (or token tiles) and output features
        sch.compute_at(lane_sums, feature)
        lanes, *tile, groups = sch.get_loops(lane_sums)[depth:]  # rfactor puts the factored lane iter first
        sch.reorder(groups, *tile, lanes)
        sch.compute_at(partial, groups)
        *partial_tile, partial_lanes, words = sch.get_loops(partial)[depth + 1:]
        sch.reorder(words, *partial_tile, partial_lanes)
        for block, tile_loops, lane_loop, reduction in ((partial, partial_tile, partial_lanes, words),
                                                        (lane_sums, tile, lanes, groups)):
            for loop in tile_loops:
                sch.unroll(loop)
            sch.vectorize(lane_loop)
            sch.decompose_reduction(block, reduction)
        return sch
