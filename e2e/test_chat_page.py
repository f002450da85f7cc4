"""The chat page's behaviour in Chromium, against a scripted stand-in engine: load progress, streaming
sanitized markdown, stats, Stop, New chat, settings, keyboard, error messages, layout from phone to desktop.
The real engine and bundle are in test_chat_page_real_engine.py."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compile.bundle import write_bundle
from harness.browser import launch_chromium_without_webgpu
from static_server import create_app

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
TOTAL_BYTES = 93_086_153

# The engine API of web/src/engine, scripted from the test through window.fakeEngine: load() reports
# progress, waits at half way until released, and fails on request; create() records each request, streams
# the configured answer token by token, honours the AbortSignal and ends with the usage chunk.
FAKE_ENGINE_JS = """
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// The test may have set some of these before the page imported this module.
const control = (globalThis.fakeEngine = {
  requests: [], loads: [], tokenDelayMs: 5, loadError: null, chatError: null,
  answer: ["The ", "capital ", "is ", "**Paris**", "."],
  holdLoad: false,
  ...globalThis.fakeEngine,
});
let releaseLoad = () => {};
control.releaseLoad = () => releaseLoad();

class EngineError extends Error {
  constructor(message, code) { super(message); this.code = code; this.body = { message, type: "invalid_request_error", param: null, code }; }
}

