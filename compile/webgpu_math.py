"""sin and cos in WebGPU kernels to float32 accuracy. WGSL promises them only to 2^-11 absolute, and only within
[-pi, pi]: SwiftShader's are 1.9e-4 off anywhere in [0, 120]. The rotary embedding of TVM's KV cache takes the sin
and cos of position x frequency, so every logit moved: 1.5e-4 to 1.5e-3 apart from transformers on the tiny
checkpoints of tests/tiny_checkpoints.py, against 8e-6 for the wasm32 library.

Lowered instead (for float32 on the webgpu target) as C libraries do: x = k pi/2 + r with k the nearest integer
and pi/2 in three parts (Cody-Waite, exact for |k| < 2^12, i.e. |x| < 6,400: every angle of a context of 4k
tokens), then Cephes' minimax polynomials of sin and cos on [-pi/4, pi/4], picked and signed by k mod 4."""
import functools

import numpy as np
from tvm import tirx


TWO_OVER_PI = 0.6366197723675814
# pi/2 = PIO2_1 + PIO2_2 + PIO2_3, each with few enough bits that k * part is exact in float32 (Cephes' sinf)
PIO2_1, PIO2_2, PIO2_3 = 1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8
SIN_COEFFICIENTS = (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4)  # r + r^3 (s0 + s1 r^2 + s2 r^4)
COS_COEFFICIENTS = (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5)  # 1 - r^2/2 + r^4 (...)


def exact_float32(value: float) -> tirx.Expr:
    """`value` rounded to float32, as a constant that WGSL reads exactly: TVM 0.27's WebGPU code generator prints
    float constants with 7 significant digits (pi/2's first part, 1.5703125, as 1.570312e+00f, which broke the
    reduction below: Phi-3's logits 1.1e-4 from transformers'), so it is written as its bits
    (bitcast<f32>(1070137344i)); other targets fold it back into the float."""
    return tirx.reinterpret("float32", tirx.const(int(np.array(value, np.float32).view(np.int32)), "int32"))


def sin_cos(x: tirx.Expr, want_sin: bool) -> tirx.Expr:
    """sin(x) (want_sin) or cos(x) of a float32 expression, as an expression of float32 arithmetic."""
    xv, kv, rv = tirx.Var("x", "float32"), tirx.Var("k", "float32"), tirx.Var("r", "float32")
    z = rv * rv
    s0, s1, s2 = (exact_float32(c) for c in SIN_COEFFICIENTS)
    c0, c1, c2 = (exact_float32(c) for c in COS_COEFFICIENTS)
    sin_r = rv + rv * z * (s0 + z * (s1 + z * s2))
    cos_r = exact_float32(1.0) - exact_float32(0.5) * z + z * z * (c0 + z * (c1 + z * c2))
    # sin(k pi/2 + r) for k mod 4 = 0..3: sin r, cos r, -sin r, -cos r; cos(...): cos r, -sin r, -cos r, sin r
    quadrant = tirx.bitwise_and(tirx.Cast("int32", kv), tirx.const(3, "int32"))
    if not want_sin:
        quadrant = tirx.bitwise_and(quadrant + tirx.const(1, "int32"), tirx.const(3, "int32"))
    value = tirx.Select(quadrant == 0, sin_r, tirx.Select(quadrant == 1, cos_r,
                                                          tirx.Select(quadrant == 2, -sin_r, -cos_r)))
    r = ((xv - kv * exact_float32(PIO2_1)) - kv * exact_float32(PIO2_2)) - kv * exact_float32(PIO2_3)
    return tirx.Let(xv, x, tirx.Let(kv, tirx.round(xv * exact_float32(TWO_OVER_PI)), tirx.Let(rv, r, value)))


def _lowering(name: str, want_sin: bool):
    def lower(call) -> tirx.Expr:  # a tirx Call of the op
        dtype = str(call.ty)
        if dtype != "float32":  # WGSL's own, as TVM's default lowering
            return tirx.call_pure_extern(dtype, name, *call.args)
        return sin_cos(call.args[0], want_sin)

    return lower


@functools.cache
def use_exact_webgpu_trig() -> None:
    """Register the lowerings (once per process) above TVM's for the webgpu target."""
    for name, want_sin in (("sin", True), ("cos", False)):
        tirx.register_intrin_lowering(f"tirx.{name}", "webgpu", f=_lowering(name, want_sin), level=99)
