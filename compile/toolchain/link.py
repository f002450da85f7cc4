"""Linking model objects with the cached TVM web runtime into a tvmjs-loadable .wasm (emscripten)."""
import subprocess
from pathlib import Path
from typing import Literal

from .emscripten import find_emcc
from .errors import ToolchainError
from .runtime import ensure_runtime

OptLevel = Literal["-O1", "-O3"]

# What @mlc-ai/web-runtime's JS glue expects of a model library (same as tvm.contrib.tvmjs.create_tvmjs_wasm).
LINK_FLAGS = (
    "-std=c++17", "--no-entry",
    "-s", "WASM_BIGINT=1",
    "-s", "ERROR_ON_UNDEFINED_SYMBOLS=0",
    "-s", "ALLOW_MEMORY_GROWTH=1",
    "-s", "TOTAL_MEMORY=160MB",
)
SINGLE_THREAD_FLAGS = ("-s", "STANDALONE_WASM=1")
# The CPU library: a shared memory imported from JS (web/src/engine/library-imports.js creates it with the same
# initial size and this maximum, the whole wasm32 address space). A -pthread link exports what a worker thread
# starts with (_emscripten_thread_init, emscripten_stack_set_limits, stackRestore, emscripten_tls_init).
# emscripten has no standalone wasm with threads; "bare" output is the wasm alone, with its import and export
# names intact (a JS+wasm link shortens them at -O2 and above, for its own glue).
THREADS_FLAGS = (
    "-pthread", "--oformat=bare",
    "-s", "MAXIMUM_MEMORY=4GB",
    "-s", "EXPORTED_FUNCTIONS=_malloc,_free",
)


def link_wasm(output: str | Path, objects: list[str], opt_level: OptLevel, threads: bool) -> None:
    """-O1 links in about a second (tests); -O3 takes about 75 s and gives a smaller file (release).
    `threads`: the CPU library, for WebAssembly threads (see THREADS_FLAGS); else the WebGPU library."""
    runtime = ensure_runtime(threads)
    flags = THREADS_FLAGS if threads else SINGLE_THREAD_FLAGS
    cmd = [find_emcc(), opt_level, *LINK_FLAGS, *flags, "-o", str(output), *map(str, runtime.paths), *objects]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolchainError(f"emcc failed to link {output}:\n{result.stdout}{result.stderr}")


def wasm_fcompile(target, opt_level: OptLevel):
    """An `fcompile` for `Executable.export_library` of a library built for `target` (targets.py): it links with
    `link_wasm`, the CPU library for threads.

    object_format "o" makes TVM hand us wasm object files: its default, LLVM 22 bitcode, cannot be read by
    emscripten 3.1.6's wasm-ld (LLVM 14).
    """
    threads = target.kind.name != "webgpu"

    def fcompile(output, objects, options=None, **_):
        # TVM passes include-path options meant for C sources; the model objects need none of them.
        link_wasm(output, objects, opt_level, threads)

    fcompile.object_format = "o"
    return fcompile
