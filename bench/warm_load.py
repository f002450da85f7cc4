"""python -m bench.warm_load [--size 1b] [--dir synthetic] [--threads 1] [--repeats 3] [--baseline-dist DIR]
[--json PATH]

A warm load stage by stage: the bundle of one size of models/synthetic.py (random weights, Llama-3.2-1B's shape
by default; compiled into --dir when missing, as bench.sizes does) loaded on the CPU library in headless Chromium
from the real server, once cold (a fresh profile on disk, as a user's) and then --repeats times warm (a page
reload each: a new worker, every file from the browser's storage). Each warm load is timed from the page's
engine.load() call, and cut into stages by the engine's progress events (each file's first event comes once its
first piece is read):

  worker       until the worker reports the manifest: the message, and the rest of the worker's start
  configs      the manifest, the configs and tokenizer.json's first piece
  tokenizer    until tensor-cache.json's first piece: the tokenizer built
  library      until the first shard's first piece: the tensor cache, the model library read, compiled, started
  weights      the rest of the shards, read into the library's memory (its read rate beside it)
  finish       until the engine is ready

`--baseline-dist` measures another build of web/dist (e.g. the engine before a change) the same way in the same
run, as the baseline rows. Prints a table and writes JSON, with the load average before and after each engine's
loads: the machine may be shared, so compare rows of one run only.
"""
import argparse
import datetime
import json
import os
import statistics
from pathlib import Path

from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.table import Table

from bench.results import cpu_model
from bench.site import built_web_dist, ensure_bundle
from compile.quantization import DEFAULT_QUANTIZATION
from harness.browser import create_page_engine, open_engine_page, webgpu_chromium_profile
from harness.server import BackgroundServer
from models.synthetic import SIZES, synthetic_gguf
from static_server import create_app

LIBRARY = "wasm32-relaxed"  # the CPU library Chromium runs
STAGES = ("worker", "configs", "tokenizer", "library", "weights", "finish")
# Each load's progress events, timed from the engine.load() call (a new event for each file and stage).
LOAD = """async ([url, threads]) => {
    const events = [];
    const start = performance.now();
    let last = null;
    await window.engine.load(url, {device: "wasm", threads, onProgress: (p) => {
        const at = (performance.now() - start) / 1000;
        if (p.text !== last) events.push({at, stage: p.stage, text: p.text, loadedBytes: p.loadedBytes});
        else events[events.length - 1].end = {at, loadedBytes: p.loadedBytes};
        last = p.text;
    }});
    return {seconds: (performance.now() - start) / 1000, events};
}"""


def stages(load: dict) -> dict:
    """Seconds per stage of one load (see the module's doc), and the weights' read rate."""
    events = load["events"]
    first = lambda test: next(e for e in events if test(e["text"]))
    shards = [e for e in events if "params_shard_" in e["text"]]
    last_shard = shards[-1].get("end", shards[-1])
    marks = [0.0, events[0]["at"], first(lambda t: t.endswith(" tokenizer.json"))["at"],
             first(lambda t: t.endswith(" tensor-cache.json"))["at"], shards[0]["at"], last_shard["at"],
             load["seconds"]]
    seconds = {stage: marks[i + 1] - marks[i] for i, stage in enumerate(STAGES)}
    weight_bytes = last_shard["loadedBytes"] - shards[0]["loadedBytes"]
    return seconds | {"total": load["seconds"], "weights_bytes_per_s": weight_bytes / seconds["weights"]}


def measure(web_dist: Path, bundles_dir: Path, bundle_id: str, threads: int, repeats: int) -> dict:
    """One cold load, then `repeats` warm ones (a page reload each), with the engine of `web_dist`."""
    url = f"/bundles/{bundle_id}/"
    load_before = os.getloadavg()
    with BackgroundServer(create_app(bundles_dir, web_dist)) as server, sync_playwright() as playwright, \
            webgpu_chromium_profile(playwright.chromium) as context:
        page = open_engine_page(context, server.url)
        cold = page.evaluate(LOAD, [url, threads])
        warm = []
        for _ in range(repeats):
            page.reload()
            create_page_engine(page)  # and load at once, as bench.sizes does: the worker's start counts
            warm.append(page.evaluate(LOAD, [url, threads]))
    return {"cold_s": cold["seconds"], "warm": [stages(load) for load in warm],
            "load_average_before": load_before, "load_average_after": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.warm_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1b", choices=list(SIZES))
    parser.add_argument("--dir", type=Path, default=Path("synthetic"),
                        help="where the GGUFs and bundles are (written when missing; default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="warm loads per engine (default %(default)s)")
    parser.add_argument("--baseline-dist", type=Path, help="another web/dist to measure beside this one")
    parser.add_argument("--json", type=Path, default=Path("bench-warm-load.json"))
    args = parser.parse_args()
    gguf = synthetic_gguf(args.size, args.dir)
    bundle = ensure_bundle(args.dir / "bundles", str(gguf), DEFAULT_QUANTIZATION, libraries=(LIBRARY,))
    started = datetime.datetime.now(datetime.timezone.utc)
    engines = ([("baseline", args.baseline_dist)] if args.baseline_dist else []) + [("this", built_web_dist())]
    rows = [{"engine": name, **measure(dist, args.dir / "bundles", bundle.bundle_id, args.threads, args.repeats)}
            for name, dist in engines]

    machine = f"{cpu_model()}, {os.cpu_count()} cores, {started:%Y-%m-%d}"
    table = Table(title=f"Warm load of {bundle.manifest['model']} ({SIZES[args.size].name} shape, "
                        f"{bundle.manifest['quantization']}) on the CPU library, {args.threads} thread(s): median of "
                        f"{args.repeats} (min-max), seconds\n{machine}")
    for column in ("engine", "load avg", "cold", *STAGES, "weights MB/s", "total"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    for row in rows:
        spread = lambda key, digits=2: (f"{statistics.median(w[key] for w in row['warm']):.{digits}f} "
                                        f"({min(w[key] for w in row['warm']):.{digits}f}-"
                                        f"{max(w[key] for w in row['warm']):.{digits}f})")
        rate = statistics.median(w["weights_bytes_per_s"] for w in row["warm"]) / 1e6
        table.add_row(row["engine"], f"{row['load_average_before'][0]:.1f}-{row['load_average_after'][0]:.1f}",
                      f"{row['cold_s']:.1f}", *[spread(stage) for stage in STAGES], f"{rate:.0f}", spread("total"))
    Console(width=200).print(table)
    args.json.write_text(json.dumps({"machine": machine, "started_utc": started.isoformat(), "size": args.size,
                                     "bundle_id": bundle.bundle_id, "threads": args.threads, "rows": rows}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
