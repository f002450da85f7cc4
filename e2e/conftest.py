"""Shared browser-test fixtures: Chromium with WebGPU (session-scoped), a local HTTP server factory, and a
directory holding the real compiled SmolLM2 bundle."""
import contextlib

import pytest
from playwright.sync_api import sync_playwright

from compile.bundle import Bundle, load_bundle
from compile.pipeline import compile_bundle
from e2e.browser import launch_webgpu_chromium
from e2e.server import BackgroundServer

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def webgpu_browser():
    """Headless Debian Chromium with WebGPU on SwiftShader, shared by the whole session."""
    with sync_playwright() as playwright:
        browser = launch_webgpu_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(webgpu_browser):
    """A fresh page whose console errors and uncaught exceptions are printed with the test's output."""
    context = webgpu_browser.new_context()
    page = context.new_page()
    page.on("console", lambda m: print(f"[console.{m.type}] {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: print(f"[pageerror] {e}"))
    yield page
    context.close()


@pytest.fixture(scope="session")
def serve():
    """serve(app) -> base URL of `app` running on a free 127.0.0.1 port until the session ends."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(BackgroundServer(app)).url


@pytest.fixture(scope="session")
def bundles_dir(tmp_path_factory):
    """A bundles directory (as static_server serves) with SmolLM2 q4f32_1, compiled once per session (~15 s)."""
    directory = tmp_path_factory.mktemp("bundles")
    compile_bundle(SMOLLM2, output=directory / f"{SMOLLM2}-q4f32_1", opt_level="fast", report=lambda message: None)
    return directory


@pytest.fixture(scope="session")
def smollm2_q4_bundle(bundles_dir) -> Bundle:
    return load_bundle(bundles_dir / f"{SMOLLM2}-q4f32_1")
