"""What the bench's browser runs serve: the built engine and page (web/dist) and the bundles, compiled into the
bundles directory when missing or built by another version of the compiler; and the engine page they drive."""
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from compile.bundle import Bundle, load_bundle
from compile.pipeline import compile_bundle, compiler_digest
from harness.browser import launch_webgpu_chromium, open_engine_page
from harness.server import BackgroundServer
from static_server import create_app
from static_server.app import DEFAULT_ASSETS_DIR as WEB_DIST


def built_web_dist() -> Path:
    if not (WEB_DIST / "engine.js").is_file():
        raise SystemExit(f"{WEB_DIST} is not built: run `make setup` (or `npm run build --prefix web`)")
    return WEB_DIST


def built_by_this_compiler(bundle: Bundle) -> bool:
    """The bench measures the current kernels: a bundle from other compiler sources is compiled again."""
    return bundle.manifest["build"].get("compiler_digest") == compiler_digest()


def ensure_bundle(bundles_dir: Path, model: str, quantization: str) -> Bundle:
    """bundles_dir/MODEL-QUANTIZATION, compiled there first when it is missing or built by other compiler sources."""
    path = bundles_dir / f"{model}-{quantization}"
    if not (path / "manifest.json").is_file() or not built_by_this_compiler(load_bundle(path)):
        compile_bundle(model, quantization=quantization, output=path, report=print)
    return load_bundle(path)


@contextmanager
def wasm_engine_page(bundles_dir: Path, bundle: Bundle, threads: int) -> Iterator[Page]:
    """A Chromium page served from bundles_dir whose `window.engine` has loaded `bundle`'s CPU library on
    `threads` threads."""
    with BackgroundServer(create_app(bundles_dir, built_web_dist())) as server, sync_playwright() as playwright:
        browser = launch_webgpu_chromium(playwright.chromium)
        page = open_engine_page(browser.new_context(), server.url)
        info = page.evaluate("([url, threads]) => window.engine.load(url, {device: 'wasm', threads})",
                             [f"/bundles/{bundle.bundle_id}/", threads])
        assert info["threads"] == threads, info
        yield page
        browser.close()
