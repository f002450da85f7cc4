"""python -m bench.serve [--bundles DIR] [--runs 1x1,2x2,4x2,4x4] [--requests 3] [--max-tokens 32]
[--json bench-serve.json]

The OpenAI-compatible server (python -m serve) on the default bundle, measured on this machine:
- start: compiling the CPU library (no cache), loading it from the compiled-module cache, and one sandbox's
  instantiation with the weights written into it;
- memory: the process's PSS with the server up, per sandbox (each holds its own weights and KV cache);
- throughput: C concurrent clients against W sandboxes (CxW), each client sending `--requests` chats in turn
  (distinct prompts, so no KV reuse; exactly `--max-tokens` tokens each: the end-of-turn token is forbidden),
  over HTTP with httpx: completion tokens per second over all clients, mean request latency, decode tokens/s
  inside the sandbox, time to first token.
Baseline in the same run: the same library driven directly (SandboxModel, no HTTP, no server), one sequence.
llama.cpp's server (llama-cpp-python) is not compared: PyPI has no binary wheel of it for this platform and its
sdist compiles llama.cpp from source (the project installs from registries without long builds).
"""
import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.results import PeakMemory, cpu_model, pss_bytes
from bench.site import ensure_bundle
from compile.quantization import DEFAULT_QUANTIZATION
from harness.server import BackgroundServer
from serve.app import create_app
from serve.model import SandboxModel, cpu_library_path
from serve.prompt import BundleTokenizer
from serve.sandbox import compiled_module
from serve.workers import SandboxSettings, ServedModel

TOPICS = ["the sea", "a mountain", "the city at night", "a forest", "the desert", "a river", "snow", "the stars",
          "a garden", "the wind", "a storm", "the moon", "an island", "a bridge", "the rain", "a library"]
END_OF_TURN_BIAS = {"2": -100}  # SmolLM2's <|im_end|>: every request generates exactly max_tokens


def prompt(k: int) -> list[dict]:
    return [{"role": "user", "content": f"Write a short poem about {TOPICS[k % len(TOPICS)]} (poem {k})."}]


def measure_start(bundle) -> dict:
    library = cpu_library_path(bundle)
    started = time.perf_counter()
    compiled_module(library, None)
    compile_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as cache:
        compiled_module(library, Path(cache))  # compiles and fills the cache
        started = time.perf_counter()
        _, hit = compiled_module(library, Path(cache))
        cached_s = time.perf_counter() - started
        assert hit
        model = SandboxModel.load(bundle, cache_dir=Path(cache))
    return {"compile_s": compile_s, "load_compiled_from_cache_s": cached_s,
            "instantiate_and_weights_s": model.load_times["instantiate_and_weights_s"],
            "library_memory_bytes_after_load": model.sandbox.memory_bytes()}


def measure_direct(bundle, max_tokens: int) -> dict:
    """The baseline: the library driven directly, greedy, one prompt at a time, as the server's workers do."""
    model = SandboxModel.load(bundle)
    tokenizer = BundleTokenizer(bundle.path)
    prefill_s = decode_s = 0.0
    steps = prompt_tokens = 0
    for k in range(3):
        ids = tokenizer.chat_prompt_ids(prompt(1000 + k))
        model.truncate(0)
        started = time.perf_counter()
        logits = model.prefill(ids)
        prefill_s += time.perf_counter() - started
        prompt_tokens += len(ids)
        started = time.perf_counter()
        for _ in range(max_tokens - 1):
            logits[2] = -np.inf
            logits = model.decode(int(np.argmax(logits)))
            steps += 1
        decode_s += time.perf_counter() - started
    return {"prefill_tokens_per_s": prompt_tokens / prefill_s, "decode_tokens_per_s": steps / decode_s}


