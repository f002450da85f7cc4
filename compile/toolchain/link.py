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
    "-s", "STANDALONE_WASM=1",
    "-s", "ALLOW_MEMORY_GROWTH=1",
    "-s", "TOTAL_MEMORY=160MB",
)


def link_wasm(output: str | Path, objects: list[str], opt_level: OptLevel) -> None:
    """-O1 links in about a second (tests); -O3 takes about 75 s and gives a smaller file (release)."""
    runtime = ensure_runtime()
    cmd = [find_emcc(), opt_level, *LINK_FLAGS, "-o", str(output), *map(str, runtime.paths), *objects]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolchainError(f"emcc failed to link {output}:\n{result.stdout}{result.stderr}")


def wasm_fcompile(opt_level: OptLevel):
    """An `fcompile` for `Executable.export_library` that links with `link_wasm`.

    object_format "o" makes TVM hand us wasm object files: its default, LLVM 22 bitcode, cannot be read by
    emscripten 3.1.6's wasm-ld (LLVM 14).
    """

    def fcompile(output, objects, options=None, **_):
        # TVM passes include-path options meant for C sources; the model objects need none of them.
        link_wasm(output, objects, opt_level)

    fcompile.object_format = "o"
    return fcompile
