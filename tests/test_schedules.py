"""Our GPU schedule for the q4 matmuls: one output per thread, no workgroup barriers (slow on SwiftShader)."""
import pytest
from tvm import relax
from tvm.relax.frontend import nn

from compile.build import _gpu_pipeline
from compile.quantization import Q4Linear
from compile.toolchain import webgpu_target


class LinearWithResidual(nn.Module):
    def __init__(self):
        self.proj = Q4Linear(64, 64)

    def forward(self, x: nn.Tensor):
        return self.proj(x) + x


def webgpu_source(module: nn.Module, seq_len) -> str:
    mod, _ = module.export_tvm(spec={"forward": {"x": nn.spec.Tensor([1, seq_len, 64], "float32"),
                                                 "$": {"param_mode": "packed", "effect_mode": "none"}}})
    target = webgpu_target()
    executable = relax.build(mod, target=target, system_lib=True, relax_pipeline=_gpu_pipeline(target))
    modules = [executable.mod]
    while modules:
        module = modules.pop()
        if module.kind == "webgpu":
            return module.inspect_source()
        modules.extend(module.imports)
    raise AssertionError("no WebGPU module was built")


@pytest.mark.parametrize("seq_len", [1, "seq_len"])
def test_q4_matmul_kernels_use_no_barriers_or_shared_memory(seq_len):
    source = webgpu_source(LinearWithResidual(), seq_len)
    assert "fn fused_q4_matmul_add_kernel" in source  # the residual add fused into the matmul kernel
    assert "workgroupBarrier" not in source and "var<workgroup>" not in source
    # The reduction unpacks each 32-bit word with constant shifts (the eight nibbles unrolled).
    assert all(f">>{4 * i}u" in source for i in range(8))
