"""A native build against transformers' recorded answer on a tiny checkpoint (tests/fixtures/<name>_transformers.json):
fed the prompt, then each of transformers' greedy tokens in turn, it gives transformers' greedy ids exactly and its
logits within LOGITS_ATOL at the recorded steps."""
import numpy as np

from compile.native import NativeModel

LOGITS_ATOL = 1e-4


def assert_gives_recorded_logits(model: NativeModel, case: dict, label: str) -> None:
    prompt, greedy = case["prompt_ids"], case["greedy_ids"]
    logits = [model.prefill(prompt)] + [model.decode_one_token(t) for t in greedy[:-1]]
    assert [int(np.argmax(row)) for row in logits] == greedy
    errors = {int(step): float(np.max(np.abs(logits[int(step)] - np.array(row))))
              for step, row in case["logits"].items()}
    print(f"{label}: max |logit - transformers'| per step {errors}")
    assert max(errors.values()) < LOGITS_ATOL
