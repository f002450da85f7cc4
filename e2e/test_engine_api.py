"""OpenAI API parity of the engine, on the real SmolLM2 bundle on the CPU (`device: "wasm"`, the fast path here):
logprobs against the numpy reference's own log-softmax, n choices from one prefill reproducible with a seed,
structured output (response_format) validated by ajv, a tool-call round trip, and the official `openai` npm client
running on the engine through engineFetch. Grammar compile times are printed (run with -s), not asserted; what
constrained decoding costs is measured by `python -m bench.structured`.
"""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.browser import open_engine_page

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
DEPS_PATH = "/e2e-deps/openai.js"  # served to the page by a route: the openai SDK, bundled by esbuild


@pytest.fixture(scope="module")
def openai_sdk_module() -> bytes:
    """npm `openai` as one browser ES module (esbuild, from web/node_modules): `export {OpenAI}`."""
    built = subprocess.run(
        ["node_modules/.bin/esbuild", "--bundle", "--format=esm", "--platform=browser", "--log-level=error"],
        input=b'export { default as OpenAI } from "openai";', cwd=WEB, check=True, capture_output=True)
    return built.stdout


@pytest.fixture(scope="module")
def api_page(webgpu_browser, site, bundle_url, openai_sdk_module):
    """The real chat page with window.engine holding the default bundle on the CPU, and the openai SDK at DEPS_PATH."""
    url, _ = site
    context = webgpu_browser.new_context()
    context.route(f"{url}{DEPS_PATH}", lambda route: route.fulfill(
        body=openai_sdk_module, content_type="text/javascript", headers={"cross-origin-resource-policy": "same-origin"}))
    page = open_engine_page(context, url)
    page.evaluate("(url) => window.engine.load(url, {device: 'wasm'})", bundle_url)
    yield page
    context.close()


def create(page, request):
    return page.evaluate("(r) => window.engine.chat.completions.create(r)", request)


STREAM = """async (request) => {
    const chunks = [];
    for await (const chunk of await window.engine.chat.completions.create({...request, stream: true})) chunks.push(chunk);
    return chunks;
}"""


def error_of(page, request) -> dict:
    return page.evaluate("""async (r) => {
        try { await window.engine.chat.completions.create(r); } catch (e) { return {name: e.name, body: e.body}; }
        return null;
    }""", request)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    return x - x.max() - np.log(np.exp(x - x.max()).sum())


def test_logprobs_are_the_reference_models_and_streaming_gives_the_same(api_page, smollm2_greedy_case,
                                                                         smollm2_reference, smollm2_tokenizer):
    case = smollm2_greedy_case
    request = {"messages": case["messages"], "temperature": 0, "max_tokens": case["max_new_tokens"],
               "logprobs": True, "top_logprobs": 5}
    completion = create(api_page, request)
    content = completion["choices"][0]["logprobs"]["content"]
    answer_ids = case["greedy_ids"][:-1]  # the last is <|im_end|>: it ends the answer and is not listed
    assert len(content) == len(answer_ids)

    # the reference's log-softmax at each step of the same tokens (teacher-forced), in float64
    logits = smollm2_reference.prefill(case["prompt_ids"])[-1]
    for step, (entry, token) in enumerate(zip(content, answer_ids)):
        reference = log_softmax(logits)
        expected_bytes = list(smollm2_tokenizer.decode([token]).encode())
        assert entry["bytes"] == expected_bytes and entry["token"] == smollm2_tokenizer.decode([token])
        assert abs(entry["logprob"] - reference[token]) < 2e-3, (step, entry["logprob"], reference[token])
        top = entry["top_logprobs"]
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert top[0]["bytes"] == expected_bytes  # greedy: the chosen token is the most likely
        assert sum(np.exp(t["logprob"]) for t in top) <= 1 + 1e-6
        best = np.argsort(-reference)[:5]
        for alternative, token_id in zip(top, best):
            assert abs(alternative["logprob"] - reference[token_id]) < 2e-3
        logits = smollm2_reference.decode(token)

    chunks = api_page.evaluate(STREAM, request)
    streamed = [entry for chunk in chunks for choice in chunk["choices"] if choice["logprobs"]
                for entry in choice["logprobs"]["content"]]
    assert [e["bytes"] for e in streamed] == [e["bytes"] for e in content]
    # The same request again reuses the prompt's KV cache and computes its last token with the decode kernel rather
    # than the prefill one: in the relaxed-SIMD library (multiplies and adds fused) their float32 rounding differs,
    # measured 1.1e-5 on the first answer token's logprob, 1e-7 after it.
    assert all(abs(a["logprob"] - b["logprob"]) < 1e-4 for a, b in zip(streamed, content))
    plain = {key: value for key, value in request.items() if key not in ("logprobs", "top_logprobs")}
    assert create(api_page, plain)["choices"][0]["logprobs"] is None


