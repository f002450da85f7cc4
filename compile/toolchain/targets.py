"""TVM targets for the browser. In this TVM version they must be given as dicts: CLI strings fail."""
import tvm

WASM32_HOST = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}


def wasm32_target() -> tvm.target.Target:
    """CPU code compiled to WebAssembly with 128-bit SIMD (every current browser has it; it makes the
    vectorized q4 matmuls 1.6x faster than scalar wasm) and threads: atomics and bulk memory, which a library
    on a shared memory needs (see link.THREADS_FLAGS)."""
    return tvm.target.Target({**WASM32_HOST, "mattr": ["+simd128", "+atomics", "+bulk-memory"]})


def wasm32_relaxed_target() -> tvm.target.Target:
    """wasm32_target plus relaxed SIMD, with multiplies and adds contracted into f32x4.relaxed_madd (a fused
    multiply-add where the CPU has one): prefill 1.2x faster in Chromium (a 1,151-token prompt, one thread: 17.9 s
    -> 14.6 s). Chrome and Firefox run it; Safari does not, so a bundle carries both CPU libraries."""
    base = wasm32_target()
    return tvm.target.Target({**base.export(), "mattr": [*base.attrs["mattr"], "+relaxed-simd"],
                              "fast-math-contract": True})


def webgpu_target() -> tvm.target.Target:
    """WGSL kernels for WebGPU, with the host-side code (VM glue) in WebAssembly."""
    return tvm.target.Target({"kind": "webgpu"}, host=WASM32_HOST)
