"""python -m bench.soak [--bundles DIR] [--chats 1000] [--device wasm] [--seed 1]

A soak run, not a CI test: one page of the real server in headless Chromium keeps one engine for `--chats`
chats picked at random (bench/pages/soak.js): plain chats, chats aborted or interrupted after a few chunks,
invalid requests, and reloads of the bundle. After each hundred it checks that the engine still gives the
reference's first token and records Chromium's memory (PSS of all its processes) and the page's JS heap, and it
reports every unexpected outcome. The engine must stay usable throughout and memory must stay flat.
"""
import argparse
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.results import chromium_pids, pss_bytes
from bench.site import built_web_dist, ensure_bundle
from compile.quantization import DEFAULT_QUANTIZATION
from harness.browser import launch_webgpu_chromium, open_engine_page
from harness.server import BackgroundServer
from static_server import create_app

BATCH_SCRIPT = (Path(__file__).parent / "pages" / "soak.js").read_text(encoding="utf-8")
BATCH = 100


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--bundles", type=Path, default=Path("bundles"),
                        help=f"bundles directory; the default ({DEFAULT_QUANTIZATION}) bundle is compiled into it "
                             "when missing")
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--device", default="wasm", choices=("wasm", "webgpu", "auto"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    web_dist = built_web_dist()
    bundle_url = f"/bundles/{ensure_bundle(args.bundles, args.model, DEFAULT_QUANTIZATION).bundle_id}/"

    failures = []
    with BackgroundServer(create_app(args.bundles, web_dist)) as server, sync_playwright() as playwright:
        browser = launch_webgpu_chromium(playwright.chromium)
        page = open_engine_page(browser.new_context(), server.url)
        page.on("pageerror", lambda error: failures.append(f"uncaught in the page: {error}"))
        page.evaluate("([url, device]) => window.engine.load(url, {device})", [bundle_url, args.device])
        print(f"{'chats':>6} {'chat':>5} {'abort':>5} {'intr':>5} {'inval':>5} {'reload':>6} {'failed':>6} "
              f"{'answer':>7} {'Chromium PSS MB':>15} {'JS heap MB':>10} {'s':>6}")
        started, totals = time.monotonic(), {}
        for start in range(0, args.chats, BATCH):
            count = min(BATCH, args.chats - start)
            batch = page.evaluate(BATCH_SCRIPT, {"bundleUrl": bundle_url, "device": args.device, "start": start,
                                                 "count": count, "seed": args.seed * 1_000_003 + start})
            failures += batch["failures"]
            if batch["answer"] != "The":
                failures.append(f"after chat {start + count}: the reference question got {batch['answer']!r}")
            for key, value in batch["counts"].items():
                totals[key] = totals.get(key, 0) + value
            pss = sum(pss_bytes(pid) for pid in chromium_pids())
            print(f"{start + count:>6} {totals['chat']:>5} {totals['aborted']:>5} {totals['interrupted']:>5} "
                  f"{totals['invalid']:>5} {totals['reload']:>6} {len(failures):>6} {batch['answer']!r:>7} "
                  f"{pss / 1e6:>15.0f} {batch['jsHeapBytes'] / 1e6:>10.1f} {time.monotonic() - started:>6.0f}",
                  flush=True)
        browser.close()
    for failure in failures:
        print(f"FAILED {failure}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