def test_n_choices_come_from_one_prefill_and_a_seed_repeats_them(api_page):
    request = {"messages": [{"role": "user", "content": "Name a colour."}], "n": 3, "seed": 1234,
               "temperature": 1.0, "top_p": 1, "max_tokens": 8}
    first = create(api_page, request)
    again = create(api_page, request)
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    texts = [c["message"]["content"] for c in first["choices"]]
    assert texts == [c["message"]["content"] for c in again["choices"]]
    assert len(set(texts)) > 1, texts
    for usage in (first["usage"], again["usage"]):  # the prompt's tokens not in the cache, prefilled once
        assert usage["extra"]["prefill_tokens"] == usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"]
        assert usage["completion_tokens"] >= 3

    chunks = api_page.evaluate(STREAM, request)
    streamed = ["", "", ""]
    for chunk in chunks:
        for choice in chunk["choices"]:
            streamed[choice["index"]] += choice["delta"].get("content", "")
    assert streamed == texts
    finishes = [(c["index"], c["finish_reason"]) for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]
    assert [index for index, _ in finishes] == [0, 1, 2]
    print(f"\nn=3: {texts}")


# JSON schemas of the kinds apps ask for: nested objects, arrays, enums, required fields, numbers, strings. The
# grammar keeps every token inside the schema, but a 135M model can repeat itself inside a string until max_tokens
# (then the JSON is cut short, finish_reason "length", as with OpenAI): maxLength bounds the strings it did that in.
SCHEMAS = [
    ("person", "Describe a person called Ada who is 36.", {
        "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": False}),
    ("city", "Give the capital of France and its population.", {
        "type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "number"}},
        "required": ["city", "population"]}),
    ("colour", "Pick a primary colour.", {
        "type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]}}, "required": ["colour"]}),
    ("flag", "Is the sky blue?", {
        "type": "object", "properties": {"answer": {"type": "boolean"}}, "required": ["answer"]}),
    ("tags", "List three fruits.", {
        "type": "object", "properties": {"fruits": {"type": "array", "items": {"type": "string"},
                                                    "minItems": 1, "maxItems": 3}},
        "required": ["fruits"]}),
    ("numbers", "Give three small prime numbers.", {
        "type": "object", "properties": {"primes": {"type": "array", "items": {"type": "integer"},
                                                    "minItems": 3, "maxItems": 3}},
        "required": ["primes"]}),
    ("address", "Write an address in Paris.", {
        "type": "object", "properties": {
            "street": {"type": "string"}, "city": {"type": "string"},
            "location": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                         "required": ["lat", "lon"]}},
        "required": ["street", "city", "location"]}),
    ("book", "Describe a famous book.", {
        "type": "object", "properties": {
            "title": {"type": "string"}, "author": {"type": "string"}, "year": {"type": "integer"},
            "genre": {"enum": ["fiction", "non-fiction", "poetry"]}},
        "required": ["title", "author", "year", "genre"]}),
    ("todo", "Make a to-do list with two items.", {
        "type": "object", "properties": {"items": {"type": "array", "maxItems": 2, "items": {
            "type": "object", "properties": {"task": {"type": "string"}, "done": {"type": "boolean"}},
            "required": ["task", "done"]}}},
        "required": ["items"]}),
    ("rating", "Rate the film Up from 1 to 5.", {
        "type": "object", "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["rating"]}),
    ("temperature", "What is the temperature of boiling water in Celsius?", {
        "type": "object", "properties": {"celsius": {"type": "number"}, "unit": {"const": "C"}},
        "required": ["celsius", "unit"]}),
    ("weekday", "Which day comes after Monday?", {
        "type": "object", "properties": {"day": {"enum": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                                          "Saturday", "Sunday"]}},
        "required": ["day"]}),
    ("optional", "Describe a cat.", {
        "type": "object", "properties": {"name": {"type": "string"}, "lives": {"type": "integer"}},
        "required": ["name"]}),
    ("nested", "Describe a company and its CEO.", {
        "type": "object", "properties": {
            "company": {"type": "object", "properties": {
                "name": {"type": "string"},
                "ceo": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                        "required": ["name", "age"]}},
                "required": ["name", "ceo"]}},
        "required": ["company"]}),
    ("matrix", "Write the 2x2 identity matrix.", {
        "type": "object", "properties": {"rows": {"type": "array", "minItems": 2, "maxItems": 2, "items": {
            "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}}}},
        "required": ["rows"]}),
    ("either", "Give a number or a word.", {
        "type": "object", "properties": {"value": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 12}]}},
        "required": ["value"]}),
    ("nullable", "Who was the first person on Mars?", {
        "type": "object", "properties": {"name": {"type": ["string", "null"]}}, "required": ["name"]}),
    ("refs", "Describe two points.", {
        "type": "object", "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer"},
                                                                                "y": {"type": "integer"}},
                                              "required": ["x", "y"]}},
        "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}}, "required": ["a", "b"]}),
    ("sentiment", "Classify the sentiment of: I love this!", {
        "type": "object", "properties": {"label": {"enum": ["positive", "negative", "neutral"]},
                                         "score": {"type": "number", "minimum": 0, "maximum": 1}},
        "required": ["label", "score"]}),
    ("list", "List two planets.", {
        "type": "array", "items": {"type": "string", "maxLength": 16}, "minItems": 2, "maxItems": 2}),
    ("event", "Describe a meeting tomorrow.", {
        "type": "object", "properties": {
            "title": {"type": "string", "maxLength": 40},
            "attendees": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 3},
            "priority": {"enum": ["low", "medium", "high"]}, "minutes": {"type": "integer"}},
        "required": ["title", "attendees", "priority", "minutes"]}),
    ("recipe", "Give a recipe for tea.", {
        "type": "object", "properties": {
            "name": {"type": "string"},
            "steps": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "maxLength": 60}}},
        "required": ["name", "steps"]}),
]

