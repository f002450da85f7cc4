"""python -m bench.sizes [--sizes 0.5b,1b,1.5b,3b] [--dir synthetic] [--prompt-tokens N] [--decode-tokens N]
[--skip LIST] [--json PATH] [--png PATH]

The size sweep: for each size of models/synthetic.py (Qwen2.5-0.5B, Llama-3.2-1B, Qwen2.5-1.5B and Llama-3.2-3B
shapes, random weights), ONE GGUF is written and tabllm's bundle compiled from it with its blocks kept, so that
tabllm's CPU library (relaxed SIMD) and llama.cpp (wllama) run the very same weights, in the same headless
Chromium, at 1 and 2 threads. Per engine and size: load cold (a fresh profile on disk) and warm (a new page,
from the browser's storage), the peak PSS of the renderer processes (the page and its workers: the weights, KV
cache and library; and Chromium's blank pages) over the whole row (cold load, warm load, generation), the
engine's peak: the most that PSS rose during one page's load (and generation) above the page before the engine
was created (the goal's measure: what the engine holds, its worker and code included, not the browser), time to
first token for a chat prompt of 512 tokens (--prompt-tokens), decode tokens/s, and the achieved read rate (the
engine's weight bytes x decode tokens/s: every weight is read once per token, the tied embedding as the output
layer) beside this machine's read bandwidth measured in the same run (a numpy sum over 512 MB, one thread).
WebGPU is skipped: this machine has no GPU, and Chromium's only adapter, SwiftShader, emulates one on the CPU.
Prints a table and the issue's goals as met or not, writes JSON and a PNG of decode tokens/s and peak memory
against the parameter count. The load average is recorded: the machine may be shared, so compare engines only
within one run.
"""
import argparse
import datetime
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib
import numpy as np
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from bench.context import prompt_of_size, save_figure
from bench.load_memory import renderer_pids
from bench.results import cpu_model
from bench.site import bench_browser, ensure_bundle
from bench.wllama import bench_wllama
from compile.quantization import DEFAULT_QUANTIZATION
from models.gguf_file import open_gguf
from models.synthetic import SIZES, synthetic_gguf
from models.tokenizer import chat_prompt_ids

matplotlib.use("Agg")  # no display: write the PNG only
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

THREADS = (1, 2)
LIBRARY = "wasm32-relaxed"  # the CPU library Chromium runs (it has relaxed SIMD); the others are not built
WEBGPU_SKIPPED = ("WebGPU: skipped, this machine has no GPU: Chromium's only adapter is SwiftShader, which "
                  "emulates a GPU on the CPU")
# Issue 18's goals
DECODE_OVER_WLLAMA, WARM_LOAD_SIZE, WARM_LOAD_S, PEAK_OVER_WEIGHTS = 2.0, "1b", 2.0, 1.3


