"""Attention logit soft-capping (Gemma 2's: score -> cap * tanh(score / cap), before the mask and the softmax) in
TVM's GPU attention kernels, which have none: TIRPagedKVCache takes no soft cap, and its prefill, ragged-prefill
and decode kernels go from q.k * sm_scale * log2(e) straight to the online softmax. Without it Gemma 2's WebGPU
library answered with other tokens than transformers from the fifth step of the tiny checkpoint's chat (logits
1.0-1.9 off).

Each of those kernels stores a query's raw score (log2 domain) in exactly one place before masking it: the prefill
kernels' `S_smem[i, j] = S_local[i, j]` (block S_store, after the Q.K^T tile product), the decode kernels'
`S_local[j] = t0[0]` (after the cross-thread sum, only for keys within the sequence; the others get -5e4). The cap
goes into that store. TVM 0.27's Python API has no TIR mutator, so the store is edited in the kernel's TVMScript,
which round-trips exactly (checked: the parsed kernels are structurally equal to TVM's); a kernel without exactly
one such store is an error, so a TVM whose kernels changed is caught at compile time rather than answering wrong.
In the log2 domain, cap * log2(e) * tanh(score / (cap * log2(e))) is the capped score, scaled into it."""
import math

import numpy as np
import tvm

# The attention kernels TIRPagedKVCache puts in a GPU module: batch_prefill_ragged_kv, batch_prefill_paged_kv,
# batch_decode_paged_kv, their _sliding_window variants and batch_tree_attn.
KERNEL_PREFIX = "batch_"
SCORE_STORES = ("S_smem[i, j] = S_local[i, j]", "S_local[j] = t0[0]")


def _float32(value: float) -> str:
    """`value` as float32 bits in TVMScript: the WebGPU code generator prints float constants with 7 significant
    digits (compile/webgpu_math.py's exact_float32)."""
    return f'T.reinterpret("float32", T.int32({int(np.array(value, np.float32).view(np.int32))}))'


def soft_capped(kernel: tvm.tirx.PrimFunc, name: str, cap: float) -> tvm.tirx.PrimFunc:
    """`kernel` (TVM's GPU attention kernel `name`) with its scores soft-capped at `cap`."""
    text = kernel.script()
    found = [store for store in SCORE_STORES if store in text]
    if len(found) != 1 or text.count(found[0]) != 1:
        raise RuntimeError(f"TVM's attention kernel {name} does not store its scores in one known place "
                           f"({' or '.join(SCORE_STORES)}): tabllm's soft cap cannot be put into it")
    target, raw = (side.strip() for side in found[0].split(" = "))
    scale = cap * math.log2(math.e)
    capped = f"{target} = {_float32(scale)} * T.tanh({raw} * {_float32(1 / scale)})"
    return tvm.script.from_source(text.replace(found[0], capped))


def soft_cap_gpu_attention(mod: tvm.IRModule, cap: float) -> None:
    """Soft-cap the scores of every attention kernel in `mod` (exported with a TIRPagedKVCache for a GPU target)."""
    for gv, func in list(mod.functions.items()):
        if gv.name_hint.startswith(KERNEL_PREFIX) and isinstance(func, tvm.tirx.PrimFunc):
            mod.update_func(gv, soft_capped(func, gv.name_hint, cap))
