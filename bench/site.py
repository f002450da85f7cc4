"""What the bench's browser runs serve: the built engine and page (web/dist) and the bundles, compiled into the
bundles directory when missing or built by another version of the compiler; and the engine page they drive."""
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench.results import PeakMemory, Result, chromium_pids, reopen_page
from compile.bundle import Bundle, load_bundle
from compile.pipeline import LIBRARY_TARGETS, compile_bundle, compiler_digest, model_name
from harness.browser import (create_page_engine, launch_webgpu_chromium, open_chat_page, open_engine_page,
                             webgpu_chromium_profile)
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


def ensure_bundle(bundles_dir: Path, model: str, quantization: str,
                  libraries: tuple[str, ...] = tuple(LIBRARY_TARGETS)) -> Bundle:
    """bundles_dir/MODEL-QUANTIZATION (MODEL: a registry name or a GGUF path, as compile takes), compiled there
    first with `libraries` when it is missing or built by other compiler sources."""
    path = bundles_dir / f"{model_name(model)}-{quantization}"
    if not (path / "manifest.json").is_file() or not built_by_this_compiler(load_bundle(path)):
        compile_bundle(model, quantization=quantization, output=path, libraries=libraries, report=print)
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


def bench_browser(bundles_dir: Path, bundle: Bundle, conversations: list[list[dict]], decode_tokens: int, device: str,
                  threads: int | None, memory_pids=chromium_pids) -> Result:
    """The real server and page in headless Chromium, the engine on `device`: "webgpu" (on whatever adapter
    Chromium finds) or "wasm" (the CPU library, WebAssembly SIMD, on `threads` threads), answering each of
    `conversations` (greedy); medians over them. Peak memory: the PSS of the processes `memory_pids()` lists."""
    web_dist = built_web_dist()
    load = """async ([url, device, threads]) => {
        const start = performance.now();
        const info = await window.engine.load(url, threads === null ? {device} : {device, threads});
        if (threads !== null && info.threads !== threads) throw new Error(`${info.threads} threads, not ${threads}`);
        return {seconds: (performance.now() - start) / 1000, library: info.library};
    }"""
    bundle_url = f"/bundles/{bundle.bundle_id}/"
    with BackgroundServer(create_app(bundles_dir, web_dist)) as server, sync_playwright() as playwright, \
            PeakMemory(memory_pids) as memory, webgpu_chromium_profile(playwright.chromium) as context:
        # The engine's memory counts from the page without it: its worker and code are the engine's too.
        page = open_chat_page(context, server.url)  # a fresh profile: empty storage
        with memory.phase():
            create_page_engine(page)
            cold = page.evaluate(load, [bundle_url, device, threads])
        # a new page: everything comes from the browser's storage
        page = reopen_page(page, lambda: open_chat_page(context, server.url))
        with memory.phase():
            create_page_engine(page)
            warm = page.evaluate(load, [bundle_url, device, threads])
            # The first token and `decode_tokens` more, as the native rows and wllama generate.
            completions = [page.evaluate("(r) => window.engine.chat.completions.create(r)", {
                "messages": messages, "temperature": 0, "max_tokens": decode_tokens + 1})
                for messages in conversations]
        adapter = page.evaluate("async () => (await navigator.gpu.requestAdapter()).info.architecture")
    median = lambda key: statistics.median(c["usage"]["extra"][key] for c in completions)
    library = warm["library"]  # the bundle's other libraries are never fetched
    simd = "relaxed SIMD" if library == "wasm32-relaxed" else "SIMD"
    engine = (f"browser WebGPU ({adapter})" if device == "webgpu"
              else f"browser WASM CPU ({simd}, {threads} thread{'s' if threads > 1 else ''})")
    loaded_bytes = sum(f["bytes"] for f in bundle.manifest["files"]
                       if not f["path"].endswith(".wasm") or f["path"].endswith(f"-{library}.wasm"))
    return Result(engine, bundle.manifest["quantization"], cold["seconds"], warm["seconds"],
                  median("time_to_first_token_s"),
                  median("prefill_tokens_per_s"), median("decode_tokens_per_s"), memory.peak, loaded_bytes,
                  answers=[c["choices"][0]["message"]["content"] for c in completions], peak_rise_bytes=memory.rise)
