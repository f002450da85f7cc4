"""compile/webgpu_math.py's sin and cos, built for this CPU from the very expressions WebGPU kernels get, against
float64 numpy over every angle a rotary embedding of a 4k context takes (WGSL's own: 2^-11; SwiftShader's measured
1.9e-4 off)."""
import re

import numpy as np
import tvm
from tvm import te

from compile.toolchain import webgpu_target
from compile.webgpu_math import PIO2_1, PIO2_2, PIO2_3, sin_cos


def test_sin_and_cos_are_float32_accurate_over_the_rotary_angles():
    x = np.concatenate([np.linspace(-6400, 6400, 200_001), np.linspace(-4, 4, 20_001),
                        np.arange(4096) * 0.8]).astype(np.float32)  # 0.8: a frequency near the highest
    xs = te.placeholder((len(x),), "float32", name="xs")
    sin = te.compute(xs.shape, lambda i: sin_cos(xs[i], want_sin=True), name="sin")
    cos = te.compute(xs.shape, lambda i: sin_cos(xs[i], want_sin=False), name="cos")
    kernel = tvm.compile(te.create_prim_func([xs, sin, cos]), target="llvm")
    device = tvm.cpu()
    out = [tvm.runtime.tensor(np.zeros_like(x), device) for _ in range(2)]
    kernel(tvm.runtime.tensor(x, device), *out)
    exact = x.astype(np.float64)
    assert np.abs(out[0].numpy() - np.sin(exact)).max() < 5e-7
    assert np.abs(out[1].numpy() - np.cos(exact)).max() < 5e-7


def test_its_constants_reach_wgsl_with_every_bit():
    """TVM 0.27 prints a float constant into WGSL with 7 significant digits (pi/2's first part, 1.5703125, as
    1.570312e+00f); the reduction needs pi/2's three parts exactly, and gets them as bits."""
    xs = te.placeholder((64,), "float32", name="xs")
    sin = te.compute(xs.shape, lambda i: sin_cos(xs[i], want_sin=True), name="sin")
    schedule = tvm.s_tir.Schedule(te.create_prim_func([xs, sin]))
    schedule.bind(schedule.get_loops(schedule.get_sblock("sin"))[0], "threadIdx.x")
    library = tvm.compile(schedule.mod, target=webgpu_target())
    [wgsl] = [m.inspect_source() for m in library.mod.imports if m.kind == "webgpu"]
    written = {float(np.array(int(bits), np.int32).view(np.float32))
               for bits in re.findall(r"bitcast<f32>\((-?\d+)i\)", wgsl)}
    written |= {float(np.float32(float(text))) for text in re.findall(r"(\d\.\d+e[+-]\d+)f", wgsl)}
    assert {float(np.float32(part)) for part in (PIO2_1, PIO2_2, PIO2_3)} <= written
