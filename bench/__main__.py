"""python -m bench [--model NAME] [--bundles DIR] [--decode-tokens N] [--json PATH]

One run, two tables: the compiled model in the browser (the real server, headless Chromium, the default bundle
and a q4f32_1 one, the engine on WebGPU and on the CPU through WebAssembly at 1 and 2 threads), llama.cpp
compiled to WebAssembly in the same Chromium on the model's GGUF file (npm @wllama/wllama, 1 and 2 threads:
bench/wllama.py), the native CPU build of the same Relax module for each quantization and the numpy reference as the baseline. Every engine
answers the same fixed chat prompts with greedy decoding; each figure is the median over the prompts: time to
first token, prefill and decode tokens/s. Also: load time (browser: cold in a fresh profile, then warm in a
new page; native: read the weights, build, quantize), peak memory (browser: PSS of all Chromium processes;
native: RSS of this Python process), and the bytes of weights. Prints a table with the browser/native, the
default/q4f32_1 ratios, the browser WASM/wllama ratios at equal threads and each engine's scaling from 1 to 2
threads, then the fidelity table (bench/fidelity.py: every path against
the float32 reference of the source weights), and writes JSON with both.
"""
import argparse
import json
import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from bench.fidelity import (Fidelity, agreeing_ids, agreeing_text, reference_text_logits, teacher_forced,
                            text_ids)
from bench.results import PeakMemory, Result, cpu_model
from bench.site import bench_browser, ensure_bundle
from bench.wllama import bench_wllama
from compile.native import NativeModel, build_native_model
from compile.pipeline import load_source
from compile.quantization import DEFAULT_QUANTIZATION, QUANTIZATIONS, get_quantization
from models.fetch import resolve_gguf
from models.reference import NumpyLlama
from models.tokenizer import chat_prompt_ids

