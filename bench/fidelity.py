"""How far each path is from the model itself: the float32 reference (numpy) of the source weights.

- Teacher-forced over a fixed text (fidelity_text.txt, about 1,100 tokens): at every position the path's
  next-token logits against the reference's: top-1 agreement, mean and 99th-percentile KL(reference || path) in
  nats, max |Δlogit|. Native builds give their logits at every step; the browser engines and wllama do not.
- On the bench's chat prompts: greedy tokens that equal the reference's before the first difference, for every
  engine that answers them: by token id where the engine gives ids (native, wllama); the browser engine gives
  text, judged by the longest run of the reference's tokens whose text its answer starts with (one token too
  many where its next token merely extends the reference's last one, as " then" extends " the").
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from compile.native import NativeModel
from models.reference import NumpyLlama

TEXT = Path(__file__).with_name("fidelity_text.txt")


@dataclass
class Fidelity:
    engine: str
    quantization: str
    greedy_agreement: list[int]  # per prompt: tokens equal to the reference's before the first difference
    greedy_tokens: list[int]  # per prompt: the reference's answer length (stops at the end-of-turn token)
    text_tokens: int | None = None  # teacher-forced positions; None where the path gives no logits
    top1_agreement: float | None = None
    kl_mean: float | None = None
    kl_p99: float | None = None
    max_abs_logit_diff: float | None = None


def text_ids(tokenizer: Tokenizer) -> list[int]:
    return tokenizer.encode(TEXT.read_text(encoding="utf-8"), add_special_tokens=False).ids


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def reference_text_logits(reference: NumpyLlama, ids: list[int]) -> np.ndarray:
    """[len(ids) - 1, vocab]: the reference's logits after each token but the last, in one prefill."""
    reference.reset()
    return reference.prefill(ids[:-1])


def teacher_forced(model: NativeModel, ids: list[int], expected: np.ndarray) -> dict:
    """The native build fed the same tokens one at a time (the KV cache growing as in a chat), each step's
    logits compared with the reference's as they come (keeping all of them would take 200 MB per path)."""
    model.reset()
    kl, top1, max_diff = [], 0, 0.0
    logits = model.prefill(ids[:1])
    for step, want in enumerate(expected):
        if step:
            logits = model.decode_one_token(ids[step])
        log_p, log_q = log_softmax(want.astype(np.float64)), log_softmax(logits.astype(np.float64))
        kl.append(float(np.sum(np.exp(log_p) * (log_p - log_q))))
        top1 += int(np.argmax(logits) == np.argmax(want))
        max_diff = max(max_diff, float(np.abs(logits - want).max()))
    return {"text_tokens": len(expected), "top1_agreement": top1 / len(expected), "kl_mean": float(np.mean(kl)),
            "kl_p99": float(np.percentile(kl, 99)), "max_abs_logit_diff": max_diff}


def agreeing_ids(reference_ids: list[int], ids: list[int]) -> int:
    """How many of the reference's greedy tokens `ids` reproduces before it first differs."""
    return next((i for i, (a, b) in enumerate(zip(reference_ids, ids)) if a != b), min(len(reference_ids), len(ids)))


def agreeing_text(tokenizer: Tokenizer, reference_ids: list[int], answer: str) -> int:
    """How many of the reference's greedy tokens the text `answer` reproduces before it first differs."""
    for count in range(len(reference_ids), 0, -1):
        if answer.startswith(tokenizer.decode(reference_ids[:count], skip_special_tokens=True)):
            return count
    return 0
