"""A compiled SmolLM2 q4f32_1 bundle, served over HTTP, runs on WebGPU in Chromium and gives the logits of
the numpy reference running the same (dequantized q4) weights."""
from pathlib import Path

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from models.quantization import q4f32_1_round_trip
from models.reference import NumpyLlama

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m-instruct"
DECODE_STEPS = 4  # SwiftShader decodes at a few tokens per second: keep it short
LOGITS_ATOL = 1e-2  # float32 sums in another order on the GPU: measured up to 3.1e-3 on SwiftShader


@pytest.fixture(scope="module")
def runner_url(smollm2_q4_bundle, serve):
    app = Starlette(routes=[
        Mount("/tvmjs", StaticFiles(directory=ROOT / "web/node_modules/@mlc-ai/web-runtime/lib")),
        Mount("/bundle", StaticFiles(directory=smollm2_q4_bundle.path)),
        Mount("/", StaticFiles(directory=Path(__file__).parent / "pages")),
    ])
    return serve(app)


def test_q4_bundle_on_webgpu_matches_the_reference(page, runner_url, smollm2_config, smollm2_weights,
                                                    smollm2_greedy_case, record_property):
    case = smollm2_greedy_case
    tokens = case["greedy_ids"][:DECODE_STEPS]
    reference = NumpyLlama(smollm2_config, q4f32_1_round_trip(smollm2_weights))
    expected = [reference.prefill(case["prompt_ids"])[-1]] + [reference.decode(t) for t in tokens]

    page.goto(f"{runner_url}/bundle_runner.html")
    result = page.evaluate("spec => window.runBundle(spec)", {
        "bundleUrl": f"{runner_url}/bundle/", "library": f"{MODEL}-q4f32_1-webgpu.wasm",
        "promptIds": case["prompt_ids"], "forcedTokens": tokens,
    })
    record_property("webgpu_adapter", str(result["adapter"]))
    print(f"adapter {result['adapter']}: prefill {len(case['prompt_ids'])} tokens {result['prefill_ms']:.0f} ms, "
          f"decode {result['decode_ms']:.0f} ms/token")

    assert result["metadata"]["quantization"] == "q4f32_1"
    for step, (actual, want) in enumerate(zip(result["logits"], expected)):
        actual = np.asarray(actual, dtype=np.float32)
        np.testing.assert_allclose(actual, want, rtol=0, atol=LOGITS_ATOL, err_msg=f"step {step}")
        assert int(np.argmax(actual)) == int(np.argmax(want)), f"greedy token differs at step {step}"
