"""compile/webgpu_math.py's sin and cos, built for this CPU from the very expressions WebGPU kernels get, against
float64 numpy over every angle a rotary embedding of a 4k context takes (WGSL's own: 2^-11; SwiftShader's measured
1.9e-4 off)."""
import numpy as np
import tvm
from tvm import te

from compile.webgpu_math import sin_cos


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
