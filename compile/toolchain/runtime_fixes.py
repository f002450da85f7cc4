"""Fixes tabllm applies to the TVM runtime sources of the wheel before compiling them for the web.

Each one replaces text that must occur exactly once in one file, so a wheel whose source moved on fails the build
with a clear error instead of compiling without the fix.

Per-layer sliding windows on GPUs (Gemma 2's and 3's). TVM 0.27's paged KV cache copies two page tables to the
device each forward, one for the global layers and one for the sliding ones (the window's pages), and for each
depth it asks its auxiliary-data manager for both through the same methods (`CopyPageIndptrOnDepthAsync(data, d)`,
`CopyPageIndicesOnDepthAsync`, `CopyKRoPEPosOffsetOnDepthAsync`). The manager it uses for every device but CUDA and
the CPU (PlainPagedKVCacheAuxDataManager: WebGPU's) answers with views of one device buffer per depth, so the
sliding table overwrote the global one: Gemma 3's global layers attended to the window only, once the context
outgrew it (the tiny checkpoint's logits 0.3-0.6 off transformers'). Here the sliding copies ask for depths past
the last one, for which the plain manager gets buffers of their own; the CPU's and CUDA's manager
(CachedPagedKVCacheAuxDataManager) packs every copy apart and ignores the depth.
"""
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolchainError


@dataclass(frozen=True)
class SourceFix:
    path: str  # relative to the assembled source root
    old: str
    new: str


RUNTIME_FIXES = (
    SourceFix("src/runtime/vm/attn_utils.h",
              "    for (int d = 0; d < kPagedKVCacheMaxBlockDepth; ++d) {\n      qo_indptr_on_depths_device_",
              "    for (int d = 0; d < 2 * kPagedKVCacheMaxBlockDepth; ++d) {\n      qo_indptr_on_depths_device_"),
    *(SourceFix("src/runtime/vm/paged_kv_cache.cc", f"&{table}_sliding_window_on_depths_host_[d], d);",
                f"&{table}_sliding_window_on_depths_host_[d], d + kPagedKVCacheMaxBlockDepth);")
      for table in ("page_indptr", "page_indices", "k_rope_pos_offset")),
)


def apply_runtime_fixes(root: Path) -> None:
    """Apply RUNTIME_FIXES to the source tree at `root`."""
    for fix in RUNTIME_FIXES:
        path = root / fix.path
        text = path.read_text()
        if text.count(fix.old) != 1:
            raise ToolchainError(
                f"{fix.path} of the installed apache-tvm wheel does not hold the code tabllm fixes "
                f"({fix.old.strip()!r}, expected once); this toolchain is made for apache-tvm==0.27.0.post1")
        path.write_text(text.replace(fix.old, fix.new))
