"""What the bench's browser runs serve: the built engine and page (web/dist) and the bundles, compiled into the
bundles directory when missing or older than the CPU library."""
from pathlib import Path

from compile.bundle import Bundle, load_bundle
from compile.pipeline import LIBRARY_TARGETS, compile_bundle

WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"


def built_web_dist() -> Path:
    if not (WEB_DIST / "engine.js").is_file():
        raise SystemExit(f"{WEB_DIST} is not built: run `make setup` (or `npm run build --prefix web`)")
    return WEB_DIST


def has_every_library(bundle: Bundle) -> bool:
    """Bundles from before the CPU library existed hold only the WebGPU one."""
    return all(any(f["path"].endswith(f"-{kind}.wasm") for f in bundle.manifest["files"]) for kind in LIBRARY_TARGETS)


def ensure_bundle(bundles_dir: Path, model: str, quantization: str) -> Bundle:
    """bundles_dir/MODEL-QUANTIZATION, compiled there first when it is missing or lacks a library."""
    path = bundles_dir / f"{model}-{quantization}"
    if not (path / "manifest.json").is_file() or not has_every_library(load_bundle(path)):
        compile_bundle(model, quantization=quantization, output=path, report=print)
    return load_bundle(path)
