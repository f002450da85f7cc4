"""The TVM web runtime (wasm_runtime, tvmjs_support, webgpu_runtime) built as wasm object files.

The apache-tvm and apache-tvm-ffi wheels ship the runtime sources but not nine headers; the project keeps its
own implementations of those in headers/. We assemble a source root from the installed wheels plus those
headers, apply our fixes to TVM's sources (runtime_fixes.py), compile the three translation units with emcc, and cache the objects in the user cache directory,
keyed by everything that changes them. Objects, not LLVM bitcode: bitcode would turn every model link into a
16 MB LTO (minutes instead of about a second).

Two variants: the WebGPU library's runtime, and the CPU library's, built for WebAssembly threads (atomics, a
shared memory) with thread_pool.c in place of the runtime's serial TVMBackendParallelLaunch.
"""
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from models.cache import cache_root

from .errors import ToolchainError
from .emscripten import emcc_version, find_emcc
from .runtime_fixes import RUNTIME_FIXES, apply_runtime_fixes

HEADERS_DIR = Path(__file__).parent / "headers"
THREAD_POOL_SOURCE = Path(__file__).parent / "thread_pool.c"
RUNTIME_UNITS = ("wasm_runtime", "tvmjs_support", "webgpu_runtime")
COMPILE_FLAGS = ("-O3", "-Wno-ignored-attributes")
CXX_FLAGS = ("-std=c++17",)
# The serial launch of wasm_runtime.cc steps aside (renamed) for thread_pool.c's.
THREADS_FLAGS = ("-pthread",)
SERIAL_LAUNCH_RENAMES = ("-DTVMBackendParallelLaunch=TVMBackendParallelLaunchSerial",
                         "-DTVMBackendParallelBarrier=TVMBackendParallelBarrierSerial")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class RuntimeObjects:
    """The runtime object files, in the order the linker wants them."""

    directory: Path
    threads: bool

    @property
    def units(self) -> tuple[str, ...]:
        return RUNTIME_UNITS + (("thread_pool",) if self.threads else ())

    @property
    def paths(self) -> list[Path]:
        return [self.directory / f"{unit}.o" for unit in self.units]


