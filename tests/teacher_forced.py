"""A native build against transformers' recorded two-turn chat on a tiny checkpoint
(tests/fixtures/<name>_transformers.json): fed the prompt, then each of transformers' greedy tokens in turn, then the
second turn's ids on the same KV cache (the first answer's last token and the template's ids for the second message,
prefilled in chunks), then that turn's greedy tokens, it gives transformers' greedy ids exactly at every step of
both turns and its logits within LOGITS_ATOL at the recorded steps. transformers computed the second turn afresh
over the whole conversation, so it checks the cache kept from the first turn."""
import numpy as np

from compile.native import NativeModel

LOGITS_ATOL = 1e-4


def recorded_turns(case: dict) -> list[dict]:
    """The conversation as turns of {newIds (prefilled), fedIds (decoded one by one), greedy, logits (recorded
    steps)}, the form e2e/pages/bundle_runner.html's conversation() takes too."""
    first, second = case["greedy_ids"], case["second_turn"]
    return [{"newIds": case["prompt_ids"], "fedIds": first[:-1], "greedy": first, "logits": case["logits"]},
            {"newIds": first[-1:] + second["new_ids"], "fedIds": second["greedy_ids"][:-1],
             "greedy": second["greedy_ids"], "logits": second["logits"]}]


def assert_turns_match(turn_logits: list[list[np.ndarray]], case: dict, label: str) -> None:
    """`turn_logits`: per turn, the logits after its prefill and after each fed id."""
    for number, (logits, turn) in enumerate(zip(turn_logits, recorded_turns(case), strict=True), 1):
        assert [int(np.argmax(row)) for row in logits] == turn["greedy"], f"turn {number}"
        errors = {int(step): float(np.max(np.abs(np.asarray(logits[int(step)]) - np.array(row))))
                  for step, row in turn["logits"].items()}
        print(f"{label}, turn {number}: max |logit - transformers'| per step {errors}")
        assert max(errors.values()) < LOGITS_ATOL, f"turn {number}"


def assert_gives_recorded_logits(model: NativeModel, case: dict, label: str) -> None:
    model.reset()
    turn_logits = [[model.prefill(turn["newIds"])] + [model.decode_one_token(t) for t in turn["fedIds"]]
                   for turn in recorded_turns(case)]
    assert_turns_match(turn_logits, case, label)
