"""A multi-turn greedy chat with KV reuse, as the engine runs one: each turn prefills only the tokens its cache
does not hold yet (the last answer's final token, the end-of-turn tokens and the new user message). The numpy
reference plays the conversation; a model under test is then fed exactly the same tokens (teacher forcing), so
its logits and greedy ids are compared step by step on identical inputs, turn after turn."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.quantization import round_trip
from models.reference import NumpyLlama
from models.tokenizer import chat_prompt_ids

USER_TURNS = ["What is the capital of France?", "And of Italy?", "And of Spain?"]
# A long prompt (about 400 tokens: many prefill chunks and KV pages), then a follow-up over that history.
LONG_TEXT = " ".join((Path(__file__).resolve().parent.parent / "bench/fidelity_text.txt").read_text().split()[:300])
LONG_USER_TURNS = [f"Summarize this text: {LONG_TEXT}", "Now say it in one sentence."]
MAX_NEW_TOKENS = 8  # SwiftShader decodes about 2 tokens/s: short answers ("The capital of Italy is Rome.")


@dataclass
class Turn:
    new_ids: list[int]  # what this turn prefills on top of the cache
    greedy_ids: list[int]  # the reference's answer (ends with the end-of-turn id when it finished)
    logits: list[np.ndarray]  # the reference's logits after the prefill and after each fed answer token
    margins: list[float]  # top-1 minus top-2 of each of those logits

    @property
    def fed_answer_ids(self) -> list[int]:
        """The answer tokens decoded (fed back) within the turn: all but the last, which the next turn prefills."""
        return self.greedy_ids[:-1]


def _margin(logits: np.ndarray) -> float:
    second, first = np.sort(logits)[-2:]
    return float(first - second)


def reference_conversation(reference: NumpyLlama, tokenizer, tokenizer_config, user_turns=USER_TURNS,
                           max_new_tokens: int = MAX_NEW_TOKENS) -> list[Turn]:
    eos = tokenizer_config["eos_token_id"]
    reference.reset()
    messages, cached, turns = [], [], []
    for content in user_turns:
        messages.append({"role": "user", "content": content})
        prompt = chat_prompt_ids(tokenizer, tokenizer_config, messages)
        assert prompt[:len(cached)] == cached, "the new prompt must extend what the cache holds"
        new_ids = prompt[len(cached):]
        logits = [reference.prefill(new_ids)[-1]]
        ids = [int(np.argmax(logits[-1]))]
        while ids[-1] != eos and len(ids) < max_new_tokens:
            logits.append(reference.decode(ids[-1]))
            ids.append(int(np.argmax(logits[-1])))
        turns.append(Turn(new_ids, ids, logits, [_margin(x) for x in logits]))
        cached = prompt + ids[:-1]
        messages.append({"role": "assistant", "content": tokenizer.decode([i for i in ids if i != eos])})
    return turns


@dataclass
class Divergence:
    """How a model under test compares with the reference over a conversation."""
    steps: int
    first_id_difference: tuple[int, int] | None  # (turn, step) of the first greedy id that differs
    first_clear_id_difference: tuple[int, int] | None  # the same, only where the reference margin > min_margin
    turn_logit_errors: list[float]  # max |logit - reference| per turn
    ids: list[list[int]]

    @property
    def max_logit_error(self) -> float:
        return max(self.turn_logit_errors)

    def summary(self) -> str:
        return (f"{self.steps} steps over {len(self.ids)} turns: first id difference at (turn, step) "
                f"{self.first_id_difference}, first where the margin is clear {self.first_clear_id_difference}, "
                f"max |Δlogit| per turn {', '.join(f'{e:.1e}' for e in self.turn_logit_errors)}")


def compare(turns: list[Turn], logits_under_test: list[list[np.ndarray]], min_margin: float) -> Divergence:
    """`logits_under_test[t][s]`: the model's logits at turn t, step s, fed the reference's tokens."""
    first = first_clear = None
    errors, steps, ids = [], 0, []
    for t, (turn, actual) in enumerate(zip(turns, logits_under_test, strict=True)):
        assert len(actual) == len(turn.logits), f"turn {t}: {len(actual)} steps, the reference has {len(turn.logits)}"
        ids.append([int(np.argmax(x)) for x in actual])
        errors.append(0.0)
        for s, (a, want, margin) in enumerate(zip(actual, turn.logits, turn.margins)):
            steps += 1
            errors[-1] = max(errors[-1], float(np.abs(np.asarray(a, np.float32) - want).max()))
            if ids[-1][s] != turn.greedy_ids[s]:
                first = first or (t, s)
                if margin > min_margin:
                    first_clear = first_clear or (t, s)
    return Divergence(steps, first, first_clear, errors, ids)


# Bundles that hold the source's float32 weights exactly: the float reference is the model itself.
EXACT_QUANTIZATIONS = ("q0f32", "gguf")


def float_reference_weights(quantization: str, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float32 weights a bundle of `quantization` holds exactly (its own float reference), given the
    source's float32 weights."""
    return weights if quantization in EXACT_QUANTIZATIONS else round_trip(weights, quantization)


# Exact greedy ids are required where the reference's top-1 leads its top-2 by more than this; lossy formats are
# compared with their own dequantized reference.
MIN_MARGIN = 0.05
# Measured max |Δlogit| over the three turns: 1e-4 on the CPU (native and wasm32); on WebGPU (SwiftShader) 8.5e-3
# for q0f32 and 1.2e-2 for q4, as large in the first turn (empty cache) as in later ones: SwiftShader's exp2/log2
# are approximate (5e-4 in the attention output alone, e2e/test_kv_cache_attention.py, where the wrong merge kernel
# was off by 2).
CPU_LOGITS_ATOL = 1e-3
WEBGPU_LOGITS_ATOL = 2e-2