def measure_run(bundle, clients: int, workers: int, requests: int, max_tokens: int, cache_dir: Path) -> dict:
    before = pss_bytes(os.getpid())
    model = ServedModel(bundle, workers=workers, max_queue=clients, settings=SandboxSettings(cache_dir=cache_dir))
    loaded = pss_bytes(os.getpid())
    latencies, usages, errors = [], [], []

    def client(index: int, url: str):
        with httpx.Client(base_url=url, timeout=600) as http:
            for r in range(requests):
                started = time.perf_counter()
                response = http.post("/v1/chat/completions", json={
                    "messages": prompt(index * requests + r), "temperature": 0, "max_tokens": max_tokens,
                    "logit_bias": END_OF_TURN_BIAS})
                if response.status_code != 200:
                    errors.append(response.text)
                    continue
                latencies.append(time.perf_counter() - started)
                usages.append(response.json()["usage"])

    with BackgroundServer(create_app(model)) as server, PeakMemory(lambda: [os.getpid()]) as peak:
        threads = [threading.Thread(target=client, args=(i, server.url)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall_s = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    extra = [u["extra"] for u in usages]
    return {
        "clients": clients, "workers": workers, "requests": len(usages),
        "completion_tokens_per_s": sum(u["completion_tokens"] for u in usages) / wall_s,
        "mean_latency_s": statistics.mean(latencies),
        "decode_tokens_per_s_per_request": statistics.mean(e["decode_tokens_per_s"] for e in extra),
        "time_to_first_token_s": statistics.mean(e["time_to_first_token_s"] for e in extra),
        "memory_per_sandbox_bytes": (loaded - before) / workers,
        "process_peak_pss_bytes": peak.peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--bundles", type=Path, default=Path("bundles"),
                        help=f"bundles directory; the default ({DEFAULT_QUANTIZATION}) bundle is compiled into it "
                             "when missing")
    parser.add_argument("--runs", default="1x1,2x2,4x2,4x4", help="CLIENTSxWORKERS, comma-separated")
    parser.add_argument("--requests", type=int, default=3, help="chats per client")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, default=Path("bench-serve.json"))
    args = parser.parse_args()
    bundle = ensure_bundle(args.bundles, args.model, DEFAULT_QUANTIZATION)
    machine = f"{cpu_model()}, {os.cpu_count()} cores"

    start = measure_start(bundle)
    print(f"{bundle.path.name} on {machine}")
    print(f"start: compile {start['compile_s']:.2f} s without the cache, {start['load_compiled_from_cache_s']:.3f} s "
          f"from it; a sandbox with its weights {start['instantiate_and_weights_s']:.2f} s "
          f"(library memory {start['library_memory_bytes_after_load'] >> 20} MiB)")
    direct = measure_direct(bundle, args.max_tokens)
    runs = []
    with tempfile.TemporaryDirectory() as cache:
        for spec in args.runs.split(","):
            clients, workers = (int(x) for x in spec.split("x"))
            runs.append(measure_run(bundle, clients, workers, args.requests, args.max_tokens, Path(cache)))

    print(f"\n{'':>24} {'tok/s (all)':>11} {'latency s':>9} {'decode tok/s':>12} {'TTFT s':>7} "
          f"{'MiB/sandbox':>11} {'peak MiB':>8}")
    print(f"{'library, no server':>24} {'':>11} {'':>9} {direct['decode_tokens_per_s']:>12.1f} {'':>7} {'':>11} {'':>8}")
    for r in runs:
        label = f"{r['clients']} client(s), {r['workers']} sandbox(es)"
        print(f"{label:>24} {r['completion_tokens_per_s']:>11.1f} {r['mean_latency_s']:>9.2f} "
              f"{r['decode_tokens_per_s_per_request']:>12.1f} {r['time_to_first_token_s']:>7.2f} "
              f"{r['memory_per_sandbox_bytes'] / 2**20:>11.0f} {r['process_peak_pss_bytes'] / 2**20:>8.0f}")
    args.json.write_text(json.dumps({"bundle": bundle.path.name, "machine": machine, "max_tokens": args.max_tokens,
                                     "requests_per_client": args.requests, "start": start, "direct": direct,
                                     "runs": runs}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