GENERATE_ALL = """async (cases) => {
    const results = [];
    for (const {name, prompt, schema} of cases) {
        const completion = await window.engine.chat.completions.create({
            messages: [{role: "user", content: prompt + " Answer in JSON."}], temperature: 0, max_tokens: 160,
            response_format: {type: "json_schema", json_schema: {name, schema, strict: true}}});
        results.push({text: completion.choices[0].message.content, finish: completion.choices[0].finish_reason,
                      usage: completion.usage});
    }
    return results;
}"""


def json_schema_verdicts(cases: list[dict]) -> list:
    """ajv's verdict on each {schema, text} (None: parses and validates), from web/test/json-schema-check.mjs."""
    checked = subprocess.run(["node", "test/json-schema-check.mjs"], input=json.dumps(cases).encode(), cwd=WEB,
                             check=True, capture_output=True)
    return json.loads(checked.stdout)


def test_json_schema_output_always_parses_and_validates(api_page):
    cases = [{"name": name, "prompt": prompt, "schema": schema} for name, prompt, schema in SCHEMAS]
    assert len(cases) >= 20
    results = api_page.evaluate(GENERATE_ALL, cases)
    verdicts = json_schema_verdicts([{"schema": c["schema"], "text": r["text"]} for c, r in zip(cases, results)])
    for case, result, verdict in zip(cases, results, verdicts):
        print(f"\n{case['name']}: {result['text']}  ({result['finish']}, grammar "
              f"{result['usage']['extra']['grammar_init_s'] * 1000:.0f} ms)", end="")
        assert result["finish"] == "stop", (case["name"], result)
        assert verdict is None, (case["name"], result["text"], verdict)


