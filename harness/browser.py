"""Debian's Chromium with WebGPU on SwiftShader (no GPU needed) through Playwright, and the engine driven from
the real chat page's origin. Used by the e2e tests and by `python -m bench` (so: no pytest here)."""
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

# SwiftShader gives WebGPU on machines without a GPU. The background-networking flags keep Chromium from
# calling out (the network is closed here); navigator.gpu additionally needs a secure context (127.0.0.1).
WEBGPU_ARGS = [
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic", "--enable-unsafe-webgpu", "--enable-features=Vulkan,WebGPU",
    "--use-vulkan=swiftshader", "--use-webgpu-adapter=swiftshader", "--use-angle=swiftshader",
    "--disable-vulkan-surface",
]
# Chromium as on a machine with no usable GPU: navigator.gpu exists but gives no adapter.
NO_WEBGPU_ARGS = ["--no-sandbox"]
STEP_TIMEOUT_MS = 300_000  # one prefill of a 40-token prompt takes 10-100 s on SwiftShader


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise RuntimeError("Debian's chromium is not installed: run `make setup` (apt-get install chromium)")
    return path


def launch_webgpu_chromium(chromium):
    """`chromium`: Playwright's BrowserType (playwright.chromium, or browser.browser_type)."""
    return chromium.launch(executable_path=chromium_path(), args=WEBGPU_ARGS, headless=True)


@contextmanager
def webgpu_chromium_profile(chromium) -> Iterator:
    """A BrowserContext of Chromium with WebGPU on a fresh profile on disk (a temporary directory), as a user's:
    its storage quota is a share of the disk. A browser.new_context() is off the record, and its storage (held
    in memory) refused a 3B model's shards at about 1.2 GB, in both engines."""
    with tempfile.TemporaryDirectory(prefix="tabllm-chromium-") as profile:
        context = chromium.launch_persistent_context(profile, executable_path=chromium_path(), args=WEBGPU_ARGS,
                                                     headless=True)
        try:
            yield context
        finally:
            context.close()


def launch_chromium_without_webgpu(chromium):
    return chromium.launch(executable_path=chromium_path(), args=NO_WEBGPU_ARGS, headless=True)


def print_page_problems(page):
    """Console errors, warnings and uncaught exceptions of `page` go to stdout (the test's captured output)."""
    page.on("console", lambda m: print(f"[console.{m.type}] {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: print(f"[pageerror] {e}"))


def open_chat_page(context, url: str):
    """A new page of `context` on the real chat page at `url`, no engine created yet (the page makes its own only
    when a bundle is loaded from its picker)."""
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    print_page_problems(page)
    page.goto(url + "/")
    return page


def open_engine_page(context, url: str):
    """A new page of `context` on the real chat page at `url`, with window.engine ready (see create_page_engine):
    the engine API driven from the page's own origin, as an embedding app would."""
    page = open_chat_page(context, url)
    create_page_engine(page)
    return page


def create_page_engine(page):
    """window.engineModule = the served /static/engine.js; window.engine = one engine, nothing loaded."""
    page.evaluate("""async () => {
        window.engineModule = await import("/static/engine.js");
        window.engine = await window.engineModule.createEngine();
    }""")
