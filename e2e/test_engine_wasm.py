"""The engine's CPU path: the bundle's WebAssembly SIMD library (`*-wasm32-relaxed.wasm` where the browser has relaxed
SIMD, as Chromium does, `*-wasm32.wasm` elsewhere) run by the same engine, chosen
by `device: "auto"` when WebGPU is missing or only a software adapter (SwiftShader) is there, or asked for with
`device: "wasm"`. Same API, same answers as the numpy reference; cancellation works although a CPU step never
waits on a GPU. Timings are printed (run with -s), not asserted.
"""
from harness.browser import open_engine_page
from models.reference import NumpyLlama
from tests.multi_turn import (LONG_USER_TURNS, MAX_NEW_TOKENS, MIN_MARGIN, float_reference_weights,
                              reference_conversation)

LOAD = """async ([url, device]) => {
    const info = await window.engine.load(url, {device});
    return {info, device: window.engine.device};
}"""


def greedy(page, messages, max_tokens):
    return page.evaluate("([m, n]) => window.engine.chat.completions.create({messages: m, temperature: 0, "
                         "max_tokens: n})", [messages, max_tokens])


def abort_a_long_story(page) -> dict:
    """Streams a greedy story of up to 512 tokens, aborts after its fourth piece: {finish, usage}."""
    return page.evaluate("""async () => {
        const controller = new AbortController();
        const stream = await window.engine.chat.completions.create(
            {messages: [{role: "user", content: "Write a long story about a robot who learns to paint."}],
             temperature: 0, max_tokens: 512, stream: true, stream_options: {include_usage: true},
             signal: controller.signal});
        let pieces = 0, finish = null, usage = null;
        for await (const chunk of stream) {
            if (chunk.choices[0]?.delta?.content) pieces += 1;
            if (pieces === 4 && !controller.signal.aborted) controller.abort();
            finish = chunk.choices[0]?.finish_reason ?? finish;
            usage = chunk.usage ?? usage;
        }
        return {finish, usage};
    }""")


def test_auto_runs_on_the_cpu_when_the_only_adapter_is_software(engine_page, bundle_url):
    loaded = engine_page.evaluate(LOAD, [bundle_url, "auto"])
    assert loaded["device"] == "wasm" and loaded["info"]["device"] == "wasm" and loaded["info"]["adapter"] is None
    assert loaded["info"]["library"] == "wasm32-relaxed"  # Chromium has relaxed SIMD


def test_greedy_answer_on_the_cpu_is_the_reference_answer(engine_page, smollm2_greedy_case, smollm2_tokenizer):
    case = smollm2_greedy_case
    assert engine_page.evaluate("(m) => window.engine.promptIds(m)", case["messages"]) == case["prompt_ids"]
    completion = greedy(engine_page, case["messages"], case["max_new_tokens"])
    answer_ids = case["greedy_ids"][:-1]  # the reference's last id is <|im_end|>, which ends the answer unseen
    assert completion["choices"][0]["message"]["content"] == smollm2_tokenizer.decode(answer_ids)
    assert completion["choices"][0]["finish_reason"] == "stop"
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (len(case["prompt_ids"]), len(case["greedy_ids"]))
    print(f"\nwasm: time to first token {usage['extra']['time_to_first_token_s']:.2f} s, "
          f"prefill {usage['extra']['prefill_tokens_per_s']:.1f} tok/s, "
          f"decode {usage['extra']['decode_tokens_per_s']:.1f} tok/s")


def test_abort_ends_a_cpu_generation_and_the_engine_stays_usable(engine_page, smollm2_greedy_case):
    result = abort_a_long_story(engine_page)
    assert result["finish"] == "abort"
    assert result["usage"]["completion_tokens"] < 64  # stopped within a few steps, far short of 512
    answer = greedy(engine_page, smollm2_greedy_case["messages"], 1)
    assert answer["choices"][0]["message"]["content"] == "The"


def test_an_unknown_device_is_an_invalid_request(engine_page, bundle_url):
    error = engine_page.evaluate("""async (url) => {
        try { await window.engine.load(url, {device: "tpu"}); } catch (e) { return {name: e.name, body: e.body}; }
        return null;
    }""", bundle_url)
    assert error["name"] == "InvalidRequestError"
    assert error["body"]["param"] == "device" and error["body"]["type"] == "invalid_request_error"


def test_without_webgpu_auto_runs_on_the_cpu_and_webgpu_is_refused(no_webgpu_browser, site, bundle_url,
                                                                     smollm2_greedy_case):
    url, _ = site
    context = no_webgpu_browser.new_context()
    try:
        page = open_engine_page(context, url)
        refused = page.evaluate("""async (url) => {
            try { await window.engine.load(url, {device: "webgpu"}); } catch (e) { return e.body.code; }
            return null;
        }""", bundle_url)
        loaded = page.evaluate(LOAD, [bundle_url, "auto"])
        answer = greedy(page, smollm2_greedy_case["messages"], 3)
    finally:
        context.close()
    assert refused == "webgpu_unavailable"
    assert loaded["device"] == "wasm"
    assert answer["choices"][0]["message"]["content"] == "The capital of"


def test_a_long_two_turn_chat_on_the_cpu_is_the_float_reference_chat(
        engine_page, bundle_url, smollm2_q4_bundle, smollm2_config, smollm2_weights, smollm2_tokenizer,
        smollm2_tokenizer_config):
    """The engine's own prefill plan on the CPU (chunks of at most 256 tokens: tvm-model.js's CPU_PREFILL_CHUNK)
    and its KV reuse: a prompt of about 400 tokens, then a follow-up prefilling only what the cache lacks, each
    answer the float32 reference's greedy answer."""
    engine_page.evaluate(LOAD, [bundle_url, "wasm"])
    reference = NumpyLlama(smollm2_config, float_reference_weights(smollm2_q4_bundle.manifest["quantization"],
                                                                   smollm2_weights))
    turns = reference_conversation(reference, smollm2_tokenizer, smollm2_tokenizer_config, LONG_USER_TURNS)
    assert len(turns[0].new_ids) > 256  # more than one chunk
    assert min(m for turn in turns for m in turn.margins) > MIN_MARGIN, "reference margins too small to compare"
    eos = smollm2_tokenizer_config["eos_token_id"]
    messages = []
    for turn, content in zip(turns, LONG_USER_TURNS, strict=True):
        messages.append({"role": "user", "content": content})
        completion = greedy(engine_page, messages, MAX_NEW_TOKENS)
        answer, usage = completion["choices"][0]["message"]["content"], completion["usage"]
        print(f"\nprompt {usage['prompt_tokens']} tokens ({usage['prompt_tokens_details']['cached_tokens']} cached): "
              f"{answer!r}")
        assert answer == smollm2_tokenizer.decode([i for i in turn.greedy_ids if i != eos])
        assert usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"] == len(turn.new_ids)
        messages.append({"role": "assistant", "content": answer})