def test_json_object_streams_a_json_object(api_page):
    chunks = api_page.evaluate(STREAM, {
        "messages": [{"role": "user", "content": 'What is 2 + 2? Reply with a JSON object {"answer": ...}.'}],
        "temperature": 0, "max_tokens": 96,
        "response_format": {"type": "json_object"}, "stream_options": {"include_usage": True}})
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == ["stop"], text
    assert isinstance(json.loads(text), dict)


def test_a_schema_that_cannot_be_compiled_is_an_invalid_request_naming_it(api_page):
    error = error_of(api_page, {"messages": [{"role": "user", "content": "Hi"}], "response_format": {
        "type": "json_schema", "json_schema": {"name": "bad", "schema": {"type": "no-such-type"}}}})
    assert error["name"] == "InvalidRequestError"
    assert error["body"]["param"] == "response_format.json_schema.schema"
    assert error["body"]["type"] == "invalid_request_error"
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "no-such-type"}}}
    error = error_of(api_page, {"messages": [{"role": "user", "content": "Hi"}], "tools": [bad_tool]})
    assert (error["name"], error["body"]["param"]) == ("InvalidRequestError", "tools")
    # the engine (and its grammar compiler) still work
    ok = create(api_page, {"messages": [{"role": "user", "content": "Pick a colour."}], "temperature": 0,
                           "max_tokens": 32, "response_format": {"type": "json_schema", "json_schema": {
                               "name": "c", "schema": SCHEMAS[2][2]}}})
    assert json.loads(ok["choices"][0]["message"]["content"])["colour"] in ("red", "green", "blue")


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "The current time in a time zone",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 40}}, "required": ["zone"]}}}


def streamed_tool_calls(chunks) -> list[dict]:
    """tool_calls put together from stream deltas, as the SDK's ChatCompletionStream does."""
    calls = []
    for chunk in chunks:
        for delta_call in (chunk["choices"][0]["delta"].get("tool_calls") or []) if chunk["choices"] else []:
            if delta_call["index"] == len(calls):
                calls.append({"id": delta_call["id"], "type": delta_call["type"],
                              "function": {"name": delta_call["function"]["name"], "arguments": ""}})
            calls[delta_call["index"]]["function"]["arguments"] += delta_call["function"]["arguments"]
    return calls