# The lossless default and MLC's q4f32_1 (the default before it), to compare their speed on both libraries.
BROWSER_QUANTIZATIONS = (DEFAULT_QUANTIZATION, "q4f32_1")
# The engine on the GPU (SwiftShader here), and on the CPU at each thread count (None: no threads to choose).
BROWSER_RUNS = (("webgpu", None), ("wasm", 1), ("wasm", 2))
RATIO_KEYS = ("time_to_first_token_s", "prefill_tokens_per_s", "decode_tokens_per_s", "peak_memory_bytes")
WLLAMA_THREADS = (1, 2)
WLLAMA_RATIO_KEYS = ("prefill_tokens_per_s", "decode_tokens_per_s")
# Distinct system prompts: consecutive requests share only "<|im_start|>system\n" in the browser's KV cache.
PROMPTS = [
    [{"role": "system", "content": "Answer as a geography teacher."},
     {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Write like a poet."}, {"role": "user", "content": "Describe the sea at night."}],
    [{"role": "system", "content": "Explain things simply."}, {"role": "user", "content": "How do plants make food?"}],
]


def measure_prompts(prefill, decode, prompts: list[list[int]], decode_tokens: int) -> dict:
    """Per prompt on a fresh cache: prefill (= time to the last position's logits, which `prefill` returns),
    then `decode_tokens` greedy steps. Medians over the prompts: time to first token, prefill tokens/s, decode
    tokens/s; and the greedy ids."""
    ttft, prefill_rates, decode_rates, greedy_ids = [], [], [], []
    for ids in prompts:
        start = time.perf_counter()
        tokens = [int(np.argmax(prefill(ids)))]
        middle = time.perf_counter()
        for _ in range(decode_tokens):
            tokens.append(int(np.argmax(decode(tokens[-1]))))
        ttft.append(middle - start)
        prefill_rates.append(len(ids) / (middle - start))
        decode_rates.append(decode_tokens / (time.perf_counter() - middle))
        greedy_ids.append(tokens)
    return {"time_to_first_token_s": statistics.median(ttft), "prefill_tokens_per_s": statistics.median(prefill_rates),
            "decode_tokens_per_s": statistics.median(decode_rates), "greedy_ids": greedy_ids}


def own_pid() -> list[int]:
    return [os.getpid()]


def bench_native(gguf: Path, quantization: str, prompts, decode_tokens) -> tuple[Result, NativeModel]:
    """The native build's row, and the model for the fidelity measurements."""
    with PeakMemory(own_pid) as memory:
        start = time.perf_counter()
        config, weights = load_source(gguf, get_quantization(quantization))
        model = build_native_model(config, weights, quantization)
        load_s = time.perf_counter() - start

        def prefill(ids):
            model.reset()
            return model.prefill(ids)

        figures = measure_prompts(prefill, model.decode_one_token, prompts, decode_tokens)
    return Result("TVM native CPU", quantization, load_s, None, **figures, peak_memory_bytes=memory.peak,
                  weight_bytes=model.metadata["memory_usage"]["params_bytes"]), model


def bench_reference(config, weights, prompts, decode_tokens) -> Result:
    with PeakMemory(own_pid) as memory:
        model = NumpyLlama(config, weights)

        def prefill(ids):
            model.reset()
            return model.prefill(ids)[-1]

        figures = measure_prompts(prefill, model.decode, prompts, decode_tokens)
    return Result("numpy (baseline)", "f32", None, None, **figures, peak_memory_bytes=memory.peak,
                  weight_bytes=sum(w.nbytes for w in weights.values()))


def until_end_of_turn(ids: list[int], eos_id: int) -> list[int]:
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


def fidelity_rows(results: list[Result], natives: dict[str, NativeModel], reference: NumpyLlama,
                  tokenizer: Tokenizer, eos_id: int) -> list[Fidelity]:
    """Every engine's greedy answers against the reference's; the quantized native builds also teacher-forced
    over the fidelity text (q0f32 is left out there: without a tuned CPU schedule it decodes at about 2 tokens/s,
    and its greedy answers already show it is the reference)."""
    baseline = next(r for r in results if r.engine == "numpy (baseline)")
    answers = [until_end_of_turn(ids, eos_id) for ids in baseline.greedy_ids]
    ids = text_ids(tokenizer)
    expected = reference_text_logits(reference, ids)
    rows = []
    for r in results:
        if r is baseline:
            continue
        if r.answers is not None:
            agreement = [agreeing_text(tokenizer, want, got) for want, got in zip(answers, r.answers)]
        else:
            agreement = [agreeing_ids(want, until_end_of_turn(got, eos_id)) for want, got in zip(answers, r.greedy_ids)]
        forced = (teacher_forced(natives[r.quantization], ids, expected)
                  if r.engine == "TVM native CPU" and r.quantization != "q0f32" else {})
        rows.append(Fidelity(r.engine, r.quantization, agreement, [len(a) for a in answers], **forced))
    return rows


def fidelity_table(rows: list[Fidelity], model: str) -> Table:
    tokens = next((r.text_tokens for r in rows if r.text_tokens), 0)
    table = Table(title=f"{model}: fidelity against the float32 reference of the GGUF's weights\n"
                        f"teacher-forced over {tokens} tokens of text; greedy: the reference's answer tokens "
                        f"reproduced before the first difference")
    for column in ("engine", "quant", "top-1 agree", "KL mean", "KL p99", "max |Δlogit|", "greedy per prompt"):
        table.add_column(column, justify="left" if column in ("engine", "quant") else "right")
    fmt = lambda value, spec: "-" if value is None else format(value, spec)
    for r in rows:
        greedy = ", ".join(f"{got}/{total}" for got, total in zip(r.greedy_agreement, r.greedy_tokens))
        top1 = "-" if r.top1_agreement is None else f"{100 * r.top1_agreement:.1f}%"
        table.add_row(r.engine, r.quantization, top1, fmt(r.kl_mean, ".2e"), fmt(r.kl_p99, ".2e"),
                      fmt(r.max_abs_logit_diff, ".3f"), greedy)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--bundles", type=Path, default=Path("bundles"),
                        help=f"bundles directory; its {' and '.join(BROWSER_QUANTIZATIONS)} bundles are compiled "
                             "into it when missing")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args()

    bundles = {q: ensure_bundle(args.bundles, args.model, q) for q in BROWSER_QUANTIZATIONS}
    bundle_dir = bundles[DEFAULT_QUANTIZATION].path
    tokenizer = Tokenizer.from_file(str(bundle_dir / "tokenizer.json"))
    tokenizer_config = json.loads((bundle_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    prompts = [chat_prompt_ids(tokenizer, tokenizer_config, messages) for messages in PROMPTS]

    results = [bench_browser(args.bundles, bundle, PROMPTS, args.decode_tokens, device, threads)
               for bundle in bundles.values() for device, threads in BROWSER_RUNS]
    browsers = list(results)
    gguf = resolve_gguf(args.model)
    wllama_rows = [bench_wllama(gguf, tokenizer, prompts, args.decode_tokens, threads) for threads in WLLAMA_THREADS]
    results += wllama_rows
    natives = {}
    for quantization in QUANTIZATIONS:
        row, natives[quantization] = bench_native(gguf, quantization, prompts, args.decode_tokens)
        results.append(row)
    config, weights = load_source(gguf, get_quantization("q0f32"))
    results.append(bench_reference(config, weights, prompts, args.decode_tokens))
    fidelity = fidelity_rows(results, natives, NumpyLlama(config, weights), tokenizer,
                             tokenizer_config["eos_token_id"])
    native = {r.quantization: r for r in results if r.engine == "TVM native CPU"}
    ratios = {f"{b.engine} / native ({b.quantization})": {
        key: getattr(b, key) / getattr(native[b.quantization], key) for key in RATIO_KEYS} for b in browsers}
    default, other = BROWSER_QUANTIZATIONS
    by_kind = {(b.engine, b.quantization): b for b in browsers}
    # The lossless default's speed against q4f32_1's, per library (tokens/s ratios: above 1 is faster).
    ratios |= {f"{engine}: {default} / {other}": {
        key: getattr(by_kind[engine, default], key) / getattr(by_kind[engine, other], key) for key in RATIO_KEYS}
        for engine in dict.fromkeys(b.engine for b in browsers)}
    # At equal threads: our CPU library against llama.cpp's; and each engine's 2-thread speed over its 1-thread.
    wasm = {threads: next(b for b in browsers if b.quantization == default and b.engine.startswith("browser WASM CPU (")
                          and b.engine.endswith(f", {threads} thread{'s' if threads > 1 else ''})"))
            for threads in WLLAMA_THREADS}  # whichever CPU library (SIMD or relaxed SIMD) the browser ran
    wllama = dict(zip(WLLAMA_THREADS, wllama_rows))
    wasm_ratios = {f"{wasm[t].engine} / {wllama[t].engine}": {
        key: getattr(wasm[t], key) / getattr(wllama[t], key) for key in WLLAMA_RATIO_KEYS} for t in WLLAMA_THREADS}
    scaling = {engine: {key: getattr(rows[2], key) / getattr(rows[1], key) for key in WLLAMA_RATIO_KEYS}
               for engine, rows in (("browser WASM CPU", wasm), ("wllama", wllama))}

    machine = f"{cpu_model()}, {os.cpu_count()} cores, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '-')}"
    table = Table(title=f"{args.model}: {len(PROMPTS)} chat prompts ({', '.join(str(len(p)) for p in prompts)} tokens), "
                        f"{args.decode_tokens} greedy tokens each, medians\n{machine}")
    for column in ("engine", "quant", "load cold s", "load warm s", "TTFT s", "prefill tok/s", "decode tok/s",
                   "peak mem MB", "weights MB"):
        table.add_column(column, justify="left" if column in ("engine", "quant") else "right")
    fmt = lambda value, spec: "-" if value is None else format(value, spec)
    for r in results:
        table.add_row(r.engine, r.quantization, fmt(r.load_cold_s, ".1f"), fmt(r.load_warm_s, ".1f"),
                      fmt(r.time_to_first_token_s, ".2f"), fmt(r.prefill_tokens_per_s, ".1f"),
                      fmt(r.decode_tokens_per_s, ".1f"), fmt(r.peak_memory_bytes / 1e6, ".0f"),
                      fmt(r.weight_bytes / 1e6, ".0f"))
    for name, ratio in ratios.items():
        table.add_row(name, "", "", "", f"{ratio['time_to_first_token_s']:.2f}x",
                      f"{ratio['prefill_tokens_per_s']:.3f}x", f"{ratio['decode_tokens_per_s']:.3f}x",
                      f"{ratio['peak_memory_bytes']:.1f}x", "")
    for name, ratio in wasm_ratios.items():
        table.add_row(f"{name} ({default})", "", "", "", "", f"{ratio['prefill_tokens_per_s']:.3f}x",
                      f"{ratio['decode_tokens_per_s']:.3f}x", "", "")
    for engine, ratio in scaling.items():
        table.add_row(f"{engine}: 2 threads / 1 thread", "", "", "", "", f"{ratio['prefill_tokens_per_s']:.3f}x",
                      f"{ratio['decode_tokens_per_s']:.3f}x", "", "")
    console = Console(width=140)
    console.print(table)
    console.print(fidelity_table(fidelity, args.model))
    args.json.write_text(json.dumps({
        "model": args.model, "machine": machine, "prompts": PROMPTS, "prompt_tokens": [len(p) for p in prompts],
        "decode_tokens": args.decode_tokens, "results": [asdict(r) for r in results],
        "ratios": ratios, "browser_wasm_over_wllama": wasm_ratios, "thread_scaling": scaling,
        "fidelity": [asdict(f) for f in fidelity]}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