def _site_package(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ToolchainError(f"the Python package {name} is not installed; run `make setup`")
    return Path(spec.origin).parent


def _headers_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(HEADERS_DIR.rglob("*.h")):
        digest.update(path.relative_to(HEADERS_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(threads: bool) -> str:
    """Everything the object files depend on: wheel versions, compiler, flags and our sources."""
    parts = {
        "apache-tvm": importlib.metadata.version("apache-tvm"),
        "apache-tvm-ffi": importlib.metadata.version("apache-tvm-ffi"),
        "emcc": emcc_version(),
        "flags": [COMPILE_FLAGS, CXX_FLAGS, THREADS_FLAGS, SERIAL_LAUNCH_RENAMES],
        "headers": _headers_digest(),
        "fixes": [[fix.path, fix.old, fix.new] for fix in RUNTIME_FIXES],
    }
    if threads:
        parts["thread_pool"] = hashlib.sha256(THREAD_POOL_SOURCE.read_bytes()).hexdigest()
    blob = json.dumps(parts, sort_keys=True).encode()
    return f"tvm-{parts['apache-tvm']}-{'threads-' if threads else ''}{hashlib.sha256(blob).hexdigest()[:16]}"


def runtime_cache_dir(threads: bool) -> Path:
    return cache_root() / "tvm-web-runtime" / cache_key(threads)


def assemble_source_root(root: Path) -> None:
    """Lay out a TVM source tree the runtime sources compile in, from the wheels plus our headers and fixes."""
    tvm_dir, ffi_dir = _site_package("tvm"), _site_package("tvm_ffi")
    for src, dst in [
        (tvm_dir / "include/tvm/runtime", root / "include/tvm/runtime"),
        (tvm_dir / "src/runtime", root / "src/runtime"),
        (tvm_dir / "web/emcc", root / "web/emcc"),
        (ffi_dir / "include", root / "3rdparty/tvm-ffi/include"),
        (ffi_dir / "src", root / "3rdparty/tvm-ffi/src"),
        (ffi_dir / "3rdparty", root / "3rdparty/tvm-ffi/3rdparty"),
    ]:
        if not src.is_dir():
            raise ToolchainError(
                f"{src} is missing from the installed wheels; reinstall apache-tvm==0.27.0.post1 and "
                "apache-tvm-ffi==0.1.15.post2 (pip install --force-reinstall ...)"
            )
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(HEADERS_DIR, root, dirs_exist_ok=True)
    apply_runtime_fixes(root)


def _include_flags(root: Path) -> list[str]:
    dirs = ["", "include", "3rdparty/tvm-ffi/include", "3rdparty/tvm-ffi/3rdparty/dlpack/include",
            "3rdparty/compiler-rt"]
    return [f"-I{root / d}" for d in dirs]


def _compile_unit(emcc: str, root: Path, unit: str, output: Path, threads: bool) -> None:
    if unit == "thread_pool":
        source, flags = str(THREAD_POOL_SOURCE), ()
    else:
        source, flags = f"emcc/{unit}.cc", CXX_FLAGS + (SERIAL_LAUNCH_RENAMES if threads else ())
    if threads:
        flags += THREADS_FLAGS
    cmd = [emcc, *_include_flags(root), *COMPILE_FLAGS, *flags, "-c", "-o", str(output), source]
    result = subprocess.run(cmd, cwd=root / "web", capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolchainError(
            f"emcc failed on the TVM runtime unit {unit}.cc (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}\ncommand: {' '.join(cmd)}"
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify(directory: Path, threads: bool) -> RuntimeObjects:
    objects = RuntimeObjects(directory, threads)
    try:
        recorded = json.loads((directory / MANIFEST).read_text())["sha256"]
        intact = all(_sha256(p) == recorded[p.name] for p in objects.paths)
    except (OSError, ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        raise ToolchainError(
            f"the cached TVM web runtime in {directory} is corrupted or incomplete; "
            f"delete that directory (rm -r '{directory}') and run again to rebuild it"
        )
    return objects


def _log(message: str) -> None:
    print(f"[toolchain] {message}", file=sys.stderr, flush=True)


def ensure_runtime(threads: bool = False) -> RuntimeObjects:
    """Return the cached runtime objects, building them first (about 2 minutes on 2 cores) when missing.
    `threads`: the CPU library's variant (WebAssembly threads), else the WebGPU library's."""
    directory = runtime_cache_dir(threads)
    if directory.exists():
        return _verify(directory, threads)
    emcc = find_emcc()
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tvm-web-runtime-", dir=directory.parent) as tmp:
        tmp = Path(tmp)
        root, staged = tmp / "src", tmp / "objects"
        staged.mkdir()
        _log(f"assembling the TVM source root from the installed wheels in {root}")
        assemble_source_root(root)
        units = RuntimeObjects(staged, threads).units
        _log(f"compiling {', '.join(units)} with emcc{' for threads' if threads else ''} "
             "(about 2 minutes; cached afterwards)")
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            jobs = [pool.submit(_compile_unit, emcc, root, unit, staged / f"{unit}.o", threads) for unit in units]
            for job in jobs:
                job.result()
        sha = {p.name: _sha256(p) for p in RuntimeObjects(staged, threads).paths}
        (staged / MANIFEST).write_text(json.dumps({"key": directory.name, "sha256": sha}, indent=1))
        try:
            staged.rename(directory)  # atomic: a half-built runtime never looks cached
        except OSError:
            if not directory.exists():  # another process finished first otherwise
                raise
    _log(f"TVM web runtime cached in {directory}")
    return _verify(directory, threads)