def test_a_tool_call_round_trip(api_page):
    """The model calls a function (its arguments valid against its schema), the result comes back as a "tool"
    message, and the model answers; SmolLM2's template takes no tools, so this is the documented fallback."""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    request = {"messages": messages, "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": "required", "temperature": 0,
               "max_tokens": 64}
    choice = create(api_page, request)["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] in ("get_weather", "get_time")
    schema = {"get_weather": WEATHER_TOOL, "get_time": TIME_TOOL}[call["function"]["name"]]["function"]["parameters"]
    assert json_schema_verdicts([{"schema": schema, "text": call["function"]["arguments"]}]) == [None]

    chunks = api_page.evaluate(STREAM, request)
    [streamed] = streamed_tool_calls(chunks)
    assert streamed["function"] == call["function"]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["tool_calls"]

    history = [*messages, choice["message"], {"role": "tool", "tool_call_id": call["id"],
                                              "content": json.dumps({"sky": "sunny", "temperature": 21})}]
    final = create(api_page, {"messages": history, "tools": [WEATHER_TOOL, TIME_TOOL], "temperature": 0,
                              "max_tokens": 48})["choices"][0]  # tool_choice "auto": it may call again, or answer
    print(f"\ncall: {call['function']}; answer: {final['message']['content']!r} ({final['finish_reason']})")
    assert final["finish_reason"] == "stop" and "tool_calls" not in final["message"]
    assert "sunny" in final["message"]["content"]
    unconstrained = create(api_page, {"messages": history, "tools": [WEATHER_TOOL], "tool_choice": "none",
                                      "temperature": 0, "max_tokens": 48})["choices"][0]
    assert "tool_calls" not in unconstrained["message"] and unconstrained["message"]["content"].strip()


def test_a_named_tool_choice_calls_that_function(api_page):
    choice = create(api_page, {
        "messages": [{"role": "user", "content": "What time is it in Tokyo?"}], "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}}, "temperature": 0,
        "max_tokens": 48})["choices"][0]
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_time" and choice["finish_reason"] == "tool_calls"
    assert json_schema_verdicts([{"schema": TIME_TOOL["function"]["parameters"],
                                  "text": call["function"]["arguments"]}]) == [None]


SDK = """async ([path, request, tool]) => {
    const { OpenAI } = await import(path);
    const client = new OpenAI({ fetch: window.engineModule.engineFetch(window.engine), apiKey: "local",
                                baseURL: "http://tab.local/v1", dangerouslyAllowBrowser: true });
    const completion = await client.chat.completions.create(request);
    const chunks = [];
    for await (const chunk of await client.chat.completions.create({...request, stream: true,
                                                                     stream_options: {include_usage: true}})) {
        chunks.push(chunk);
    }
    let error = null;
    try {
        await client.chat.completions.create({...request, temperature: 7});
    } catch (e) {
        error = {name: e.constructor.name, status: e.status, param: e.param, type: e.type, code: e.code};
    }
    let streamError = null;
    try {
        for await (const chunk of await client.chat.completions.create({...request, stream: true, top_p: -1})) {}
    } catch (e) {
        streamError = {name: e.constructor.name, status: e.status, param: e.param};
    }
    // the SDK's stream helper puts the tool-call deltas together itself
    const toolCall = await client.chat.completions.stream({model: request.model, messages: request.messages,
        temperature: 0, max_tokens: 48, tools: [tool], tool_choice: "required"}).finalChatCompletion();
    return {completion, chunks, error, streamError, toolCall};
}"""


def test_the_official_openai_client_runs_on_the_engine(api_page, smollm2_greedy_case):
    request = {"model": "smollm2-135m-instruct-gguf", "messages": smollm2_greedy_case["messages"], "temperature": 0,
               "max_tokens": 4, "logprobs": True, "top_logprobs": 2}
    result = api_page.evaluate(SDK, [DEPS_PATH, request, WEATHER_TOOL])
    completion = result["completion"]
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "The capital of France"
    assert completion["choices"][0]["finish_reason"] == "length"
    assert len(completion["choices"][0]["logprobs"]["content"]) == 4
    chunks = result["chunks"]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "The capital of France"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert result["error"] == {"name": "BadRequestError", "status": 400, "param": "temperature",
                               "type": "invalid_request_error", "code": "invalid_value"}
    assert result["streamError"] == {"name": "BadRequestError", "status": 400, "param": "top_p"}
    tool_choice = result["toolCall"]["choices"][0]
    assert tool_choice["finish_reason"] == "tool_calls"
    [call] = tool_choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and call["id"].startswith("call_")
    assert json_schema_verdicts([{"schema": WEATHER_TOOL["function"]["parameters"],
                                  "text": call["function"]["arguments"]}]) == [None]
