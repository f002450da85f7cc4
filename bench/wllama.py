"""The llama.cpp baseline of `python -m bench`: npm @wllama/wllama (llama.cpp compiled to WebAssembly) in the
same headless Chromium as the browser rows, running the GGUF file the bundle was compiled from on the CPU, with
1 or 2 threads. The page (pages/wllama.html + wllama.js) is served cross-origin isolated, without the chat
server's Content-Security-Policy: wllama starts its Web Worker from a blob: URL.

wllama 3 runs llama-server's request loop and takes prompts as text only (an array of token ids is refused),
so each prompt's ids are decoded to their exact text, and llama.cpp's count of prompt tokens is checked
against the ids."""
import statistics
from pathlib import Path

from playwright.sync_api import sync_playwright
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import FileResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from tokenizers import Tokenizer

from bench.results import PeakMemory, Result, chromium_pids, reopen_page
from harness.browser import STEP_TIMEOUT_MS, print_page_problems, webgpu_chromium_profile
from harness.server import BackgroundServer
from static_server.headers import SECURITY_HEADERS

# An installed wheel carries wllama's ESM build as bench/wllama (setup.py); a checkout has it in web/node_modules.
PACKAGED_WLLAMA_ESM = Path(__file__).resolve().parent / "wllama"
WLLAMA_ESM = (PACKAGED_WLLAMA_ESM if PACKAGED_WLLAMA_ESM.is_dir()
              else Path(__file__).resolve().parent.parent / "web" / "node_modules" / "@wllama" / "wllama" / "esm")
PAGES = Path(__file__).parent / "pages"
ISOLATION_HEADERS = {name: SECURITY_HEADERS[name] for name in ("Cross-Origin-Opener-Policy",
                                                                "Cross-Origin-Embedder-Policy")}
QUANTIZATION = "Q4_1 (GGUF)"


async def add_isolation_headers(request, call_next):
    response = await call_next(request)
    response.headers.update(ISOLATION_HEADERS)
    return response


def create_wllama_app(gguf: Path) -> Starlette:
    """/wllama.html and /wllama.js (the page), /wllama/ (the package's ESM build and wasm), /model.gguf."""
    if not (WLLAMA_ESM / "index.js").is_file():
        raise SystemExit(f"{WLLAMA_ESM} is missing: run `make setup` (or `npm ci --prefix web`)")
    return Starlette(routes=[
        Route("/model.gguf", lambda request: FileResponse(gguf), methods=["GET", "HEAD"]),
        Mount("/wllama", StaticFiles(directory=WLLAMA_ESM)),
        Mount("/", StaticFiles(directory=PAGES)),
    ], middleware=[Middleware(BaseHTTPMiddleware, dispatch=add_isolation_headers)])


def open_wllama_page(context, url: str):
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    print_page_problems(page)
    page.goto(url + "/wllama.html")
    return page


def load_wllama(page, threads: int, context_tokens: int) -> float:
    """Loads /model.gguf in `page`; the seconds it took. Fails unless wllama really runs `threads` threads
    (more than one needs a cross-origin isolated page)."""
    loaded = page.evaluate("async (args) => (await import('/wllama.js')).load(...args)",
                           ["/model.gguf", threads, context_tokens])
    if loaded["threads"] != threads:
        raise RuntimeError(f"wllama runs {loaded['threads']} thread(s), not {threads} "
                           f"(crossOriginIsolated: {loaded['crossOriginIsolated']})")
    return loaded["seconds"]


def wllama_generate(page, prompt_ids: list[int], prompt_text: str, max_tokens: int) -> dict:
    """`max_tokens` greedy tokens on an empty cache: {ids, promptTokens, cachedTokens, firstTokenS, lastTokenS}
    (times from the request). End-of-generation tokens are masked (llama-server's ignore_eos) so that every
    prompt decodes as many steps: the ids are plain greedy ones up to where those would have ended. Fails if
    llama.cpp read `prompt_text` as another number of tokens."""
    run = page.evaluate("async (args) => (await import('/wllama.js')).generate(...args)", [prompt_text, max_tokens])
    if [run["promptTokens"], run["cachedTokens"], len(run["ids"])] != [len(prompt_ids), 0, max_tokens]:
        raise RuntimeError(f"wllama prefilled {run['promptTokens']} tokens ({run['cachedTokens']} cached) for a "
                           f"prompt of {len(prompt_ids)} and generated {len(run['ids'])} of {max_tokens} tokens")
    return run


def prompt_text(tokenizer: Tokenizer, ids: list[int]) -> str:
    """The text whose tokens are exactly `ids` (special tokens written out), for an engine that takes text."""
    text = tokenizer.decode(ids, skip_special_tokens=False)
    if tokenizer.encode(text, add_special_tokens=False).ids != ids:
        raise ValueError("these token ids are not the tokenization of any text")
    return text


def bench_wllama(gguf: Path, tokenizer: Tokenizer, prompts: list[list[int]], decode_tokens: int,
                 threads: int, memory_pids=chromium_pids) -> Result:
    """Per prompt: time to first token (prefill + the first greedy token), then `decode_tokens` greedy steps.
    Load: cold in a fresh profile (download into wllama's OPFS cache), warm in a new page (from it).
    Peak memory: the PSS of the processes `memory_pids()` lists."""
    context_tokens = max(map(len, prompts)) + decode_tokens + 1
    texts = [prompt_text(tokenizer, ids) for ids in prompts]
    with BackgroundServer(create_wllama_app(gguf)) as server, sync_playwright() as playwright, \
            PeakMemory(memory_pids) as memory, webgpu_chromium_profile(playwright.chromium) as context:
        page = open_wllama_page(context, server.url)
        with memory.phase():
            cold = load_wllama(page, threads, context_tokens)
        page = reopen_page(page, lambda: open_wllama_page(context, server.url))
        with memory.phase():
            warm = load_wllama(page, threads, context_tokens)
            runs = [wllama_generate(page, ids, text, decode_tokens + 1) for ids, text in zip(prompts, texts)]
    ttft = [run["firstTokenS"] for run in runs]
    decode_rates = [(len(run["ids"]) - 1) / (run["lastTokenS"] - run["firstTokenS"]) for run in runs]
    engine = f"wllama (llama.cpp wasm), {threads} thread{'s' if threads > 1 else ''}"
    return Result(engine, QUANTIZATION, cold, warm, statistics.median(ttft),
                  statistics.median(len(ids) / s for ids, s in zip(prompts, ttft)), statistics.median(decode_rates),
                  memory.peak, gguf.stat().st_size, [run["ids"] for run in runs], peak_rise_bytes=memory.rise)
