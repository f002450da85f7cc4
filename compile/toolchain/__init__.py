"""The TVM -> browser toolchain: targets, the cached wasm runtime, and linking model libraries."""
from .emscripten import emcc_version
from .errors import ToolchainError
from .link import link_wasm, wasm_fcompile
from .runtime import RuntimeObjects, ensure_runtime
from .targets import wasm32_relaxed_target, wasm32_target, webgpu_target

__all__ = ["ToolchainError", "emcc_version", "RuntimeObjects", "ensure_runtime", "link_wasm", "wasm_fcompile",
           "wasm32_relaxed_target", "wasm32_target", "webgpu_target"]
