"""One completion request on one model, as the tab's engine runs it (web/src/engine/generation.js): prefill what
the KV cache lacks, once, then for each of the n choices sample and decode token by token until a stop token, a
stop string, max_tokens, or an abort. Every choice after the first starts from the prompt again (the cache drops
the previous choice's tokens; sampling restarts from the prompt's saved logits). Synchronous: it runs on the
worker thread that owns the model, and `is_aborted` is polled between prefill chunks and decode steps."""
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .sampling import SamplingParams, adjust_logits, sample_token
from .text import StopStringFilter, StreamingDetokenizer, plan_prefill


@dataclass
class GenerationResult:
    prompt_tokens: int
    cached_tokens: int
    prefill_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token_s: float = 0.0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    decode_steps: int = 0
    finish_reasons: list[str] = field(default_factory=list)

    def usage(self) -> dict:
        """OpenAI usage, with the KV reuse (prompt_tokens_details.cached_tokens) and timings, as the tab's usageOf."""
        def per_second(count, seconds):
            return count / seconds if seconds > 0 else 0
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "extra": {
                "prefill_tokens": self.prefill_tokens,
                "time_to_first_token_s": self.time_to_first_token_s,
                "prefill_tokens_per_s": per_second(self.prefill_tokens, self.prefill_s),
                "decode_tokens_per_s": per_second(self.decode_steps, self.decode_s),
                "e2e_latency_s": self.prefill_s + self.decode_s,
            },
        }


@dataclass
class Job:
    prompt_ids: list[int]
    n: int
    max_tokens: int
    sampling: SamplingParams
    random: Callable[[], float]  # uniform in [0, 1)
    stop_token_ids: set[int]
    stop_strings: list[str]
    decode_text: Callable[[list[int]], str]
    is_aborted: Callable[[], bool]
    on_choice: Callable[[int], None]  # (choice index)
    on_text: Callable[[str, int], None]  # (text, choice index)
    on_finish: Callable[[str, int], None]  # (finish reason, choice index)


def generate(model, job: Job) -> GenerationResult:
    start = time.perf_counter()
    keep, chunks = plan_prefill(model.tokens, job.prompt_ids, model.prefill_chunk_size)
    model.truncate(keep)
    result = GenerationResult(prompt_tokens=len(job.prompt_ids), cached_tokens=keep)
    prompt_logits = None
    for chunk in chunks:
        if job.is_aborted():
            break
        prompt_logits = model.prefill(chunk)
        result.prefill_tokens += len(chunk)
    prefilled = time.perf_counter()
    result.prefill_s = prefilled - start
    for index in range(job.n):
        if job.is_aborted():
            job.on_choice(index)
            job.on_finish("abort", index)
            result.finish_reasons.append("abort")
            continue
        if index > 0:
            model.truncate(len(job.prompt_ids))
        logits = prompt_logits if index == job.n - 1 else prompt_logits.copy()  # sampling adjusts them in place
        result.finish_reasons.append(_generate_choice(model, job, index, logits, result, start))
    result.decode_s = time.perf_counter() - prefilled
    return result


def _generate_choice(model, job: Job, index: int, logits, result: GenerationResult, start: float) -> str:
    job.on_choice(index)
    counts: dict[int, int] = {}
    detokenizer = StreamingDetokenizer(job.decode_text)
    stops = StopStringFilter(job.stop_strings)
    finish_reason = "abort"
    completion_tokens = 0
    while True:
        adjust_logits(logits, job.sampling, counts)
        token = sample_token(logits, job.sampling.temperature, job.sampling.top_p, job.random)
        completion_tokens += 1
        result.completion_tokens += 1
        if result.completion_tokens == 1:
            result.time_to_first_token_s = time.perf_counter() - start
        if token in job.stop_token_ids:
            finish_reason = "stop"
            break
        counts[token] = counts.get(token, 0) + 1
        text = stops.push(detokenizer.push(token))
        if text:
            job.on_text(text, index)
        if stops.stopped:
            finish_reason = "stop"
            break
        if completion_tokens >= job.max_tokens:
            finish_reason = "length"
            break
        if job.is_aborted():
            break
        logits = model.decode(token)
        result.decode_steps += 1
    rest = ""
    if not stops.stopped:
        released = stops.push(detokenizer.flush())
        if stops.stopped:
            finish_reason = "stop"
        rest = released if stops.stopped else released + stops.flush()
    if rest:
        job.on_text(rest, index)
    job.on_finish(finish_reason, index)
    return finish_reason
