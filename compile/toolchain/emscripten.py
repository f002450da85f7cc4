"""Locating Debian's emscripten (emcc 3.1.6: clang/lld 14, binaryen 108)."""
import functools
import shutil
import subprocess

from .errors import ToolchainError


def find_emcc() -> str:
    emcc = shutil.which("emcc")
    if emcc is None:
        raise ToolchainError(
            "emcc (emscripten) is not installed: run `make setup`, or `apt-get install emscripten` on Debian"
        )
    return emcc


@functools.cache
def emcc_version() -> str:
    result = subprocess.run([find_emcc(), "--version"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolchainError(f"`emcc --version` failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.splitlines()[0].strip()
