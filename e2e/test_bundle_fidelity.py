"""Compiled SmolLM2 bundles, served by the real server, run in Chromium through the model library's ABI (no
engine), on WebGPU and on the CPU (the wasm32 library, in a Chromium without the WebGPU flags), against the numpy
float32 reference of the GGUF's weights: the default bundle (the GGUF's own Q4_1/Q8_0 blocks, unchanged) gives
the reference's logits within a float32-summation tolerance and its greedy tokens; so does the q0f32 bundle,
whose greedy token ids are exactly the reference's."""
import numpy as np
import pytest

from harness.browser import STEP_TIMEOUT_MS, print_page_problems
from models.reference import NumpyLlama
from models.tokenizer import chat_prompt_ids

MODEL = "smollm2-135m-instruct"
DECODE_STEPS = 4  # SwiftShader decodes at a few tokens per second: keep it short
# Logits of about ±20. The CPU library sums in float32 in another order than numpy: measured up to 6e-5. On
# WebGPU (SwiftShader) measured up to 8.7e-5 (7.3e-3 with WGSL's own sin and cos: compile/webgpu_math.py); WGSL
# allows exp, inverseSqrt and division several ULP of error.
LOGITS_ATOL = {"cpu": 1e-3, "webgpu": 1e-3}
GREEDY_STEPS = 16
# Greedy tokens can only be compared where the best token leads the second by more than the logits can move.
MIN_MARGIN = 0.05
# Chat prompts whose reference answers run 16+ tokens with top-1/top-2 margins >= 0.1 (f32) at every step.
PROMPTS = ["What is the largest ocean on Earth?", "Write a haiku about the sea.",
           "What is the boiling point of water?"]


# runner device -> the bundle's library for it: on the CPU, SIMD128 (every browser) or relaxed SIMD (fused
# multiply-adds; Chromium has it)
LIBRARIES = {"webgpu": "webgpu", "cpu": "wasm32", "cpu-relaxed": "wasm32-relaxed"}


def open_runner(browser, site_url: str, bundle, device: str = "webgpu"):
    """A page with `bundle`'s library for `device` and its weights loaded by e2e/pages/bundle_runner.html."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    print_page_problems(page)
    page.goto(f"{site_url}/e2e/bundle_runner.html")
    opened = page.evaluate("spec => window.openBundle(spec)", {
        "bundleUrl": f"{site_url}/bundles/{bundle.bundle_id}/", "device": "webgpu" if device == "webgpu" else "cpu",
        "library": f"{bundle.path.name}-{LIBRARIES[device]}.wasm"})
    return context, page, opened


@pytest.fixture(scope="module", params=["webgpu", "cpu", "cpu-relaxed"])
def default_runner(request, webgpu_browser, no_webgpu_browser, site, smollm2_q4_bundle):
    """The default bundle's library for each device, loaded once per device for this module."""
    browser = webgpu_browser if request.param == "webgpu" else no_webgpu_browser
    context, page, opened = open_runner(browser, site[0], smollm2_q4_bundle, request.param)
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


def test_default_bundle_gives_the_float_references_logits(default_runner, smollm2_reference, smollm2_greedy_case,
                                                          record_property):
    page, opened = default_runner
    device = "cpu" if opened["adapter"] is None else "webgpu"
    case = smollm2_greedy_case
    tokens = case["greedy_ids"][:DECODE_STEPS]
    reference = smollm2_reference
    expected = [reference.prefill(case["prompt_ids"])[-1]] + [reference.decode(t) for t in tokens]

    result = page.evaluate("r => window.teacherForced(r)", {"promptIds": case["prompt_ids"], "forcedTokens": tokens})
    record_property("webgpu_adapter", str(opened["adapter"]))
    print(f"adapter {opened['adapter']}: prefill {len(case['prompt_ids'])} tokens {result['prefill_ms']:.0f} ms, "
          f"decode {result['decode_ms']:.0f} ms/token")

    assert opened["metadata"]["quantization"] == "gguf"
    assert opened["metadata"]["weight_formats"] == {"q4g32": 120, "q8g32z128": 1}
    differences = [float(np.abs(np.asarray(actual, np.float32) - want).max())
                   for actual, want in zip(result["logits"], expected)]
    print(f"max |logit - reference| per step: {', '.join(f'{d:.1e}' for d in differences)}")
    for step, (actual, want) in enumerate(zip(result["logits"], expected)):
        actual = np.asarray(actual, dtype=np.float32)
        np.testing.assert_allclose(actual, want, rtol=0, atol=LOGITS_ATOL[device], err_msg=f"step {step}")
        assert int(np.argmax(actual)) == int(np.argmax(want)), f"greedy token differs at step {step}"


def test_default_bundle_gives_the_float_references_greedy_tokens(default_runner, smollm2_reference,
                                                                 smollm2_tokenizer, smollm2_tokenizer_config):
    page, _ = default_runner
    assert_greedy_matches(page, smollm2_reference, smollm2_tokenizer, smollm2_tokenizer_config, PROMPTS)


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
        # SwiftShader reads the 540 MB of float32 weights per token on the CPU: 3 prompts took 13 min of a loaded
        # CI run. One prompt's 16 tokens check the exact greedy ids on WebGPU; the CPU library answers all three.
        prompts = PROMPTS if device == "cpu" else PROMPTS[:1]
        assert_greedy_matches(page, smollm2_reference, smollm2_tokenizer, smollm2_tokenizer_config, prompts)
    finally:
        context.close()
