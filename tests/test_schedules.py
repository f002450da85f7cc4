"""Our schedules for the quantized matmuls: on the GPU one output per thread, no workgroup barriers (slow on
SwiftShader); on the CPU the grouped form (scale and minimum once per group) in SIMD lanes, which must still
compute the right numbers in every weight format."""
import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.relax.frontend import nn

from compile.build import _pipeline, native_cpu_target
from compile.quantization import CPU_TOKEN_TILE, QuantLinear
from compile.toolchain import webgpu_target
from models.quantization import Q4F32_1, BlockWeight, WeightFormat, quantize_q4f32_1
from tests.numeric import assert_close_to_scale

FORMATS = [Q4F32_1, WeightFormat(4, 32), WeightFormat(4, 32, zero_code=8), WeightFormat(8, 32),
           WeightFormat(8, 32, zero_code=128), WeightFormat(8, 16, zero_code=32)]


class LinearWithResidual(nn.Module):
    def __init__(self, fmt: WeightFormat, cpu: bool):
        self.proj = QuantLinear(64, 64, fmt, cpu)

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


@pytest.mark.parametrize("fmt", [Q4F32_1, WeightFormat(8, 16, zero_code=32)], ids=lambda f: f.name)
@pytest.mark.parametrize("seq_len", [1, "seq_len"])
def test_quant_matmul_kernels_use_no_barriers_or_shared_memory(seq_len, fmt):
    source = webgpu_source(LinearWithResidual(fmt, cpu=False), seq_len)
    assert "fn fused_quant_matmul_add_kernel" in source  # the residual add fused into the matmul kernel
    assert "workgroupBarrier" not in source and "var<workgroup>" not in source
    # The reduction unpacks each 32-bit word with constant shifts (its codes unrolled).
    assert all(f">>{fmt.bits * i}u" in source for i in range(1, fmt.elems_per_word))


def random_block_weight(fmt: WeightFormat, rng) -> BlockWeight:
    if fmt == Q4F32_1:
        return quantize_q4f32_1(rng.standard_normal((64, 64)).astype(np.float32))
    groups = (64, 64 // fmt.group_size)
    return BlockWeight(rng.integers(0, 1 << fmt.bits, (64, 64)).astype(np.uint8),
                       rng.uniform(0.001, 0.02, groups).astype(np.float32),
                       rng.uniform(-1, 1, groups).astype(np.float32) if fmt.has_min else None, fmt)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
# One token (the rest of its tile is padding), one whole tile, and whole tiles with a partial one.
@pytest.mark.parametrize("seq_len", [1, CPU_TOKEN_TILE, 2 * CPU_TOKEN_TILE + 3])
def test_grouped_cpu_quant_matmul_matches_numpy(seq_len, fmt):
    """The CPU form and rule compute x @ dequantize(w).T plus the residual."""
    mod, _ = LinearWithResidual(fmt, cpu=True).export_tvm(spec={"forward": {
        "x": nn.spec.Tensor([1, "seq_len", 64], "float32"), "$": {"param_mode": "packed", "effect_mode": "none"}}})
    target = native_cpu_target()
    vm = relax.VirtualMachine(relax.build(mod, target=target, relax_pipeline=_pipeline(target)), tvm.cpu())
    rng = np.random.default_rng(0)
    weight = random_block_weight(fmt, rng)
    x = rng.standard_normal((1, seq_len, 64)).astype(np.float32)
    out = vm["forward"](tvm.runtime.tensor(x), [tvm.runtime.tensor(a) for a in weight.packed().values()])
    assert_close_to_scale(out.numpy(), x @ weight.dequantize().T + x)
