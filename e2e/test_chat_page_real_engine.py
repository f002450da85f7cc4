"""The whole path as a person uses it: python's server, the page and the real engine (web/dist) with the real
compiled SmolLM2 q4f32_1 bundle on WebGPU. Load, ask "What is the capital of France?", get Paris.

SwiftShader (CPU WebGPU) prefills this prompt in about a minute and decodes a few seconds per token: the
answer is kept to 8 tokens ("The capital of France is Paris." is 7) and the timeouts are generous."""
import re
import subprocess
from pathlib import Path

import pytest

from static_server import create_app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
LOAD_TIMEOUT_MS = 180_000
ANSWER_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def web_dist():
    """web/dist as the server serves it, built from the current sources."""
    subprocess.run(["node", "build.mjs"], cwd=ROOT / "web", check=True, capture_output=True)
    return ROOT / "web" / "dist"


def test_ask_the_capital_of_france_with_the_real_engine(page, serve, bundles_dir, web_dist):
    url = serve(create_app(bundles_dir, web_dist))
    page.add_init_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                         "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(url + "/")
    assert page.evaluate("crossOriginIsolated") is True

    load = page.get_by_role("button", name="Load")
    page.wait_for_function("!document.getElementById('load-button').disabled")  # WebGPU adapter found
    load.click()
    page.get_by_role("progressbar").wait_for()
    status = page.get_by_role("status")
    status.filter(has_text="Ready").wait_for(timeout=LOAD_TIMEOUT_MS)
    assert re.fullmatch(r"Ready: smollm2-135m-instruct \(q4f32_1\), 93\.\d MB loaded in [\d.]+ s", status.text_content())

    page.locator("summary", has_text="Settings").click()
    page.get_by_label("Temperature").fill("0")  # greedy: the answer is known
    page.get_by_label("Max tokens").fill("8")
    page.get_by_label("Message").fill("What is the capital of France?")
    page.get_by_label("Message").press("Enter")
    stats = page.locator(".message-assistant .message-stats")
    stats.wait_for(timeout=ANSWER_TIMEOUT_MS)

    answer = page.locator(".message-assistant .message-body").text_content()
    print(f"answer: {answer!r}; {stats.text_content()}")
    assert "Paris" in answer
    assert re.fullmatch(r"first token [\d.]+ s · prefill [\d.]+ tok/s · decode [\d.]+ tok/s · "
                        r"\d+ prompt \+ [1-8] answer tokens", stats.text_content())
    assert page.get_by_label("Message").is_enabled() and page.get_by_role("button", name="Stop").is_disabled()
    assert page.evaluate("window.cspViolations") == []  # the CSP allows what the engine needs
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "chat-page-real-engine.png")
