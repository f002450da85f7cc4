"""python -m bench.context [--bundles DIR] [--sizes 64,512,1024,2048] [--png PATH] [--json PATH]

How speed holds up as the context grows: a chat prompt of about each size (a user message cut from
bench/fidelity_text.txt, repeated as needed) on the default bundle's CPU library in Chromium at 1 and 2 threads,
and on wllama (llama.cpp wasm, the same GGUF) at 1 and 2 threads, in one run. Per size: time to first token and
decode tokens/s over 32 tokens, greedy; for tabllm also decode with the model's default sampling (temperature and
top_p from its chat config, seeded), and a follow-up turn after that prompt and its answer (the history stays in
the KV cache: only the new turn is prefilled, and decode attends over the whole history). Prints a table, writes
JSON and a PNG of TTFT and decode against context length.
"""
import argparse
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.table import Table
from tokenizers import Tokenizer

from bench.results import cpu_model
from bench.site import ensure_bundle, wasm_engine_page
from bench.wllama import create_wllama_app, load_wllama, open_wllama_page, prompt_text, wllama_generate
from compile.quantization import DEFAULT_QUANTIZATION
from harness.browser import launch_webgpu_chromium
from harness.server import BackgroundServer
from models.fetch import resolve_gguf
from models.tokenizer import chat_prompt_ids

matplotlib.use("Agg")  # no display: write the PNG only
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

TEXT = Path(__file__).parent / "fidelity_text.txt"
THREADS = (1, 2)
DECODE_TOKENS = 32
FOLLOW_UP = "Thank you. Which detail of this text matters most, and why?"
SEED = 7
MAX_SHARED_TOKENS = 8  # what one size's prompt may find cached from another's: the system turn's opening tokens


@dataclass
class Point:
    engine: str
    prompt_tokens: int
    time_to_first_token_s: float
    decode_tokens_per_s: float
    sampled_decode_tokens_per_s: float | None = None  # the model's default sampling (tabllm)
    follow_up_time_to_first_token_s: float | None = None  # the next turn, over the cached history (tabllm)
    follow_up_context_tokens: int | None = None
    follow_up_decode_tokens_per_s: float | None = None


