"""Compiled SmolLM2 bundles, served by the real server, run in Chromium through the model library's ABI (no
engine), on WebGPU and on the CPU (the wasm32 library, in a Chromium without the WebGPU flags): the q0f32 bundle
gives exactly the numpy reference's greedy token ids on both; the q4f32_1 bundle gives the logits of the
reference running the dequantized q4 weights within a tolerance, and its greedy tokens on prompts where the
reference's top-1/top-2 margins leave room for that tolerance."""
import numpy as np
import pytest

from e2e.browser import STEP_TIMEOUT_MS, print_page_problems
from models.quantization import q4f32_1_round_trip
from models.reference import NumpyLlama
from models.tokenizer import chat_prompt_ids

MODEL = "smollm2-135m-instruct"
DECODE_STEPS = 4  # SwiftShader decodes at a few tokens per second: keep it short
LOGITS_ATOL = 1e-2  # float32 sums in another order on the GPU: measured up to 3.1e-3 on SwiftShader
GREEDY_STEPS = 16
# Greedy tokens can only be compared where the best token leads the second by more than the logits can move.
MIN_MARGIN = 0.05
# Chat prompts whose reference answers run 16+ tokens with top-1/top-2 margins >= 0.1 (f32) at every step.
Q0_PROMPTS = ["What is the largest ocean on Earth?", "Write a haiku about the sea.",
              "What is the boiling point of water?"]
# The same for the dequantized q4 weights (margins >= 0.3).
Q4_PROMPTS = ["What is the largest ocean on Earth?", "How many legs does a spider have?"]


LIBRARIES = {"webgpu": "webgpu", "cpu": "wasm32"}  # runner device -> the bundle's library for it


def open_runner(browser, site_url: str, bundle, device: str = "webgpu"):
    """A page with `bundle`'s library for `device` and its weights loaded by e2e/pages/bundle_runner.html."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    print_page_problems(page)
    page.goto(f"{site_url}/e2e/bundle_runner.html")
    opened = page.evaluate("spec => window.openBundle(spec)", {
        "bundleUrl": f"{site_url}/bundles/{bundle.bundle_id}/", "device": device,
        "library": f"{bundle.path.name}-{LIBRARIES[device]}.wasm"})
    return context, page, opened


@pytest.fixture(scope="module")
def q4_runner(webgpu_browser, site, smollm2_q4_bundle):
    context, page, opened = open_runner(webgpu_browser, site[0], smollm2_q4_bundle)
    yield page, opened
    context.close()


def reference_greedy(reference: NumpyLlama, prompt_ids: list[int], steps: int) -> tuple[list[int], float]:
    """`steps` greedy ids from `reference` and the smallest top-1/top-2 logit margin over those steps."""
    reference.reset()
    logits = reference.prefill(prompt_ids)[-1]
    ids, margins = [], []
    for _ in range(steps):
        second, first = np.sort(logits)[-2:]
        margins.append(float(first - second))
        ids.append(int(np.argmax(logits)))
        logits = reference.decode(ids[-1])
    return ids, min(margins)


def assert_greedy_matches(page, reference, tokenizer, tokenizer_config, prompts):
    for content in prompts:
        prompt_ids = chat_prompt_ids(tokenizer, tokenizer_config, [{"role": "user", "content": content}])
        want, margin = reference_greedy(reference, prompt_ids, GREEDY_STEPS)
        assert margin > MIN_MARGIN, f"{content!r}: reference margin {margin:.3f} is too small to compare tokens"
        assert tokenizer_config["eos_token_id"] not in want, f"{content!r}: the reference answer is shorter than 16"
        got = page.evaluate("r => window.greedy(r)", {"promptIds": prompt_ids, "steps": GREEDY_STEPS})
        print(f"{content!r} -> {tokenizer.decode(got)!r} (reference margin >= {margin:.3f})")
        assert got == want, f"{content!r}: {tokenizer.decode(got)!r} != {tokenizer.decode(want)!r}"


def test_q4_bundle_on_webgpu_matches_the_reference(q4_runner, smollm2_config, smollm2_weights,
                                                    smollm2_greedy_case, record_property):
    page, opened = q4_runner
    case = smollm2_greedy_case
    tokens = case["greedy_ids"][:DECODE_STEPS]
    reference = NumpyLlama(smollm2_config, q4f32_1_round_trip(smollm2_weights))
    expected = [reference.prefill(case["prompt_ids"])[-1]] + [reference.decode(t) for t in tokens]

    result = page.evaluate("r => window.teacherForced(r)", {"promptIds": case["prompt_ids"], "forcedTokens": tokens})
    record_property("webgpu_adapter", str(opened["adapter"]))
    print(f"adapter {opened['adapter']}: prefill {len(case['prompt_ids'])} tokens {result['prefill_ms']:.0f} ms, "
          f"decode {result['decode_ms']:.0f} ms/token")

    assert opened["metadata"]["quantization"] == "q4f32_1"
    for step, (actual, want) in enumerate(zip(result["logits"], expected)):
        actual = np.asarray(actual, dtype=np.float32)
        np.testing.assert_allclose(actual, want, rtol=0, atol=LOGITS_ATOL, err_msg=f"step {step}")
        assert int(np.argmax(actual)) == int(np.argmax(want)), f"greedy token differs at step {step}"


def test_q4_bundle_gives_the_dequantized_references_greedy_tokens(q4_runner, smollm2_config, smollm2_weights,
                                                                   smollm2_tokenizer, smollm2_tokenizer_config):
    page, _ = q4_runner
    reference = NumpyLlama(smollm2_config, q4f32_1_round_trip(smollm2_weights))
    assert_greedy_matches(page, reference, smollm2_tokenizer, smollm2_tokenizer_config, Q4_PROMPTS)


@pytest.fixture(scope="module")
def q0_site_url(serve_site, smollm2_q0_bundle) -> str:
    url, _ = serve_site(smollm2_q0_bundle.path.parent)
    return url


@pytest.mark.parametrize("device", ["webgpu", "cpu"])
def test_q0_bundle_gives_exactly_the_references_greedy_tokens(device, webgpu_browser, no_webgpu_browser,
                                                               q0_site_url, smollm2_q0_bundle, smollm2_reference,
                                                               smollm2_tokenizer, smollm2_tokenizer_config):
    browser = webgpu_browser if device == "webgpu" else no_webgpu_browser
    context, page, opened = open_runner(browser, q0_site_url, smollm2_q0_bundle, device)
    try:
        assert opened["metadata"]["quantization"] == "q0f32"
        assert (opened["adapter"] is None) == (device == "cpu")
        assert_greedy_matches(page, smollm2_reference, smollm2_tokenizer, smollm2_tokenizer_config, Q0_PROMPTS)
    finally:
        context.close()
