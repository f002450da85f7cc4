"""python browser/build.py: web/dist/pyodide/, what the server ships under /pyodide/ for Python in the tab:
Pyodide's runtime (npm `pyodide`, from web/node_modules), the tabllm-browser wheel (built from browser/), the
pinned openai wheels for Pyodide (browser/openai-wheels.txt, downloaded once, checked by sha256) and a
pyodide-lock.json listing those wheels, so `pyodide.loadPackage("openai")` resolves offline from this server.

Not `pyodide build` / `pyodide lockfile add-wheels` (pyodide-build): it fetches its build environment's metadata
from a site that is not reachable here, even for a pure-Python package; nothing here has a C extension to build.
"""
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

BROWSER = Path(__file__).resolve().parent
ROOT = BROWSER.parent
NPM_PYODIDE = ROOT / "web" / "node_modules" / "pyodide"
OUT = ROOT / "web" / "dist" / "pyodide"
OPENAI_WHEELS = BROWSER / "openai-wheels.txt"
# What loadPyodide fetches from its indexURL (the rest of the npm package is types, docs and Node entry points).
RUNTIME_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")
# Pyodide 314.0.7: CPython 3.14 on Emscripten, the platform its lock's "info" names.
PLATFORM = "pyemscripten_2026_0_wasm32"
MARKER_ENVIRONMENT = {
    "sys_platform": "emscripten", "platform_system": "Emscripten", "platform_machine": "wasm32",
    "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython",
    "python_version": "3.14", "python_full_version": "3.14.2", "extra": "",
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_FILES:
        shutil.copy2(NPM_PYODIDE / name, OUT / name)
    wheels = [build_wheel(), *fetch_openai_wheels()]
    lock = json.loads((NPM_PYODIDE / "pyodide-lock.json").read_text())
    packages = dict(lock_entry(wheel) for wheel in wheels)
    missing = {dep for entry in packages.values() for dep in entry["depends"]} - packages.keys()
    if missing:
        raise SystemExit(f"browser/build.py: the wheels miss dependencies {sorted(missing)}: add them to {OPENAI_WHEELS}")
    # Only what is shipped here: every package the lock names can be loaded from this server.
    (OUT / "pyodide-lock.json").write_text(json.dumps({"info": lock["info"], "packages": packages}, indent=1))
    print(f"{OUT.relative_to(ROOT)}: Pyodide {json.loads((NPM_PYODIDE / 'package.json').read_text())['version']}, "
          f"{len(wheels)} wheels", flush=True)


def build_wheel() -> Path:
    for old in OUT.glob("tabllm_browser-*.whl"):
        old.unlink()
    # No build isolation: the venv's setuptools builds it, so set-up needs no index for this step.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--wheel-dir", str(OUT), str(BROWSER)], check=True)
    return next(OUT.glob("tabllm_browser-*.whl"))


def fetch_openai_wheels() -> list[Path]:
    """The pinned wheels in OUT, downloaded (every one checked against its sha256) when one is missing."""
    pinned = {(canonicalize_name(r.name), str(r.specifier).removeprefix("=="))
              for r in (Requirement(line.split(" --hash=")[0]) for line in OPENAI_WHEELS.read_text().splitlines()
                        if line and not line.startswith("#"))}
    if not pinned <= {name_and_version(wheel) for wheel in OUT.glob("*.whl")}:
        download_openai_wheels()
    return sorted(wheel for wheel in OUT.glob("*.whl") if name_and_version(wheel) in pinned)


def name_and_version(wheel: Path) -> tuple[str, str]:
    name, version, *_ = parse_wheel_filename(wheel.name)
    return name, str(version)


def download_openai_wheels() -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--require-hashes", "--only-binary=:all:", "--platform", PLATFORM, "--platform", "any",
                    "--python-version", "3.14", "--implementation", "cp", "--abi", "cp314", "--abi", "none",
                    "--dest", str(OUT), "--requirement", str(OPENAI_WHEELS)], check=True)


def lock_entry(wheel: Path) -> tuple[str, dict]:
    """The pyodide-lock.json entry of a wheel: its name, version, sha256, top-level imports and the dependencies
    its metadata requires on Pyodide (markers evaluated for Emscripten)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    top_level = sorted({n.split("/")[0].removesuffix(".py") for n in names
                        if not n.split("/")[0].endswith((".dist-info", ".data", ".so"))})
    depends = [canonicalize_name(r.name) for r in map(Requirement, metadata.get_all("Requires-Dist") or [])
               if r.marker is None or r.marker.evaluate(MARKER_ENVIRONMENT)]
    name = canonicalize_name(metadata["Name"])
    return name, {
        "name": metadata["Name"], "version": metadata["Version"], "file_name": wheel.name, "install_dir": "site",
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "package_type": "package",
        "imports": top_level, "depends": depends, "unvendored_tests": False, "shared_library": False,
    }


if __name__ == "__main__":
    main()
