"""python -m bench.load_memory [--bundles DIR] [--model NAME] [--quantization Q] [--threads N] [--baseline-dist DIR]
[--json PATH]

The engine's memory while it loads a bundle on the CPU (device "wasm": the weights live in the tab's own process)
in headless Chromium, from the real server: cold (empty storage, every file downloaded), warm (a new page, every
file from the browser's storage) and after a reload (the same page, reloaded). For each load: the renderers' PSS
(the page and its workers: the engine's worker, the weights in the CPU library's memory) sampled every 20 ms:
before the engine is created (the chat page alone: the engine's worker and code count as the engine's), the
peak of its creation and load, a second after it (what the loaded engine keeps: the weights, the library, the
tokenizer, the KV cache pages touched), the peak above that (what the load itself held for a while: a shard held
whole, its copies, garbage not yet collected), the peak's rise above the PSS before the engine over the bytes of
the weights; and the load time. After a reload, the renderer may still hold the old page's memory (a shared wasm
memory outlives its page by about 2 s on 2 threads), which the reload row shows. `--model` takes a GGUF path too.
`--baseline-dist` runs the same loads with another build of web/dist (e.g. the engine before a change) in the same
run, as the baseline row.
"""
import argparse
import json
import os
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.table import Table

from bench.results import PeakMemory, chromium_pids, cpu_model, pss_bytes, reopen_page
from bench.site import built_web_dist, ensure_bundle
from compile.quantization import DEFAULT_QUANTIZATION
from harness.browser import create_page_engine, open_chat_page, webgpu_chromium_profile
from harness.server import BackgroundServer
from static_server import create_app

SAMPLE_S = 0.02  # a shard's transient copies live for tens of milliseconds


def renderer_pids() -> list[int]:
    """Chromium's renderer processes: a page and its dedicated workers run in one."""
    def is_renderer(pid):
        try:
            return b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return False
    return [pid for pid in chromium_pids() if is_renderer(pid)]


def measure(web_dist: Path, bundles_dir: Path, bundle, threads: int) -> list[dict]:
    """Cold, warm and reloaded loads of `bundle` on the CPU with the engine of `web_dist`."""
    load = """async ([url, threads]) => {
        const start = performance.now();
        await window.engine.load(url, {device: "wasm", threads});
        return (performance.now() - start) / 1000;
    }"""
    rows = []
    with BackgroundServer(create_app(bundles_dir, web_dist)) as server, sync_playwright() as playwright, \
            webgpu_chromium_profile(playwright.chromium) as context:
        page = open_chat_page(context, server.url)  # a fresh profile: empty storage
        for kind in ("cold", "warm", "reload"):
            if kind == "warm":
                page = reopen_page(page, lambda: open_chat_page(context, server.url))
            elif kind == "reload":
                page.reload()  # a new worker: only the stored bundle remains
            time.sleep(1)  # let the page settle before the baseline sample
            pids = renderer_pids()
            before = sum(pss_bytes(pid) for pid in pids)
            with PeakMemory(lambda: pids, SAMPLE_S) as peak:
                create_page_engine(page)  # the engine's worker and code count as the engine's
                seconds = page.evaluate(load, [f"/bundles/{bundle.bundle_id}/", threads])
                time.sleep(1)
            after = sum(pss_bytes(pid) for pid in pids)
            rows.append({"load": kind, "threads": threads, "load_s": seconds, "pss_before_bytes": before,
                         "pss_peak_bytes": peak.peak, "pss_after_bytes": after})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.load_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--bundles", type=Path, default=Path("bundles"))
    parser.add_argument("--quantization", default=DEFAULT_QUANTIZATION, help="e.g. q0f32: float32, 4x the weights")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--baseline-dist", type=Path, help="another web/dist to measure beside this one")
    parser.add_argument("--json", type=Path, default=Path("bench-load-memory.json"))
    args = parser.parse_args()
    bundle = ensure_bundle(args.bundles, args.model, args.quantization)
    weight_bytes = sum(f["bytes"] for f in bundle.manifest["files"] if f["path"].startswith("params_shard_"))
    engines = ([("baseline", args.baseline_dist)] if args.baseline_dist else []) + [("this", built_web_dist())]
    rows = []
    for name, dist in engines:
        for row in measure(dist, args.bundles, bundle, args.threads):
            rows.append({"engine": name, **row, "weight_bytes": weight_bytes,
                         "peak_over_after": row["pss_peak_bytes"] / row["pss_after_bytes"],
                         "rise_over_weights": (row["pss_peak_bytes"] - row["pss_before_bytes"]) / weight_bytes})
    manifest = bundle.manifest
    table = Table(title=f"Load memory, {manifest['model']} {manifest['quantization']} on the CPU ({args.threads} "
                        f"thread{'s' if args.threads > 1 else ''}), "
                        f"{cpu_model()}, {os.cpu_count()} cores: renderer PSS")
    for column in ("engine", "load", "load s", "before MB", "peak MB", "after MB", "peak - after MB",
                   "weights MB", "peak / after", "rise / weights"):
        table.add_column(column, justify="left" if column in ("engine", "load") else "right")
    mb = lambda n: f"{n / 1e6:.0f}"
    for r in rows:
        table.add_row(r["engine"], r["load"], f"{r['load_s']:.2f}", mb(r["pss_before_bytes"]), mb(r["pss_peak_bytes"]),
                      mb(r["pss_after_bytes"]), mb(r["pss_peak_bytes"] - r["pss_after_bytes"]),
                      mb(r["weight_bytes"]), f"{r['peak_over_after']:.2f}x", f"{r['rise_over_weights']:.2f}x")
    Console().print(table)
    args.json.write_text(json.dumps({"machine": cpu_model(), "model": manifest["model"],
                                     "quantization": manifest["quantization"], "rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
