"""The in-browser engine (web/dist/engine.js + worker.js, imported by the real chat page served by
static_server) in headless Chromium on WebGPU: loading the real default SmolLM2 bundle with verified caching (a
page reload fetches nothing again; a shard corrupt on the server is reported and not cached), a greedy chat
answer equal to the numpy reference's tokens, streaming and non-streaming shapes, KV reuse across turns,
cancellation, and OpenAI-shaped errors after which the engine still answers.

SwiftShader prefills at a few tokens per second and decodes at ~2 tokens/s, so one engine (and its KV cache) is
shared by the whole module, in order, and generations stay short. Timings are printed (run with -s), not asserted.
"""
import shutil

from e2e.stored_files import damage, stored_files
from harness.browser import create_page_engine, launch_chromium_without_webgpu, open_engine_page
from models.tokenizer import chat_prompt_ids


def error_of(page, script: str, arg=None) -> dict:
    """Run `script` (an async function expected to throw) and return the thrown error's class and body."""
    return page.evaluate(f"""async (arg) => {{
        try {{ await ({script})(arg); }} catch (e) {{
            return {{name: e.name, isError: e instanceof Error, isEngineError: e instanceof window.engineModule.EngineError,
                     body: e.body}};
        }}
        return null;
    }}""", arg)