export async function createEngine() {
  let loaded = false;
  return {
    async load(url, { onProgress }) {
      control.loads.push(url);
      const total = %(total)d;
      onProgress({ stage: "fetch", loadedBytes: 0, totalBytes: total, fraction: 0, text: "params_shard_0.bin" });
      await sleep(20);
      onProgress({ stage: "fetch", loadedBytes: total / 2, totalBytes: total, fraction: 0.5, text: "params_shard_1.bin" });
      if (control.holdLoad) await new Promise((resolve) => { releaseLoad = resolve; });
      if (control.loadError) throw new EngineError(control.loadError, "bundle_fetch_failed");
      onProgress({ stage: "ready", loadedBytes: total, totalBytes: total, fraction: 1, text: "" });
      loaded = true;
      return { device: "webgpu", adapter: { vendor: "google", architecture: "swiftshader" } };
    },
    chat: { completions: { async create(request) {
      if (!loaded) throw new EngineError("No model is loaded", "model_not_loaded");
      const { signal, ...recorded } = request;
      control.requests.push(JSON.parse(JSON.stringify(recorded)));
      if (control.chatError) throw new EngineError(control.chatError.message, control.chatError.code);
      const tokens = [...control.answer];
      return (async function* () {
        let sent = 0;
        for (const [index, token] of tokens.entries()) {
          await sleep(control.tokenDelayMs);
          if (signal.aborted) {  // as the engine: the stream ends with finish_reason "abort"
            yield { choices: [{ index: 0, delta: {}, finish_reason: "abort" }] };
            break;
          }
          sent += 1;
          yield { choices: [{ index: 0, delta: { content: token }, finish_reason: index === tokens.length - 1 ? "stop" : null }] };
        }
        yield { choices: [], usage: { prompt_tokens: 37, completion_tokens: sent,
          extra: { time_to_first_token_s: 1.5, prefill_tokens_per_s: 24.66, decode_tokens_per_s: 3.214 } } };
      })();
    } } },
  };
}
""" % {"total": TOTAL_BYTES}


@pytest.fixture(scope="module")
def page_assets(tmp_path_factory):
    """The page built from web/src/page (as web/build.mjs builds it) beside the stand-in engine."""
    directory = tmp_path_factory.mktemp("dist")
    subprocess.run([ROOT / "web/node_modules/.bin/esbuild", "src/page/chat.js", "--bundle", "--format=esm",
                    "--target=es2022", f"--outdir={directory}", "--log-level=warning"],
                   cwd=ROOT / "web", check=True)
    (directory / "engine.js").write_text(FAKE_ENGINE_JS)
    (directory / "worker.js").write_text("// the stand-in engine needs no worker\n")
    return directory


@pytest.fixture(scope="module")
def fake_bundles_dir(tmp_path_factory):
    """Two bundles: the page lists what the server has; the stand-in engine never reads them."""
    directory = tmp_path_factory.mktemp("bundles")
    for quantization in ("q4f32_1", "q0f32"):
        write_bundle(directory / f"smollm2-135m-instruct-{quantization}", model="smollm2-135m-instruct",
                     quantization=quantization, params=[("w", np.zeros(4, np.float32))],
                     # the quantization in the config too, as in real bundles: their ids (content hashes) differ
                     chat_config={"context_window_size": 4096, "quantization": quantization}, files={}, build={})
    return directory


@pytest.fixture(scope="module")
def chat_url(serve, fake_bundles_dir, page_assets):
    return serve(create_app(fake_bundles_dir, page_assets))


@pytest.fixture
def chat(page, chat_url):
    """The chat page, opened, with CSP violations collected in window.cspViolations."""
    page.add_init_script("window.fakeEngine = {}; window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                         "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sample + ' ' + e.sourceFile + ':' + e.lineNumber));")
    page.goto(chat_url + "/")
    page.get_by_role("button", name="Load").wait_for()
    page.wait_for_function("!document.getElementById('load-button').disabled")
    yield page
    assert page.evaluate("window.cspViolations") == []


def load_model(chat):
    chat.get_by_role("button", name="Load").click()
    chat.get_by_role("status").filter(has_text="Ready").wait_for()


def ask(chat, text: str):
    chat.get_by_label("Message").fill(text)
    chat.get_by_label("Message").press("Enter")
    chat.locator(".message-assistant .message-stats").last.wait_for()


def test_page_is_cross_origin_isolated_with_labelled_controls(chat):
    assert chat.evaluate("crossOriginIsolated") is True
    for label in ("Model", "System prompt", "Temperature", "Max tokens", "Message"):
        assert chat.get_by_label(label, exact=True).count() == 1, label
    options = chat.get_by_label("Model").locator("option").all_text_contents()
    assert options == ["smollm2-135m-instruct · q0f32 · 0.0 MB", "smollm2-135m-instruct · q4f32_1 · 0.0 MB"]
    assert chat.get_by_role("log", name="Conversation").is_visible()
    assert chat.get_by_label("Message").is_disabled()  # nothing to talk to before a model is loaded


def test_load_shows_bytes_and_percent_then_ready(chat):
    chat.evaluate("fakeEngine.holdLoad = true")
    chat.get_by_label("Model").select_option(label="smollm2-135m-instruct · q4f32_1 · 0.0 MB")
    chat.get_by_role("button", name="Load").click()
    progress = chat.locator("#load-progress-label")
    progress.filter(has_text="(50%)").wait_for()
    assert progress.text_content() == "46.5 MB of 93.1 MB (50%) · params_shard_1.bin"
    assert chat.get_by_role("progressbar").evaluate("bar => bar.value") == 0.5
    assert chat.get_by_role("button", name="Load").is_disabled()
    assert chat.get_by_role("status").text_content() == "Loading smollm2-135m-instruct (q4f32_1)…"
    ARTIFACTS.mkdir(exist_ok=True)
    chat.screenshot(path=ARTIFACTS / "chat-page-loading.png")

    chat.evaluate("fakeEngine.releaseLoad()")
    status = chat.get_by_role("status")
    status.filter(has_text="Ready").wait_for()
    assert status.text_content().startswith(
        "Ready: smollm2-135m-instruct (q4f32_1) on WebGPU (google swiftshader), 93.1 MB loaded in ")
    assert chat.get_by_role("progressbar").is_hidden()
    assert chat.evaluate("fakeEngine.loads")[0].startswith("/bundles/")
    assert chat.get_by_label("Message").is_enabled()
    assert chat.evaluate("document.activeElement.id") == "message"


def test_answer_streams_as_sanitized_markdown_with_stats(chat):
    load_model(chat)
    chat.evaluate("""fakeEngine.answer = ["The capital is **Paris**.", "\\n\\n<script>window.pwned = 1</script>",
        "<img src=x onerror='window.pwned = 2'>", "\\n\\n[link](javascript:window.pwned=3) and `code`"]""")
    ask(chat, "What is the capital of France?")

    answer = chat.locator(".message-assistant .message-body").last
    assert answer.locator("strong").text_content() == "Paris"
    assert answer.locator("code").text_content() == "code"
    assert answer.locator("script, img").count() == 0
    assert "<script>window.pwned = 1</script>" in answer.text_content()  # raw HTML is shown as text
    assert answer.locator("a").get_attribute("href") is None
    assert chat.evaluate("window.pwned") is None
    assert chat.locator(".message-user .message-body").text_content() == "What is the capital of France?"
    stats = chat.locator(".message-stats").last.text_content()
    assert stats == "first token 1.50 s · prefill 25 tok/s · decode 3.21 tok/s · 37 prompt + 4 answer tokens"
    assert chat.locator(".message-assistant").last.get_attribute("aria-busy") is None


def test_settings_and_history_go_into_the_request(chat):
    load_model(chat)
    chat.locator("summary", has_text="Settings").click()
    chat.get_by_label("System prompt").fill("Answer in one word.")
    chat.get_by_label("Temperature").fill("0")
    chat.get_by_label("Max tokens").fill("8")
    ask(chat, "Capital of France?")
    # Shift+Enter is a new line, not a send.
    message = chat.get_by_label("Message")
    message.type("And")
    message.press("Shift+Enter")
    message.type("Italy?")
    assert message.input_value() == "And\nItaly?"
    assert len(chat.evaluate("fakeEngine.requests")) == 1
    message.press("Enter")
    chat.locator(".message-stats").nth(1).wait_for()

    first, second = chat.evaluate("fakeEngine.requests")
    assert first == {"messages": [{"role": "system", "content": "Answer in one word."},
                                  {"role": "user", "content": "Capital of France?"}],
                     "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 8, "temperature": 0}
    assert second["messages"][1:] == [{"role": "user", "content": "Capital of France?"},
                                      {"role": "assistant", "content": "The capital is **Paris**."},
                                      {"role": "user", "content": "And\nItaly?"}]
    assert chat.locator(".message-user .message-body").nth(1).text_content() == "And\nItaly?"


def test_temperature_left_empty_uses_the_model_default(chat):
    load_model(chat)
    ask(chat, "Hi")
    request = chat.evaluate("fakeEngine.requests")[0]
    assert "temperature" not in request and request["max_tokens"] == 256
    assert request["messages"] == [{"role": "user", "content": "Hi"}]  # empty system prompt: the model's own


def test_stop_ends_the_answer_and_keeps_what_came(chat):
    load_model(chat)
    chat.evaluate("fakeEngine.tokenDelayMs = 400; fakeEngine.answer = ['one ', 'two ', 'three ', 'four ', 'five']")
    chat.get_by_label("Message").fill("Count")
    chat.get_by_role("button", name="Send").click()
    answer = chat.locator(".message-assistant .message-body").last
    answer.filter(has_text="one").wait_for()
    assert chat.get_by_role("button", name="Send").is_disabled()
    chat.get_by_role("button", name="Stop").click()
    chat.locator(".message-stats").last.wait_for()

    assert chat.locator(".message-stats").last.text_content().startswith("stopped · first token 1.50 s")
    assert "five" not in answer.text_content()
    assert chat.get_by_role("button", name="Stop").is_disabled()
    assert chat.get_by_role("button", name="Send").is_enabled()
    chat.evaluate("fakeEngine.tokenDelayMs = 5; fakeEngine.answer = ['ok']")
    ask(chat, "Again")
    history = chat.evaluate("fakeEngine.requests")[1]["messages"]
    assert history[1]["role"] == "assistant" and history[1]["content"].startswith("one ")


def test_new_chat_clears_the_conversation(chat):
    load_model(chat)
    ask(chat, "Hi")
    chat.get_by_role("button", name="New chat").click()
    assert chat.locator(".message").count() == 0
    ask(chat, "Hello again")
    assert chat.evaluate("fakeEngine.requests")[1]["messages"] == [{"role": "user", "content": "Hello again"}]


def test_load_failure_says_what_to_do(chat):
    chat.evaluate("fakeEngine.loadError = 'params_shard_1.bin: HTTP 404'")
    chat.get_by_role("button", name="Load").click()
    alert = chat.get_by_role("alert")
    alert.filter(has_text="Could not load").wait_for()
    assert "params_shard_1.bin: HTTP 404" in alert.text_content()
    assert "python -m compile" in alert.text_content()
    assert chat.get_by_role("status").text_content() == "No model loaded"
    assert chat.get_by_role("button", name="Load").is_enabled()  # try again
    assert chat.get_by_label("Message").is_disabled()


def test_context_overflow_says_what_to_do_and_gives_the_text_back(chat):
    load_model(chat)
    chat.evaluate("fakeEngine.chatError = {code: 'context_length_exceeded', message: '5000 tokens > 4096'}")
    chat.get_by_label("Message").fill("A very long question")
    chat.get_by_label("Message").press("Enter")
    failure = chat.locator(".message-failed .message-stats")
    failure.wait_for()
    assert "Start a new chat" in failure.text_content()
    assert failure.get_attribute("role") == "alert"
    assert chat.get_by_label("Message").input_value() == "A very long question"
    chat.evaluate("fakeEngine.chatError = null")
    ask(chat, "Short")
    assert chat.evaluate("fakeEngine.requests")[1]["messages"] == [{"role": "user", "content": "Short"}]


def test_without_webgpu_the_page_says_what_to_do(webgpu_browser, chat_url):
    # Chromium without the WebGPU flags has navigator.gpu but no adapter, as with a blocklisted GPU.
    browser = launch_chromium_without_webgpu(webgpu_browser.browser_type)
    try:
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(chat_url + "/")
        # The model still runs there, on the CPU: an informational line (no alert) says so, with how many threads
        # (this page is cross-origin isolated: one per core), and keeps the advice on WebGPU behind "why".
        info = page.locator("#device-info")
        info.wait_for()
        threads = page.evaluate("navigator.hardwareConcurrency")
        assert f"runs the model on this computer's CPU (WebAssembly, {threads} thread" in info.text_content()
        assert page.get_by_role("alert").count() == 0 or not page.get_by_role("alert").is_visible()
        advice = page.locator("#device-advice")
        assert not advice.is_visible()
        info.get_by_text("why").click()
        assert "no GPU adapter" in advice.text_content() and "chrome://gpu" in advice.text_content()
        assert advice.is_visible()
        assert page.get_by_role("button", name="Load").is_enabled()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "chat-page-no-webgpu.png")
    finally:
        browser.close()


@pytest.mark.parametrize("name, width, height", [("desktop", 1280, 800), ("phone", 360, 740)])
def test_screenshots_of_a_conversation(chat, name, width, height):
    chat.set_viewport_size({"width": width, "height": height})
    load_model(chat)
    chat.evaluate("""fakeEngine.answer = ["The capital of France is **Paris**. A few facts:\\n\\n",
        "- It lies on the Seine.\\n- About 2.1 million people live in the city itself.\\n\\n",
        "```python\\nprint('Bonjour, Paris!')\\n```"]""")
    ask(chat, "What is the capital of France?")
    chat.evaluate("fakeEngine.answer = ['It is in the north of the country, about 450 km from the Atlantic.']")
    ask(chat, "Where is it?")
    chat.get_by_label("Message").fill("And its population?")

    # Readable at this width: nothing wider than the window, every control inside it.
    assert chat.evaluate("document.documentElement.scrollWidth") <= width
    for control in ("#bundle-picker", "#load-button", "#message", "#send-button", "#stop-button", "#new-chat-button"):
        box = chat.locator(control).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, control
    ARTIFACTS.mkdir(exist_ok=True)
    chat.screenshot(path=ARTIFACTS / f"chat-page-{name}.png")
