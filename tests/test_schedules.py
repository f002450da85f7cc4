"""Our schedules for the q4 matmuls: on the GPU one output per thread, no workgroup barriers (slow on
SwiftShader); on the CPU the grouped form (scale and zero point once per group) in SIMD lanes, which must
still compute the right numbers."""
import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.relax.frontend import nn

from compile.build import _pipeline, native_cpu_target
from compile.quantization import Q4Linear
from compile.toolchain import webgpu_target
from models.quantization import dequantize_q4f32_1, quantize_q4f32_1
from tests.numeric import assert_close_to_scale


class LinearWithResidual(nn.Module):
    def __init__(self, cpu: bool):
        self.proj = Q4Linear(64, 64, cpu)

    def forward(self, x: nn.Tensor):
        return self.proj(x) + x


def webgpu_source(module: nn.Module, seq_len) -> str:
    mod, _ = module.export_tvm(spec={"forward": {"x": nn.spec.Tensor([1, seq_len, 64], "float32"),
                                                 "$": {"param_mode": "packed", "effect_mode": "none"}}})
    target = webgpu_target()
    executable = relax.build(mod, target=target, system_lib=True, relax_pipeline=_pipeline(target))
    modules = [executable.mod]
    while modules:
        module = modules.pop()
        if module.kind == "webgpu":
            return module.inspect_source()
        modules.extend(module.imports)
    raise AssertionError("no WebGPU module was built")


@pytest.mark.parametrize("seq_len", [1, "seq_len"])
def test_q4_matmul_kernels_use_no_barriers_or_shared_memory(seq_len):
    source = webgpu_source(LinearWithResidual(cpu=False), seq_len)
    assert "fn fused_q4_matmul_add_kernel" in source  # the residual add fused into the matmul kernel
    assert "workgroupBarrier" not in source and "var<workgroup>" not in source
    # The reduction unpacks each 32-bit word with constant shifts (the eight nibbles unrolled).
    assert all(f">>{4 * i}u" in source for i in range(8))


@pytest.mark.parametrize("seq_len", [1, 2, 5])  # decode, one token tile, tiles and a partial tile
def test_grouped_cpu_q4_matmul_matches_numpy(seq_len):
    """The CPU form and rule compute x @ dequantize(w).T plus the residual."""
    mod, _ = LinearWithResidual(cpu=True).export_tvm(spec={"forward": {
        "x": nn.spec.Tensor([1, "seq_len", 64], "float32"), "$": {"param_mode": "packed", "effect_mode": "none"}}})
    target = native_cpu_target()
    vm = relax.VirtualMachine(relax.build(mod, target=target, relax_pipeline=_pipeline(target)), tvm.cpu())
    rng = np.random.default_rng(0)
    q_weight, q_scale = quantize_q4f32_1(rng.standard_normal((64, 64)).astype(np.float32))
    x = rng.standard_normal((1, seq_len, 64)).astype(np.float32)
    out = vm["forward"](tvm.runtime.tensor(x), [tvm.runtime.tensor(q_weight), tvm.runtime.tensor(q_scale)])
    assert_close_to_scale(out.numpy(), x @ dequantize_q4f32_1(q_weight, q_scale).T + x)
