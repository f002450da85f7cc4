"""TVM targets for the browser. In this TVM version they must be given as dicts: CLI strings fail."""
import tvm

WASM32_HOST = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}


def wasm32_target() -> tvm.target.Target:
    """CPU code compiled to WebAssembly with 128-bit SIMD (every current browser has it; it makes the
    vectorized q4 matmuls 1.6x faster than scalar wasm) and threads: atomics and bulk memory, which a library
    on a shared memory needs (see link.THREADS_FLAGS)."""
    return tvm.target.Target({**WASM32_HOST, "mattr": ["+simd128", "+atomics", "+bulk-memory"]})


def webgpu_target() -> tvm.target.Target:
    """WGSL kernels for WebGPU, with the host-side code (VM glue) in WebAssembly."""
    return tvm.target.Target({"kind": "webgpu"}, host=WASM32_HOST)
