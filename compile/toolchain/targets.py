"""TVM targets for the browser. In this TVM version they must be given as dicts: CLI strings fail."""
import tvm

WASM32_HOST = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm"}


def wasm32_target() -> tvm.target.Target:
    """CPU code compiled to WebAssembly (no GPU)."""
    return tvm.target.Target(WASM32_HOST)


def webgpu_target() -> tvm.target.Target:
    """WGSL kernels for WebGPU, with the host-side code (VM glue) in WebAssembly."""
    return tvm.target.Target({"kind": "webgpu"}, host=WASM32_HOST)