def assert_still_answers(page, messages):
    """The loaded engine answers a 1-token greedy request ("The", the reference's first token) after an error."""
    completion = page.evaluate("(m) => window.engine.chat.completions.create({messages: m, temperature: 0, "
                               "max_tokens: 1})", messages)
    choice = completion["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("The", "length")


LOAD = """async (url) => {
    const events = [];
    const start = performance.now();
    const info = await window.engine.load(url, {device: "webgpu", onProgress: (p) => events.push(p)});
    return {info, events, seconds: (performance.now() - start) / 1000, device: window.engine.device};
}"""

STREAM = """async (request) => {
    const chunks = [];
    for await (const chunk of await window.engine.chat.completions.create({...request, stream: true})) chunks.push(chunk);
    return chunks;
}"""


def test_cold_load_fetches_and_verifies_every_file_once(engine_page, site, smollm2_q4_bundle, bundle_url):
    _, log = site
    log.take()  # other tests may have used this server before
    result = engine_page.evaluate(LOAD, bundle_url)
    manifest = smollm2_q4_bundle.manifest
    print(f"\ncold load: {result['seconds']:.1f} s ({smollm2_q4_bundle.total_bytes / 1e6:.1f} MB)")

    info = result["info"]
    assert result["device"] == "webgpu"
    assert info["bundleId"] == smollm2_q4_bundle.bundle_id
    assert info["model"] == "smollm2-135m-instruct-gguf"
    assert (info["contextWindowSize"], info["vocabSize"]) == (4096, 49152)
    assert info["adapter"]["architecture"] == "swiftshader"

    # Every file once, except the CPU model libraries: a WebGPU load has no use for them.
    needed = [f for f in manifest["files"] if not f["path"].endswith(("-wasm32.wasm", "-wasm32-relaxed.wasm"))]
    assert len(needed) == len(manifest["files"]) - 2
    prefix = f"/bundles/{smollm2_q4_bundle.bundle_id}/"
    assert log.take() == sorted([prefix + "manifest.json"] + [prefix + f["path"] for f in needed])

    events = result["events"]
    stages = [e["stage"] for e in events]
    assert stages[0] == "manifest" and stages[-1] == "ready" and "compile" in stages and "cache" not in stages
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1
    downloads = [e for e in events if e["stage"] == "download"]
    assert len(downloads) > len(manifest["files"])  # byte progress within files, not just per file
    assert downloads[-1]["loadedBytes"] == downloads[-1]["totalBytes"] == sum(f["bytes"] for f in needed)
    assert all(isinstance(e["text"], str) and e["text"] for e in events)


def test_prompt_building_gives_the_reference_prompt_ids(engine_page, smollm2_greedy_case):
    ids = engine_page.evaluate("(messages) => window.engine.promptIds(messages)", smollm2_greedy_case["messages"])
    assert ids == smollm2_greedy_case["prompt_ids"]


def test_greedy_streamed_answer_matches_the_reference(engine_page, smollm2_greedy_case, smollm2_tokenizer):
    case = smollm2_greedy_case
    answer_ids = case["greedy_ids"][:-1]  # the reference stops with <|im_end|> (id 2): counted, not emitted
    chunks = engine_page.evaluate(STREAM, {
        "messages": case["messages"], "temperature": 0, "max_tokens": len(case["greedy_ids"]),
        "stream_options": {"include_usage": True},
    })
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == smollm2_tokenizer.decode(answer_ids) == "The capital of France is Paris."

    assert len({c["id"] for c in chunks}) == 1 and all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (len(case["prompt_ids"]), len(case["greedy_ids"]))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    extra = usage["extra"]
    print(f"\nfirst turn ({usage['prompt_tokens']} prompt tokens): time to first token {extra['time_to_first_token_s']:.1f} s, "
          f"prefill {extra['prefill_tokens_per_s']:.2f} tok/s, decode {extra['decode_tokens_per_s']:.2f} tok/s")
    assert extra["prefill_tokens"] == len(case["prompt_ids"])
    assert extra["time_to_first_token_s"] > 0 and extra["prefill_tokens_per_s"] > 0 and extra["decode_tokens_per_s"] > 0


def test_a_second_turn_prefills_only_its_new_tokens_and_gives_the_references_answer(
        engine_page, smollm2_greedy_case, smollm2_reference, smollm2_tokenizer, smollm2_tokenizer_config):
    case = smollm2_greedy_case
    messages = case["messages"] + [{"role": "assistant", "content": "The capital of France is Paris."},
                                   {"role": "user", "content": "And Italy?"}]
    # The reference over the whole conversation's tokens: "The capital of Italy is Rome." (margins >= 0.48)
    want = smollm2_reference.generate_greedy(chat_prompt_ids(smollm2_tokenizer, smollm2_tokenizer_config, messages),
                                             16, case["stop_ids"])
    completion = engine_page.evaluate("(r) => window.engine.chat.completions.create(r)",
                                      {"messages": messages, "temperature": 0, "max_completion_tokens": 16})
    usage = completion["usage"]
    # the KV cache holds the first prompt and the answer tokens fed back by decode (all but the last, <|im_end|>)
    held = len(case["prompt_ids"]) + len(case["greedy_ids"]) - 1
    print(f"\nsecond turn: {usage['prompt_tokens']} prompt tokens, {usage['prompt_tokens_details']['cached_tokens']} "
          f"from the KV cache, {usage['extra']['prefill_tokens']} prefilled; "
          f"time to first token {usage['extra']['time_to_first_token_s']:.1f} s")
    assert usage["prompt_tokens_details"]["cached_tokens"] == held
    assert usage["extra"]["prefill_tokens"] == usage["prompt_tokens"] - held
    assert completion["object"] == "chat.completion"
    # a prefill over the cached first turn (the path a racy WebGPU kernel once broke: compile/llama/merge_state.py)
    assert completion["choices"][0]["finish_reason"] == "stop"
    assert completion["choices"][0]["message"]["content"] == smollm2_tokenizer.decode(want, skip_special_tokens=True)


def test_non_streaming_completion_shape_and_max_tokens_ends_with_length(engine_page, smollm2_greedy_case):
    case = smollm2_greedy_case
    completion = engine_page.evaluate("(r) => window.engine.chat.completions.create(r)",
                                      {"messages": case["messages"], "temperature": 0, "max_tokens": 3})
    assert set(completion) == {"id", "object", "created", "model", "choices", "usage"}
    assert completion["object"] == "chat.completion" and completion["id"].startswith("chatcmpl-")
    assert isinstance(completion["created"], int) and completion["model"] == "smollm2-135m-instruct-gguf"
    # three greedy tokens of "The capital of France is Paris.", cut by max_tokens
    assert completion["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "The capital of"},
                                      "logprobs": None, "finish_reason": "length"}]
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        len(case["prompt_ids"]), 3, len(case["prompt_ids"]) + 3)


