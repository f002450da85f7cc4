"""A race-free replacement for the GPU kernel TVM's paged KV cache uses to merge two partial attention states.

A prefill over a non-empty cache computes attention twice, over the new tokens (ragged kernel) and over the cached
pages (paged kernel), and merges the two results with `tir_attention_merge_state`: V <- V*a + V_other*b and
S <- log2(2^S + 2^S_other), per token and head. TVM's kernel (tvm.relax.frontend.nn.llm._decode_kernels.
_merge_state_inplace) gives each (token, head) to head_dim/4 = 16 invocations, and every one of them reads S and
then writes S, with nothing ordering the reads before the writes. That is only correct when the 16 invocations run
in lockstep (one warp of a desktop GPU). SwiftShader runs a workgroup in batches of 4 invocations, one batch after
another, so batches 2..4 read the S that batch 1 already merged: measured in Chromium, S came out merged exactly 4
times (max error 5e-7 against that), and SmolLM2's second chat turn answered "Italy is the capital of France.".
GPUs whose subgroups are narrower than 16 (some mobile ones) can do the same. Here one invocation per (token, head)
reads and writes S and hands the two scales to the others through workgroup memory, behind a workgroup barrier.
"""
import tvm
from tvm.script import tirx as T
from tvm.target import Target

MERGE_STATE = "tir_attention_merge_state"  # the name TIRPagedKVCache gives TVM's kernel in the module
VEC_SIZE = 4  # floats per invocation, as TVM's kernel (float32, head_dim >= 128 // 4)


def merge_state_inplace(num_heads: int, head_dim: int, dtype: str, target: Target) -> tvm.tirx.PrimFunc:
    """The merge with TVM's signature (v, s, v_other, s_other), launch shape and arithmetic, without the race."""
    bdx = head_dim // VEC_SIZE
    bdy = num_heads
    max_threads = int(target.attrs["max_num_threads"])
    while bdx * bdy > max_threads and bdy > 1:
        bdy //= 2
    gdy = num_heads // bdy

    @T.prim_func(s_tir=True)
    def merge_state_inplace(v: T.handle, s: T.handle, v_other: T.handle, s_other: T.handle):
        T.func_attr({"tirx.is_scheduled": True, "global_symbol": MERGE_STATE})
        N = T.int32()
        H = T.int32()
        D = T.int32()
        V = T.match_buffer(v, (N, H, D), dtype)
        S = T.match_buffer(s, (N, H), "float32")
        V_other = T.match_buffer(v_other, (N, H, D), dtype)
        S_other = T.match_buffer(s_other, (N, H), "float32")

        for bx in T.thread_binding(N, thread="blockIdx.x"):
            for by in T.thread_binding(gdy, thread="blockIdx.y"):
                for ty in T.thread_binding(bdy, thread="threadIdx.y"):
                    for tx in T.thread_binding(bdx, thread="threadIdx.x"):
                        with T.sblock("merge"):
                            scales = T.sblock_alloc_buffer((bdy, 2), "float32", scope="shared")
                            s_val = T.sblock_alloc_buffer((1,), "float32", scope="local")
                            s_other_val = T.sblock_alloc_buffer((1,), "float32", scope="local")
                            s_max = T.sblock_alloc_buffer((1,), "float32", scope="local")
                            v_vec = T.sblock_alloc_buffer((VEC_SIZE,), dtype, scope="local")
                            v_other_vec = T.sblock_alloc_buffer((VEC_SIZE,), dtype, scope="local")
                            # One invocation per (token, head) reads and writes S, and shares the two scales.
                            if tx == 0:
                                s_val[0] = S[bx, ty + by * bdy]
                                s_other_val[0] = S_other[bx, ty + by * bdy]
                                s_max[0] = T.max(s_val[0], s_other_val[0])
                                s_val[0] = T.exp2(s_val[0] - s_max[0])
                                s_other_val[0] = T.exp2(s_other_val[0] - s_max[0])
                                scales[ty, 0] = s_val[0] / (s_val[0] + s_other_val[0])
                                scales[ty, 1] = s_other_val[0] / (s_val[0] + s_other_val[0])
                                S[bx, ty + by * bdy] = T.log2(s_val[0] + s_other_val[0]) + s_max[0]
                            T.tvm_storage_sync("shared")
                            for vec in T.vectorized(VEC_SIZE):
                                v_vec[vec] = V[bx, ty + by * bdy, tx * VEC_SIZE + vec]
                            for vec in T.vectorized(VEC_SIZE):
                                v_other_vec[vec] = V_other[bx, ty + by * bdy, tx * VEC_SIZE + vec]
                            for vec in T.serial(VEC_SIZE):
                                v_vec[vec] = v_vec[vec] * scales[ty, 0] + v_other_vec[vec] * scales[ty, 1]
                            for vec in T.vectorized(VEC_SIZE):
                                V[bx, ty + by * bdy, tx * VEC_SIZE + vec] = v_vec[vec]

    return merge_state_inplace


def replace_merge_state_kernel(mod: tvm.IRModule, num_heads: int, head_dim: int, dtype: str, target: Target) -> None:
    """Swap TVM's merge kernel in `mod` (exported with a TIRPagedKVCache for a GPU target) for the one above."""
    mod.update_func(mod.get_global_var(MERGE_STATE), merge_state_inplace(num_heads, head_dim, dtype, target))
