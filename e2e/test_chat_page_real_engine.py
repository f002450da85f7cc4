"""The whole path as a person uses it: python's server, the page and the real engine (web/dist) with the real
compiled SmolLM2 default bundle on WebGPU. Load (the progress bar reaches 100%), ask "What is the capital of
France?" and watch the numpy reference's greedy answer stream in; Stop a long answer; start a new chat.

SwiftShader (CPU WebGPU) prefills this prompt in 10-60 s and decodes about two tokens per second: answers are
kept short and the timeouts are generous."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
LOAD_TIMEOUT_MS = 180_000
ANSWER_TIMEOUT_MS = 300_000

# Records what the page shows over time: every value the progress bar takes and every text of the last
# assistant message, so that "reached 100%" and "streamed" can be checked after the fact.
WATCH_PAGE_JS = """() => {
    window.progressValues = [];
    window.progressLabels = [];
    window.answerTexts = [];
    const bar = document.getElementById("load-progress-bar");
    new MutationObserver(() => {
        window.progressValues.push(bar.value);
        window.progressLabels.push(document.getElementById("load-progress-label").textContent);
    }).observe(document.getElementById("load-progress"), {attributes: true, childList: true, subtree: true,
                                                          characterData: true});
    new MutationObserver(() => {
        const bodies = document.querySelectorAll(".message-assistant .message-body");
        const text = bodies.length ? bodies[bodies.length - 1].textContent : "";
        if (text && text !== window.answerTexts[window.answerTexts.length - 1]) window.answerTexts.push(text);
    }).observe(document.getElementById("transcript"), {childList: true, subtree: true, characterData: true});
}"""


def send(page, text: str):
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def test_chat_with_the_real_engine_streams_the_reference_answer_stops_and_clears(page, site, smollm2_q4_bundle,
                                                                                 smollm2_greedy_case,
                                                                                 smollm2_tokenizer):
    url, _ = site
    page.add_init_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                         "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(url + "/")
    assert page.evaluate("crossOriginIsolated") is True
    page.evaluate(WATCH_PAGE_JS)

    load = page.get_by_role("button", name="Load")
    page.wait_for_function("!document.getElementById('load-button').disabled")  # WebGPU adapter found
    load.click()
    page.get_by_role("progressbar").wait_for()
    status = page.get_by_role("status")
    status.filter(has_text="Ready").wait_for(timeout=LOAD_TIMEOUT_MS)
    ready = re.fullmatch(r"Ready: smollm2-135m-instruct \(gguf\).*, ([\d.]+ MB) loaded in [\d.]+ s",
                         status.text_content())
    assert ready, status.text_content()
    megabytes = ready.group(1)  # what the load fetched: the bundle without the model libraries of other devices
    assert float(megabytes.split()[0]) <= smollm2_q4_bundle.total_bytes / 1e6 + 0.05
    values = page.evaluate("window.progressValues")
    assert values == sorted(values) and values[-1] == 1
    labels = [label.split(" · ")[0] for label in page.evaluate("window.progressLabels")]
    assert f"{megabytes} of {megabytes} (100%)" in labels

    # The page sends [{"role": "user", ...}] (empty system prompt): the messages the reference answered.
    assert smollm2_greedy_case["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    reference_answer = smollm2_tokenizer.decode(smollm2_greedy_case["greedy_ids"][:-1])  # without <|im_end|>
    page.locator("summary", has_text="Settings").click()
    page.get_by_label("Temperature").fill("0")  # greedy: the answer is the reference's
    page.get_by_label("Max tokens").fill(str(len(smollm2_greedy_case["greedy_ids"])))
    send(page, "What is the capital of France?")
    stats = page.locator(".message-assistant .message-stats")
    stats.wait_for(timeout=ANSWER_TIMEOUT_MS)

    answer = page.locator(".message-assistant .message-body").text_content()
    print(f"answer: {answer!r}; {stats.text_content()}")
    assert answer.strip() == reference_answer == "The capital of France is Paris."  # markdown ends with a newline
    streamed = page.evaluate("window.answerTexts")
    assert len(streamed) >= 3 and all(reference_answer.startswith(text.strip()) for text in streamed)  # grew piece by piece
    assert re.fullmatch(r"first token [\d.]+ s · prefill [\d.]+ tok/s · decode [\d.]+ tok/s · "
                        r"\d+ prompt \+ 8 answer tokens", stats.text_content())
    assert page.get_by_label("Message").is_enabled() and page.get_by_role("button", name="Stop").is_disabled()

    # Stop a long answer once its first words have arrived.
    page.get_by_label("Max tokens").fill("256")
    send(page, "Tell me a long story about a dragon who learns to bake bread.")
    page.locator(".message-assistant .message-body").nth(1).filter(has_text=re.compile(r"\w+\W+\w+")).wait_for(
        timeout=ANSWER_TIMEOUT_MS)
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator(".message-assistant .message-stats").nth(1)
    stopped.wait_for(timeout=ANSWER_TIMEOUT_MS)
    print(f"stopped: {stopped.text_content()}")
    assert stopped.text_content().startswith("stopped · ")
    answer_tokens = int(re.search(r"\+ (\d+) answer tokens", stopped.text_content()).group(1))
    assert answer_tokens < 64, stopped.text_content()  # far from the 256 asked for
    assert page.get_by_label("Message").is_enabled() and page.get_by_role("button", name="Stop").is_disabled()
    assert page.evaluate("window.cspViolations") == []  # the CSP allows what the engine needs
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "chat-page-real-engine.png")

    page.get_by_role("button", name="New chat").click()
    assert page.locator(".message").count() == 0
