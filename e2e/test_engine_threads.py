"""The CPU library on WebAssembly threads: the engine's worker runs the library with N-1 more Web Workers on one
shared memory, and TVM's parallel loops (the quantized matmuls, split by output rows) run on all of them.
Splitting rows changes no reduction order, so every thread count gives the same tokens, equal to the reference's.
A page that is not cross-origin isolated cannot share the memory: it runs one thread, with the same answers.
"""
import pytest

from harness.browser import open_engine_page
from e2e.test_engine_wasm import abort_a_long_story

LONG_TOKENS = 40  # greedy tokens compared between thread counts, far past the reference's short answer

LOAD = """async ([url, threads]) => {
    const options = {device: "wasm"};
    if (threads !== null) options.threads = threads;
    return await window.engine.load(url, options);
}"""


def greedy(page, messages, max_tokens):
    completion = page.evaluate("([m, n]) => window.engine.chat.completions.create({messages: m, temperature: 0, "
                               "max_tokens: n})", [messages, max_tokens])
    return completion["choices"][0]["message"]["content"]


@pytest.fixture(scope="module")
def q0_url(serve_site, smollm2_q0_bundle, webgpu_browser):
    """A page of the real server offering the q0f32 bundle, and that bundle's URL."""
    url, _ = serve_site(smollm2_q0_bundle.path.parent)
    return url, f"/bundles/{smollm2_q0_bundle.bundle_id}/"


def answers_by_thread_count(page, bundle_url, case, thread_counts):
    answers = {}
    for threads in thread_counts:
        info = page.evaluate(LOAD, [bundle_url, threads])
        assert (info["device"], info["threads"], info["threadsLimitedBy"]) == ("wasm", threads, None)
        answers[threads] = (greedy(page, case["messages"], case["max_new_tokens"]),
                            greedy(page, [{"role": "user", "content": "Tell me about the sea."}], LONG_TOKENS))
    return answers


def test_every_thread_count_gives_the_reference_answer_q4(engine_page, bundle_url, smollm2_greedy_case,
                                                         smollm2_tokenizer):
    answers = answers_by_thread_count(engine_page, bundle_url, smollm2_greedy_case, [1, 2, 3])
    reference = smollm2_tokenizer.decode(smollm2_greedy_case["greedy_ids"][:-1])
    assert all(short == reference for short, _ in answers.values())
    assert answers[2][1] == answers[1][1] and answers[3][1] == answers[1][1]


def test_every_thread_count_gives_the_reference_answer_q0f32(webgpu_browser, q0_url, smollm2_greedy_case,
                                                            smollm2_tokenizer):
    url, bundle_url = q0_url
    context = webgpu_browser.new_context()
    try:
        answers = answers_by_thread_count(open_engine_page(context, url), bundle_url, smollm2_greedy_case, [1, 2])
    finally:
        context.close()
    reference = smollm2_tokenizer.decode(smollm2_greedy_case["greedy_ids"][:-1])
    assert answers[1][0] == reference and answers[2][0] == reference
    assert answers[2][1] == answers[1][1]


def test_by_default_one_thread_per_core(engine_page, bundle_url):
    info = engine_page.evaluate(LOAD, [bundle_url, None])
    assert info["threads"] == engine_page.evaluate("navigator.hardwareConcurrency")


def test_abort_lands_mid_generation_on_threads(engine_page, bundle_url, smollm2_greedy_case):
    engine_page.evaluate(LOAD, [bundle_url, 2])
    result = abort_a_long_story(engine_page)
    assert result["finish"] == "abort"
    assert result["usage"]["completion_tokens"] < 64
    assert greedy(engine_page, smollm2_greedy_case["messages"], 3) == "The capital of"


def test_invalid_thread_counts_are_invalid_requests(engine_page, bundle_url):
    for threads in [0, 1.5, "2", 65]:
        error = engine_page.evaluate("""async ([url, threads]) => {
            try { await window.engine.load(url, {device: "wasm", threads}); } catch (e) { return e.body; }
            return null;
        }""", [bundle_url, threads])
        assert error["type"] == "invalid_request_error" and error["param"] == "threads", threads


def test_without_cross_origin_isolation_one_thread_and_the_same_answer(webgpu_browser, site, bundle_url,
                                                                      smollm2_greedy_case, smollm2_tokenizer):
    url, _ = site
    context = webgpu_browser.new_context()

    def without_isolation(route):
        response = route.fetch()
        headers = {name: value for name, value in response.headers.items()
                   if name.lower() not in ("cross-origin-opener-policy", "cross-origin-embedder-policy")}
        route.fulfill(response=response, headers=headers)

    context.route("**/*", without_isolation)
    try:
        page = open_engine_page(context, url)
        assert page.evaluate("self.crossOriginIsolated") is False
        info = page.evaluate(LOAD, [bundle_url, 2])
        answer = greedy(page, smollm2_greedy_case["messages"], smollm2_greedy_case["max_new_tokens"])
    finally:
        context.close()
    assert info["threads"] == 1 and "cross-origin isolated" in info["threadsLimitedBy"]
    assert answer == smollm2_tokenizer.decode(smollm2_greedy_case["greedy_ids"][:-1])
