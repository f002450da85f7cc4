"""Choosing the next token, as the tab's engine does (web/src/engine/sampler.js): the same seeded random numbers
(sfc32 seeded by splitmix32), logit_bias and penalties rounded to float32 as a Float32Array stores them, and the
reference algorithm that sampler.js reproduces (web/test/reference-sampler.js): softmax weights summed in token
order, the top-p cut in descending weight order (ties by id), one uniform draw. The same seed gives the same
tokens here and in the tab (tests/fixtures/engine_cases.json is checked by both test suites)."""
from dataclasses import dataclass, field

import numpy as np

MASK = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    return (a * b) & MASK


def seeded_random(seed: int):
    """A function returning uniform floats in [0, 1), the sequence sampler.js's seededRandom(seed) gives."""
    bits = seed & ((1 << 64) - 1)
    mix = (bits & MASK) ^ _imul(bits >> 32, 0x9E3779B9)

    def splitmix32() -> int:
        nonlocal mix
        mix = (mix + 0x9E3779B9) & MASK
        z = _imul(mix ^ (mix >> 16), 0x85EBCA6B)
        z = _imul(z ^ (z >> 13), 0xC2B2AE35)
        return z ^ (z >> 16)

    a, b, c, d = splitmix32(), splitmix32(), splitmix32(), splitmix32()

    def random() -> float:
        nonlocal a, b, c, d
        t = (a + b + d) & MASK
        d = (d + 1) & MASK
        a = b ^ (b >> 9)
        b = (c + (c << 3)) & MASK
        c = ((c << 21) | (c >> 11)) & MASK
        c = (c + t) & MASK
        return t / 4294967296

    return random


@dataclass
class SamplingParams:
    temperature: float
    top_p: float
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: list[tuple[int, float]] = field(default_factory=list)


def adjust_logits(logits: np.ndarray, params: SamplingParams, counts: dict[int, int]) -> None:
    """logit_bias, then presence and frequency penalties over the tokens generated so far (in place); each sum is
    taken in float64 and stored as float32, as in a Float32Array."""
    for token, bias in params.logit_bias:
        logits[token] = float(logits[token]) + bias
    if params.presence_penalty == 0 and params.frequency_penalty == 0:
        return
    for token, count in counts.items():
        logits[token] = float(logits[token]) - (params.presence_penalty + params.frequency_penalty * count)


def sample_token(logits: np.ndarray, temperature: float, top_p: float, random) -> int:
    """argmax at temperature 0; otherwise softmax(logits / temperature) cut to the smallest set of most likely
    tokens whose probability reaches top_p (at least one), drawn with one number from `random`."""
    best = int(np.argmax(logits))  # the lowest index on ties, as sampler.js
    if temperature == 0:
        return best
    weights = np.exp((logits.astype(np.float64) - float(logits[best])) / temperature)
    total = np.cumsum(weights)[-1]  # summed in token order (np.sum would add pairwise: other roundings)
    u = random()
    if top_p >= 1:
        return _draw(weights, np.arange(len(weights)), u * total)
    order = np.argsort(-weights, kind="stable")  # descending weight, then ascending id
    sorted_sums = np.cumsum(weights[order])
    reached = np.flatnonzero(sorted_sums >= top_p * total)
    kept = int(reached[0]) + 1 if len(reached) else len(order)
    return _draw(weights, order[:kept], u * sorted_sums[kept - 1])


def _draw(weights: np.ndarray, order: np.ndarray, target: float) -> int:
    """The first token of `order` whose cumulative weight exceeds `target`, or else the last with any weight."""
    sums = np.cumsum(weights[order])
    at = int(np.searchsorted(sums, target, side="right"))
    if at < len(order):
        return int(order[at])
    nonzero = np.flatnonzero(weights[order])
    return int(order[nonzero[-1]]) if len(nonzero) else 0
