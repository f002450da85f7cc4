"""python -m bench [--model NAME] [--prompt-tokens N] [--decode-tokens N] [--json PATH]

Measures the native CPU build of the compiled model (the same Relax module the browser gets, built for this
machine's CPU) for each quantization, side by side with the numpy reference as the baseline, in one run:
build time, prefill and decode tokens/s (median of runs) and the weight bytes each decoded token reads.
Prints a table and writes JSON.
"""
import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from compile.build import build, export_model, native_cpu_target
from compile.llama import CompileOptions, llama_params
from compile.native import NativeModel
from compile.quantization import QUANTIZATIONS, get_quantization
from models.convert import load_fp32_model
from models.fetch import resolve_gguf
from models.reference import NumpyLlama

RUNS = 3


@dataclass
class Result:
    engine: str
    quantization: str
    build_s: float | None
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    weight_bytes: int

    @property
    def decode_gb_per_s(self) -> float:
        """Every decoded token reads all weights once: the bandwidth that speed implies."""
        return self.weight_bytes * self.decode_tokens_per_s / 1e9


def measure(prefill, decode, prompt: list[int], decode_tokens: int) -> tuple[float, float]:
    """Prefill the prompt on a fresh cache, then decode `decode_tokens` greedy tokens; median of `RUNS`."""
    prefill_times, decode_times = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        prefill(prompt)
        middle = time.perf_counter()
        token = 0
        for _ in range(decode_tokens):
            token = int(np.argmax(decode(token)))
        prefill_times.append(middle - start)
        decode_times.append(time.perf_counter() - middle)
    return len(prompt) / statistics.median(prefill_times), decode_tokens / statistics.median(decode_times)


def bench_native(config, weights, quantization: str, prompt, decode_tokens) -> Result:
    quant = get_quantization(quantization)
    start = time.perf_counter()
    exported = export_model(config, CompileOptions(), quant, native_cpu_target())
    executable = build(exported)
    build_s = time.perf_counter() - start
    model = NativeModel(executable, dict(quant.quantize_params(llama_params(config, weights), exported.model)))

    def prefill(ids):
        model.reset()
        return model.prefill(ids)

    rates = measure(prefill, model.decode_one_token, prompt, decode_tokens)
    return Result("TVM native CPU", quantization, build_s, *rates, exported.metadata["memory_usage"]["params_bytes"])


def bench_reference(config, weights, prompt, decode_tokens) -> Result:
    model = NumpyLlama(config, weights)

    def prefill(ids):
        model.reset()
        return model.prefill(ids)

    rates = measure(prefill, model.decode, prompt, decode_tokens)
    return Result("numpy (baseline)", "f32", None, *rates, sum(w.nbytes for w in weights.values()))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompt-tokens", type=int, default=42)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args()

    config, weights = load_fp32_model(resolve_gguf(args.model))
    prompt = list(np.random.default_rng(0).integers(3, config.vocab_size, args.prompt_tokens))
    results = [bench_native(config, weights, q, prompt, args.decode_tokens) for q in QUANTIZATIONS]
    results.append(bench_reference(config, weights, prompt, args.decode_tokens))

    table = Table(title=f"{args.model}: {args.prompt_tokens}-token prompt, {args.decode_tokens} greedy tokens, "
                        f"median of {RUNS} ({platform.processor() or platform.machine()}, 1 BLAS thread)")
    for column in ("engine", "quant", "build s", "prefill tok/s", "decode tok/s", "weights MB", "decode GB/s"):
        table.add_column(column, justify="left" if column in ("engine", "quant") else "right")
    for r in results:
        table.add_row(r.engine, r.quantization, "-" if r.build_s is None else f"{r.build_s:.1f}",
                      f"{r.prefill_tokens_per_s:.1f}", f"{r.decode_tokens_per_s:.1f}",
                      f"{r.weight_bytes / 1e6:.0f}", f"{r.decode_gb_per_s:.2f}")
    Console(width=120).print(table)
    args.json.write_text(json.dumps({"model": args.model, "prompt_tokens": args.prompt_tokens,
                                     "decode_tokens": args.decode_tokens, "runs": RUNS,
                                     "results": [asdict(r) | {"decode_gb_per_s": r.decode_gb_per_s}
                                                 for r in results]}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