def test_abort_signal_and_interrupt_end_generation_and_the_engine_stays_usable(engine_page, smollm2_greedy_case):
    result = engine_page.evaluate("""async (messages) => {
        const engine = window.engine;
        const request = {messages, temperature: 0, max_tokens: 8, stream: true};
        const controller = new AbortController();
        const aborted = [];
        for await (const chunk of await engine.chat.completions.create({...request, signal: controller.signal})) {
            aborted.push(chunk);
            if (chunk.choices[0].delta.content) controller.abort();
        }
        const interrupted = [];
        for await (const chunk of await engine.chat.completions.create(request)) {
            interrupted.push(chunk);
            if (chunk.choices[0].delta.content) engine.interrupt();
        }
        return {aborted, interrupted};
    }""", smollm2_greedy_case["messages"])
    for chunks in (result["aborted"], result["interrupted"]):
        assert chunks[-1]["choices"][0]["finish_reason"] == "abort"
        assert not any("usage" in c for c in chunks)  # no stream_options.include_usage: no usage chunk
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert "The capital of France is Paris.".startswith(text) and len(text) < len("The capital of France is Paris.")
    assert_still_answers(engine_page, smollm2_greedy_case["messages"])


def test_seed_stop_and_logit_bias_act_on_the_real_model(engine_page, smollm2_greedy_case):
    result = engine_page.evaluate("""async (messages) => {
        const create = (extra) => window.engine.chat.completions.create({messages, max_tokens: 4, ...extra});
        const sampled = {temperature: 1.5, top_p: 0.95, seed: 1234};
        return {
            first: await create(sampled), again: await create(sampled),
            stopped: await create({temperature: 0, max_tokens: 8, stop: [" of Fr", "zzz"]}),
            banned: await create({temperature: 0, max_tokens: 1, logit_bias: {"504": -100}}),
        };
    }""", smollm2_greedy_case["messages"])
    content = {name: c["choices"][0]["message"]["content"] for name, c in result.items()}
    assert content["first"] == content["again"]  # same seed, same request: same output
    assert (content["stopped"], result["stopped"]["choices"][0]["finish_reason"]) == ("The capital", "stop")
    assert content["banned"] and not content["banned"].startswith("The")  # 504 is "The", the greedy first token


def test_invalid_requests_and_missing_models_give_openai_shaped_errors(engine_page, smollm2_greedy_case):
    messages = smollm2_greedy_case["messages"]
    n0 = error_of(engine_page, "(m) => window.engine.chat.completions.create({messages: m, n: 0})", messages)
    assert n0["name"] == "InvalidRequestError" and n0["isError"] and n0["isEngineError"]
    assert n0["body"]["param"] == "n" and n0["body"]["type"] == "invalid_request_error"
    assert_still_answers(engine_page, messages)

    bad_p = error_of(engine_page, "(m) => window.engine.chat.completions.create({messages: m, top_p: 3})", messages)
    assert bad_p["body"]["param"] == "top_p"
    assert_still_answers(engine_page, messages)

    too_long = error_of(engine_page, "(m) => window.engine.chat.completions.create({messages: m, stream: true})",
                        [{"role": "user", "content": "Paris and Rome. " * 1500}])
    assert too_long["name"] == "ContextLengthExceededError"
    assert too_long["body"]["code"] == "context_length_exceeded" and "4096" in too_long["body"]["message"]
    assert_still_answers(engine_page, messages)

    not_loaded = error_of(engine_page, """async (m) => {
        const fresh = await window.engineModule.createEngine();
        await fresh.chat.completions.create({messages: m});
    }""", messages)
    assert not_loaded["name"] == "ModelNotLoadedError" and not_loaded["body"]["code"] == "model_not_loaded"

    assert_still_answers(engine_page, messages)

    missing = error_of(engine_page, """async () => {
        const fresh = await window.engineModule.createEngine();
        await fresh.load("/bundles/0000000000000000/");
    }""")
    assert missing["name"] == "BundleError" and missing["body"]["code"] == "bundle_fetch_failed"
    assert "HTTP 404" in missing["body"]["message"]
    assert_still_answers(engine_page, messages)