def read_bandwidth(array_bytes: int = 2**29, repeats: int = 5) -> float:
    """Bytes/s of one thread summing a float32 array far larger than the caches: the best of `repeats`."""
    array = np.ones(array_bytes // 4, np.float32)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        array.sum()
        best = min(best, time.perf_counter() - start)
    return array_bytes / best


def gguf_tensor_bytes(gguf: Path) -> int:
    return sum(int(t.n_bytes) for t in open_gguf(gguf).tensors)


def size_rows(size: str, directory: Path, prompt_tokens: int, decode_tokens: int, skip: set[str]) -> list[dict]:
    """Every engine's row at `size`: the Result (or the error that stopped it: a model too large for an engine
    is a finding, not the end of the sweep), and the bytes of weights it reads per token."""
    gguf = synthetic_gguf(size, directory)
    bundle = ensure_bundle(directory / "bundles", str(gguf), DEFAULT_QUANTIZATION, libraries=(LIBRARY,))
    tokenizer = Tokenizer.from_file(str(bundle.path / "tokenizer.json"))
    tokenizer_config = json.loads((bundle.path / "tokenizer_config.json").read_text(encoding="utf-8"))
    conversation = prompt_of_size(tokenizer, tokenizer_config, prompt_tokens)
    prompt_ids = chat_prompt_ids(tokenizer, tokenizer_config, conversation)
    shard_bytes = sum(f["bytes"] for f in bundle.manifest["files"] if f["path"].startswith("params_shard_"))
    runs = {f"tabllm-{t}": lambda t=t: (bench_browser(directory / "bundles", bundle, [conversation], decode_tokens,
                                                      "wasm", t, memory_pids=renderer_pids), shard_bytes)
            for t in THREADS}
    runs |= {f"wllama-{t}": lambda t=t: (bench_wllama(gguf, tokenizer, [prompt_ids], decode_tokens, t,
                                                      memory_pids=renderer_pids), gguf_tensor_bytes(gguf))
             for t in THREADS}
    rows = []
    for name, run in runs.items():
        if f"{size}:{name}" in skip:
            print(f"{size} {name}: skipped (--skip)")
            continue
        start = time.perf_counter()
        row = {"size": size, "model_shape": SIZES[size].name, "parameters": SIZES[size].parameters,
               "engine": name.split("-")[0], "threads": int(name.split("-")[1]), "prompt_tokens": len(prompt_ids)}
        try:
            result, weight_bytes = run()
            rows.append(row | {"weights_read_bytes": weight_bytes, "result": asdict(result)})
        except Exception as error:  # noqa: BLE001 (recorded with the row, and printed)
            rows.append(row | {"error": f"{type(error).__name__}: {str(error)[:300]}"})
        print(f"{size} {name}: {time.perf_counter() - start:.0f} s, load avg {os.getloadavg()[0]:.2f}"
              f"{', ' + rows[-1]['error'] if 'error' in rows[-1] else ''}", flush=True)
    return rows


def goals(rows: list[dict]) -> list[str]:
    """Issue 18's goals, each met or not, with the figures."""
    find = lambda size, engine, threads: next((r["result"] for r in rows if (r["size"], r["engine"], r["threads"])
                                               == (size, engine, threads) and "result" in r), None)
    lines = []
    for size in dict.fromkeys(r["size"] for r in rows):
        for threads in THREADS:
            mine, theirs = find(size, "tabllm", threads), find(size, "wllama", threads)
            if mine and theirs:
                ratio = mine["decode_tokens_per_s"] / theirs["decode_tokens_per_s"]
                lines.append(f"{size}, {threads} thread(s): tabllm decode {ratio:.2f}x wllama (goal >= "
                             f"{DECODE_OVER_WLLAMA}x): {'met' if ratio >= DECODE_OVER_WLLAMA else 'NOT met'}")
        for r in rows:
            if r["size"] == size and r["engine"] == "tabllm" and "result" in r:
                ratio = r["result"]["peak_rise_bytes"] / r["weights_read_bytes"]
                lines.append(f"{size}, tabllm {r['threads']} thread(s): engine peak {ratio:.2f}x the weights "
                             f"(goal <= {PEAK_OVER_WEIGHTS}x): {'met' if ratio <= PEAK_OVER_WEIGHTS else 'NOT met'}")
    for r in rows:
        if r["size"] == WARM_LOAD_SIZE and r["engine"] == "tabllm" and "result" in r:
            seconds = r["result"]["load_warm_s"]
            lines.append(f"{WARM_LOAD_SIZE}, tabllm {r['threads']} thread(s): warm load {seconds:.2f} s (goal <= "
                         f"{WARM_LOAD_S} s): {'met' if seconds <= WARM_LOAD_S else 'NOT met'}")
    return lines


def plot(rows: list[dict], path: Path, title: str) -> None:
    rows = [r for r in rows if "result" in r]
    figure, (decode, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine, threads in dict.fromkeys((r["engine"], r["threads"]) for r in rows):
        mine = [r for r in rows if (r["engine"], r["threads"]) == (engine, threads)]
        params = [r["parameters"] / 1e9 for r in mine]
        label = f"{engine}, {threads} thread{'s' if threads > 1 else ''}"
        decode.plot(params, [r["result"]["decode_tokens_per_s"] for r in mine], marker="o", label=label)
        memory.plot(params, [r["result"]["peak_rise_bytes"] / 1e9 for r in mine], marker="o", label=label)
    for engine in dict.fromkeys(r["engine"] for r in rows):
        weights = {r["parameters"] / 1e9: r["weights_read_bytes"] / 1e9 for r in rows if r["engine"] == engine}
        memory.plot(list(weights), list(weights.values()), linestyle=":", color="grey" if engine == "tabllm" else "k",
                    label=f"{engine} weights")
    decode.set(xlabel="parameters (billions)", ylabel="decode tokens/s", title="Decode", ylim=(0, None))
    memory.set(xlabel="parameters (billions)", ylabel="rise of renderer PSS over a blank page (GB)",
               title="Engine peak memory", ylim=(0, None))
    save_figure(figure, (decode, memory), title, path)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sizes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, of %(default)s")
    parser.add_argument("--dir", type=Path, default=Path("synthetic"),
                        help="where the GGUFs and bundles are (written when missing; default %(default)s)")
    parser.add_argument("--prompt-tokens", type=int, default=512, help="the chat prompt's tokens (default %(default)s)")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--skip", default="", help="comma-separated SIZE:ENGINE-THREADS runs to leave out, e.g. "
                                                   "3b:wllama-1 (where a sweep must fit a time budget)")
    parser.add_argument("--json", type=Path, default=Path("bench-sizes.json"))
    parser.add_argument("--png", type=Path, default=Path("bench-sizes.png"))
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    unknown = [size for size in sizes if size not in SIZES]
    if unknown:
        parser.error(f"unknown sizes {unknown} (known: {', '.join(SIZES)})")

    print(WEBGPU_SKIPPED)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    bandwidth = read_bandwidth()
    skip = set(args.skip.split(","))
    rows = [row for size in sizes for row in size_rows(size, args.dir, args.prompt_tokens, args.decode_tokens, skip)]
    rows.sort(key=lambda row: row["parameters"])  # whichever order the sizes ran in (largest first fails early)
    load_after = os.getloadavg()

    machine = (f"{cpu_model()}, {os.cpu_count()} cores, {started:%Y-%m-%d}, load average "
               f"{load_before[1]:.2f} before, {load_after[1]:.2f} after (5 min)")
    title = (f"Random-weight models of real shapes, one GGUF each (Q4_1, Q8_0 embedding) run by both engines; "
             f"{args.prompt_tokens}-token prompt, {args.decode_tokens} tokens decoded\n{machine}; one-thread read "
             f"bandwidth {bandwidth / 1e9:.1f} GB/s")
    met = goals(rows)
    args.json.write_text(json.dumps({
        "machine": machine, "started_utc": started.isoformat(), "load_average_before": load_before,
        "load_average_after": load_after, "read_bandwidth_bytes_per_s": bandwidth, "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode_tokens, "skipped": [s for s in args.skip.split(",") if s],
        "webgpu": WEBGPU_SKIPPED, "rows": rows, "goals": met}, indent=1))
    table = Table(title=title)
    for column in ("size", "engine", "threads", "params B", "weights MB", "load cold s", "load warm s", "peak MB",
                   "engine peak MB", "/ weights", "TTFT s", "decode tok/s", "GB/s", "of bandwidth"):
        table.add_column(column, justify="left" if column in ("size", "engine") else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["size"], r["engine"], str(r["threads"]), f"{r['parameters'] / 1e9:.2f}",
                          *["-"] * 10)
            continue
        result = r["result"]
        read_rate = r["weights_read_bytes"] * result["decode_tokens_per_s"]
        table.add_row(r["size"], r["engine"], str(r["threads"]), f"{r['parameters'] / 1e9:.2f}",
                      f"{r['weights_read_bytes'] / 1e6:.0f}", f"{result['load_cold_s']:.1f}",
                      f"{result['load_warm_s']:.1f}", f"{result['peak_memory_bytes'] / 1e6:.0f}",
                      f"{result['peak_rise_bytes'] / 1e6:.0f}",
                      f"{result['peak_rise_bytes'] / r['weights_read_bytes']:.2f}x",
                      f"{result['time_to_first_token_s']:.1f}", f"{result['decode_tokens_per_s']:.2f}",
                      f"{read_rate / 1e9:.2f}", f"{read_rate / bandwidth:.0%}")
    console = Console(width=170)
    console.print(table)
    console.print("\n".join(["Issue 18's goals:", *met, *(f"{r['size']} {r['engine']} {r['threads']} thread(s) failed: "
                                                           f"{r['error']}" for r in rows if "error" in r)]))
    plot(rows, args.png, title)
    print(f"wrote {args.json} and {args.png}")


if __name__ == "__main__":
    main()