def prompt_of_size(tokenizer: Tokenizer, tokenizer_config: dict, size: int) -> list[dict]:
    """Chat messages whose prompt has `size` tokens or just over: a summary request of enough words of the text."""
    words = TEXT.read_text(encoding="utf-8").split()
    words = words * (1 + 4 * size // len(words))
    low, high = 1, len(words)
    messages = lambda n: [{"role": "system", "content": f"Session {size}: you summarize texts."},
                          {"role": "user", "content": "Summarize this text: " + " ".join(words[:n])}]
    while low < high:  # the fewest words that reach `size` tokens
        middle = (low + high) // 2
        if len(chat_prompt_ids(tokenizer, tokenizer_config, messages(middle))) >= size:
            high = middle
        else:
            low = middle + 1
    return messages(low)


def tabllm_points(bundles_dir: Path, bundle, conversations: list[list[dict]], threads: int) -> list[Point]:
    engine = f"tabllm WASM, {threads} thread{'s' if threads > 1 else ''}"
    create = "(request) => window.engine.chat.completions.create(request)"
    points = []
    with wasm_engine_page(bundles_dir, bundle, threads) as page:
        for messages in conversations:
            # First the whole prompt (each size's own system message: nothing of it is cached), then a follow-up
            # over that history (cached), then the prompt again with sampling (only its decode counts).
            greedy = page.evaluate(create, {"messages": messages, "temperature": 0, "max_tokens": DECODE_TOKENS + 1})
            assert greedy["usage"]["prompt_tokens_details"]["cached_tokens"] <= MAX_SHARED_TOKENS, greedy["usage"]
            history = [*messages, {"role": "assistant", "content": greedy["choices"][0]["message"]["content"]},
                       {"role": "user", "content": FOLLOW_UP}]
            follow_up = page.evaluate(create, {"messages": history, "temperature": 0,
                                               "max_tokens": DECODE_TOKENS + 1})
            sampled = page.evaluate(create, {"messages": messages, "max_tokens": DECODE_TOKENS + 1, "seed": SEED})
            extra = lambda completion, key: completion["usage"]["extra"][key]
            points.append(Point(
                engine, greedy["usage"]["prompt_tokens"], extra(greedy, "time_to_first_token_s"),
                extra(greedy, "decode_tokens_per_s"), extra(sampled, "decode_tokens_per_s"),
                extra(follow_up, "time_to_first_token_s"), follow_up["usage"]["prompt_tokens"],
                extra(follow_up, "decode_tokens_per_s")))
    return points


def wllama_points(gguf: Path, tokenizer: Tokenizer, prompts: list[list[int]], threads: int) -> list[Point]:
    engine = f"wllama, {threads} thread{'s' if threads > 1 else ''}"
    points = []
    with BackgroundServer(create_wllama_app(gguf)) as server, sync_playwright() as playwright:
        browser = launch_webgpu_chromium(playwright.chromium)
        page = open_wllama_page(browser.new_context(), server.url)
        load_wllama(page, threads, max(map(len, prompts)) + DECODE_TOKENS + 1)
        for ids in prompts:
            run = wllama_generate(page, ids, prompt_text(tokenizer, ids), DECODE_TOKENS + 1)
            points.append(Point(engine, len(ids), run["firstTokenS"],
                                DECODE_TOKENS / (run["lastTokenS"] - run["firstTokenS"])))
        browser.close()
    return points


def plot(points: list[Point], path: Path, title: str) -> None:
    figure, (ttft, decode) = plt.subplots(1, 2, figsize=(11, 4.2))
    for engine in dict.fromkeys(p.engine for p in points):
        mine = [p for p in points if p.engine == engine]
        sizes = [p.prompt_tokens for p in mine]
        ttft.plot(sizes, [p.time_to_first_token_s for p in mine], marker="o", label=engine)
        decode.plot(sizes, [p.decode_tokens_per_s for p in mine], marker="o", label=f"{engine}, greedy")
        if mine[0].sampled_decode_tokens_per_s is not None:
            decode.plot(sizes, [p.sampled_decode_tokens_per_s for p in mine], marker="x", linestyle="--",
                        label=f"{engine}, default sampling")
    ttft.set(xlabel="prompt tokens", ylabel="time to first token (s)", title="Prefill")
    decode.set(xlabel="context tokens", ylabel="decode tokens/s", title="Decode", ylim=(0, None))
    save_figure(figure, (ttft, decode), title, path)


def save_figure(figure, panels, title: str, path: Path) -> None:
    """The bench plots' common finish: gridded panels with legends, the run's title, a PNG at `path`."""
    for axes in panels:
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.context", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--bundles", type=Path, default=Path("bundles"))
    parser.add_argument("--sizes", default="64,512,1024,2048", help="prompt sizes in tokens, comma-separated")
    parser.add_argument("--png", type=Path, default=Path("bench-context.png"))
    parser.add_argument("--json", type=Path, default=Path("bench-context.json"))
    args = parser.parse_args()

    bundle = ensure_bundle(args.bundles, args.model, DEFAULT_QUANTIZATION)
    tokenizer = Tokenizer.from_file(str(bundle.path / "tokenizer.json"))
    tokenizer_config = json.loads((bundle.path / "tokenizer_config.json").read_text(encoding="utf-8"))
    conversations = [prompt_of_size(tokenizer, tokenizer_config, int(size)) for size in args.sizes.split(",")]
    prompts = [chat_prompt_ids(tokenizer, tokenizer_config, messages) for messages in conversations]
    gguf = resolve_gguf(args.model)

    points = [p for threads in THREADS for p in tabllm_points(args.bundles, bundle, conversations, threads)]
    points += [p for threads in THREADS for p in wllama_points(gguf, tokenizer, prompts, threads)]

    machine = f"{cpu_model()}, {os.cpu_count()} cores"
    title = (f"{args.model} ({DEFAULT_QUANTIZATION} bundle; wllama on its GGUF), {DECODE_TOKENS} tokens decoded; "
             f"{machine}")
    table = Table(title=title)
    for column in ("engine", "prompt tokens", "TTFT s", "decode tok/s greedy", "decode tok/s sampled",
                   "follow-up TTFT s", "follow-up context", "follow-up decode tok/s"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    fmt = lambda value, spec: "-" if value is None else format(value, spec)
    for p in points:
        table.add_row(p.engine, str(p.prompt_tokens), fmt(p.time_to_first_token_s, ".2f"),
                      fmt(p.decode_tokens_per_s, ".1f"), fmt(p.sampled_decode_tokens_per_s, ".1f"),
                      fmt(p.follow_up_time_to_first_token_s, ".2f"), fmt(p.follow_up_context_tokens, "d"),
                      fmt(p.follow_up_decode_tokens_per_s, ".1f"))
    Console(width=160).print(table)
    plot(points, args.png, title)
    args.json.write_text(json.dumps({"model": args.model, "machine": machine, "decode_tokens": DECODE_TOKENS,
                                     "points": [asdict(p) for p in points]}, indent=1))
    print(f"wrote {args.json} and {args.png}")


if __name__ == "__main__":
    main()
