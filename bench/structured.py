"""python -m bench.structured [--bundles DIR] [--threads N] [--runs N] [--json PATH]

What grammar-constrained decoding costs: the default bundle's CPU library in Chromium answers the same chat prompts
greedily, free and constrained (response_format json_object and json_schema, and tool_choice "required"), and the
table gives decode tokens/s (the median over prompts and runs) and the constrained/free ratio, and the grammar's
compile time (usage.extra.grammar_init_s): on the first request, which also builds the tokenizer's tables for
XGrammar, and the median of the others (each run's schema differs in its description, so no compile is cached).
"""
import argparse
import json
import os
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.results import cpu_model
from bench.site import ensure_bundle, wasm_engine_page
from compile.quantization import DEFAULT_QUANTIZATION

MAX_TOKENS = 48
PROMPTS = [
    "Describe three books you like.",
    "Plan a day trip to the sea.",
    "List the planets of the solar system with a fact about each.",
]
BOOKS = {"type": "object", "properties": {"books": {"type": "array", "items": {
    "type": "object", "properties": {"title": {"type": "string"}, "author": {"type": "string"},
                                     "year": {"type": "integer"}, "genre": {"enum": ["fiction", "non-fiction"]}},
    "required": ["title", "author", "year", "genre"]}}}, "required": ["books"]}
SEARCH = {"type": "function", "function": {"name": "search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]}}}


def constraint(mode: str, run: int) -> dict:
    """The request fields that constrain the output in `mode`; `run` numbers the requests (each one's schema text
    differs, so no grammar compile is cached)."""
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": "books", "schema": {**BOOKS, "description": f"run {run}"}}}}
    if mode == "tools (required)":
        tool = {**SEARCH, "function": {**SEARCH["function"], "description": f"Search the web (run {run})"}}
        return {"tools": [tool], "tool_choice": "required"}
    return {}


MODES = ("free", "json_object", "json_schema", "tools (required)")


def measure(bundles_dir: Path, bundle, threads: int, runs: int) -> dict[str, list[dict]]:
    create = "(request) => window.engine.chat.completions.create(request)"
    samples = {mode: [] for mode in MODES}
    with wasm_engine_page(bundles_dir, bundle, threads) as page:
        for run in range(runs):
            for prompt in PROMPTS:
                for mode in MODES:  # interleaved, so the machine's load changes hit every mode alike
                    completion = page.evaluate(create, {
                        "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                        "max_tokens": MAX_TOKENS, **constraint(mode, len(samples[mode]))})
                    extra = completion["usage"]["extra"]
                    samples[mode].append({"decode_tokens_per_s": extra["decode_tokens_per_s"],
                                          "completion_tokens": completion["usage"]["completion_tokens"],
                                          "grammar_init_s": extra.get("grammar_init_s")})
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.structured", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--bundles", type=Path, default=Path("bundles"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("bench-structured.json"))
    args = parser.parse_args()

    bundle = ensure_bundle(args.bundles, args.model, DEFAULT_QUANTIZATION)
    samples = measure(args.bundles, bundle, args.threads, args.runs)
    machine = f"{cpu_model()}, {os.cpu_count()} cores"
    free = statistics.median(s["decode_tokens_per_s"] for s in samples["free"])
    table = Table(title=f"{args.model} ({DEFAULT_QUANTIZATION}), tabllm WASM {args.threads} thread(s), greedy, "
                        f"at most {MAX_TOKENS} tokens; {machine}")
    for column in ("output", "decode tok/s", "vs free", "tokens (median)", "grammar ms, first", "grammar ms, others"):
        table.add_column(column, justify="left" if column == "output" else "right")
    rows = {}
    for mode in MODES:
        decode = statistics.median(s["decode_tokens_per_s"] for s in samples[mode])
        compile_s = [s["grammar_init_s"] for s in samples[mode] if s["grammar_init_s"] is not None]
        first = compile_s[0] * 1000 if compile_s else None
        others = statistics.median(compile_s[1:]) * 1000 if len(compile_s) > 1 else None
        rows[mode] = {"decode_tokens_per_s": decode, "ratio": decode / free, "grammar_ms_first": first,
                      "grammar_ms_others": others}
        table.add_row(mode, f"{decode:.1f}", f"{decode / free:.3f}x",
                      str(statistics.median(s["completion_tokens"] for s in samples[mode])),
                      "-" if first is None else f"{first:.0f}", "-" if others is None else f"{others:.1f}")
    Console(width=140).print(table)
    args.json.write_text(json.dumps({"model": args.model, "machine": machine, "threads": args.threads,
                                     "rows": rows, "samples": samples}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