def test_no_webgpu_adapter_is_a_clear_error(webgpu_browser, site, bundle_url):
    """Chromium without the SwiftShader WebGPU flags (as on a machine with no usable GPU) has no adapter."""
    url, _ = site
    browser = launch_chromium_without_webgpu(webgpu_browser.browser_type)
    try:
        page = open_engine_page(browser.new_context(), url)
        error = error_of(page, "(url) => window.engine.load(url, {device: 'webgpu'})", bundle_url)
    finally:
        browser.close()
    print(f"\nwithout WebGPU: {error}")
    assert error["name"] == "WebGPUUnavailableError" and error["body"]["code"] == "webgpu_unavailable"
    assert "WebGPU" in error["body"]["message"]


def test_reload_loads_without_requests_and_a_corrupt_cached_file_is_fetched_again(engine_page, site, smollm2_q4_bundle,
                                                                               bundle_url):
    _, log = site
    log.take()
    engine_page.reload()  # a new engine in a new worker: only the stored bundle remains from the first load
    create_page_engine(engine_page)
    warm = engine_page.evaluate(LOAD, bundle_url)
    print(f"\nwarm load after a page reload: {warm['seconds']:.1f} s")
    assert log.take() == []
    assert {e["stage"] for e in warm["events"]} == {"manifest", "cache", "compile", "ready"}

    shard = "params_shard_2.bin"
    damage(engine_page, smollm2_q4_bundle.bundle_id, shard, flip=12345)  # one flipped byte, same size
    repaired = engine_page.evaluate(LOAD, bundle_url)
    assert log.take() == [bundle_url + shard]
    assert repaired["info"]["bundleId"] == smollm2_q4_bundle.bundle_id
    expected = next(f for f in smollm2_q4_bundle.manifest["files"] if f["path"] == shard)
    assert stored_files(engine_page, smollm2_q4_bundle.bundle_id)[shard] == {
        "bytes": expected["bytes"], "sha256": expected["sha256"], "verified": True}

    # the reloaded model (its weights re-read, one shard re-fetched) answers like the first one
    completion = engine_page.evaluate("(r) => window.engine.chat.completions.create(r)", {
        "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}], "temperature": 0,
        "max_tokens": 1})
    assert completion["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert completion["choices"][0]["finish_reason"] == "length"

    engine_page.evaluate("() => window.engine.unload()")
    assert engine_page.evaluate("() => window.engine.device") is None
    gone = error_of(engine_page, "(m) => window.engine.chat.completions.create({messages: m})",
                    [{"role": "user", "content": "Hi"}])
    assert gone["name"] == "ModelNotLoadedError"


def test_a_shard_corrupt_on_the_server_is_reported_and_nothing_corrupt_is_cached(webgpu_browser, serve_site,
                                                                                 smollm2_q4_bundle, bundle_url,
                                                                                 tmp_path):
    bundle_copy = tmp_path / "bundles" / smollm2_q4_bundle.path.name
    shutil.copytree(smollm2_q4_bundle.path, bundle_copy)
    shard = bundle_copy / "params_shard_0.bin"
    data = bytearray(shard.read_bytes())
    data[12345] ^= 0xFF  # one flipped byte on disk: same size, same manifest, same bundle id
    shard.write_bytes(data)
    url, _ = serve_site(bundle_copy.parent)

    context = webgpu_browser.new_context()  # empty storage
    try:
        page = open_engine_page(context, url)
        error = error_of(page, "(url) => window.engine.load(url)", bundle_url)
        stored = stored_files(page, smollm2_q4_bundle.bundle_id)
    finally:
        context.close()
    print(f"\ncorrupt shard on the server: {error}; stored: {sorted(stored)}")
    assert error["name"] == "BundleError" and error["body"]["code"] == "bundle_checksum_mismatch"
    assert f"{bundle_url}params_shard_0.bin: sha256 mismatch" in error["body"]["message"]
    assert "corrupt" in error["body"]["message"]
    # nothing of the corrupt shard is kept (its file gone or emptied), and whatever was kept verified
    corrupt = stored.get("params_shard_0.bin", {"bytes": 0, "verified": False})
    assert corrupt["bytes"] == 0 and not corrupt["verified"]
    sha256 = {f["path"]: f["sha256"] for f in smollm2_q4_bundle.manifest["files"]}
    assert all(file["sha256"] == sha256[name] and file["verified"] for name, file in stored.items()
               if name != "params_shard_0.bin")
