"""Shared browser-test fixtures: Chromium with WebGPU and without (session-scoped), a local HTTP server factory,
the real server (static_server.create_app) over a directory holding the real compiled SmolLM2 bundle, and engine
pages on that server's origin."""
import contextlib
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from compile.bundle import Bundle
from compile.options import CompileOptions
from compile.pipeline import compile_bundle
from harness.browser import (launch_chromium_without_webgpu, launch_webgpu_chromium, open_engine_page,
                         print_page_problems)
from harness.server import BackgroundServer, RequestLog
from models.synthetic import write_synthetic_gguf
from static_server import create_app

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = "smollm2-135m-instruct"
GEMMA3 = "gemma3-270m"


@pytest.fixture(scope="session")
def webgpu_browser():
    """Headless Debian Chromium with WebGPU on SwiftShader, shared by the whole session."""
    with sync_playwright() as playwright:
        browser = launch_webgpu_chromium(playwright.chromium)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def no_webgpu_browser(webgpu_browser):
    """Chromium as on a machine without a usable GPU (no WebGPU adapter): the CPU path's browser."""
    browser = launch_chromium_without_webgpu(webgpu_browser.browser_type)
    yield browser
    browser.close()


@pytest.fixture
def page(webgpu_browser):
    """A fresh page whose console errors and uncaught exceptions are printed with the test's output."""
    context = webgpu_browser.new_context()
    page = context.new_page()
    print_page_problems(page)
    yield page
    context.close()


@pytest.fixture(scope="session")
def serve():
    """serve(app) -> base URL of `app` running on a free 127.0.0.1 port until the session ends."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(BackgroundServer(app)).url


@pytest.fixture(scope="session")
def web_dist():
    """web/dist as the server serves it, built from the current sources (esbuild, about a second)."""
    subprocess.run(["node", "build.mjs"], cwd=ROOT / "web", check=True, capture_output=True)
    return ROOT / "web" / "dist"


@pytest.fixture(scope="session")
def serve_site(serve, web_dist):
    """serve_site(bundles_dir) -> (base URL, RequestLog): the real server (static_server.create_app) for that
    directory, plus /e2e/ with this folder's test pages (the raw-ABI runner loads tvmjs from /static)."""
    def start(bundles_dir: Path):
        log = RequestLog(create_app(bundles_dir, web_dist))
        return serve(Starlette(routes=[
            Mount("/e2e", StaticFiles(directory=Path(__file__).parent / "pages")),
            Mount("/", log),
        ])), log
    return start


@pytest.fixture(scope="session")
def bundles_dir(default_compile) -> Path:
    """A bundles directory (as static_server serves) holding SmolLM2's default bundle only."""
    return default_compile.bundle.path.parent


@pytest.fixture(scope="session")
def smollm2_q4_bundle(default_compile) -> Bundle:
    """The default bundle: the GGUF's own 4-bit blocks (and its 8-bit embedding)."""
    return default_compile.bundle


@pytest.fixture(scope="session")
def site(serve_site, bundles_dir):
    """(base URL, RequestLog) of the real server offering the SmolLM2 default bundle."""
    return serve_site(bundles_dir)


@pytest.fixture(scope="session")
def smollm2_q0_bundle(tmp_path_factory) -> Bundle:
    """SmolLM2 in float32 (q0f32, ~540 MB of shards) in a bundles directory of its own, built only when asked; its
    tests run the WebGPU and the SIMD128 libraries (the engine's choice when a bundle has no relaxed-SIMD one)."""
    directory = tmp_path_factory.mktemp("bundles-q0f32")
    return compile_bundle(SMOLLM2, quantization="q0f32", output=directory / f"{SMOLLM2}-q0f32", opt_level="fast",
                          libraries=("webgpu", "wasm32"), report=lambda message: None).bundle


@pytest.fixture(scope="session")
def gemma3_bundle(tmp_path_factory) -> Bundle:
    """Gemma 3 270M, a base model (its GGUF's own K-quant blocks), with the wasm32 CPU library only, in a bundles
    directory of its own, built only when asked (~90 s here; the WebGPU and relaxed-SIMD libraries would add
    minutes). Its prefill chunk is at most its sliding window (512), and so is its context: a small KV cache."""
    directory = tmp_path_factory.mktemp("bundles-gemma3")
    return compile_bundle(GEMMA3, output=directory / f"{GEMMA3}-gguf", opt_level="fast", libraries=("wasm32",),
                          options=CompileOptions(context_window_size=512, prefill_chunk_size=512),
                          report=lambda message: None).bundle


@pytest.fixture(scope="session")
def synthetic_half_billion(tmp_path_factory) -> tuple[Path, Bundle]:
    """Qwen2.5-0.5B's shape with random weights (models/synthetic.py): its GGUF and the bundle compiled from that
    GGUF's blocks, in a bundles directory of its own, with only the CPU library Chromium runs (relaxed SIMD): the
    test needs no other, and each would add its build and link."""
    directory = tmp_path_factory.mktemp("synthetic-0.5b")
    gguf = write_synthetic_gguf("0.5b", directory / "synthetic-0.5b.gguf")
    bundle = compile_bundle(str(gguf), output=directory / "bundles" / "synthetic-0.5b-gguf", opt_level="fast",
                            libraries=("wasm32-relaxed",), report=lambda message: None).bundle
    return gguf, bundle


@pytest.fixture(scope="session")
def bundle_url(smollm2_q4_bundle):
    return f"/bundles/{smollm2_q4_bundle.bundle_id}/"


@pytest.fixture(scope="module")
def engine_page(webgpu_browser, site):
    """The real chat page with one engine (window.engine), shared by the tests of one module, in order."""
    url, _ = site
    context = webgpu_browser.new_context()
    yield open_engine_page(context, url)
    context.close()
