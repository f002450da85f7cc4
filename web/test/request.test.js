import { test } from "node:test";
import assert from "node:assert/strict";
import { validateChatRequest, validateCompletionRequest } from "../src/engine/request.js";
import { InvalidRequestError } from "../src/engine/errors.js";

const MODEL = { vocabSize: 100, temperature: 0.2, topP: 0.9 };
const messages = [{ role: "user", content: "Hi" }];
const valid = (extra) => validateChatRequest({ messages, ...extra }, MODEL);

function rejects(extra, param, code = "invalid_value") {
  assert.throws(() => validateChatRequest(extra, MODEL), (error) => {
    assert.ok(error instanceof InvalidRequestError, `${error}`);
    assert.deepEqual({ param: error.param, code: error.code, type: error.type },
      { param, code, type: "invalid_request_error" });
    assert.equal(error.body.message, error.message);
    return true;
  });
}

test("defaults: model's sampling defaults, no limits, no stops, not streaming", () => {
  assert.deepEqual(valid({}), {
    messages, maxTokens: null, temperature: 0.2, topP: 0.9, seed: null, stop: [], frequencyPenalty: 0,
    presencePenalty: 0, logitBias: [], n: 1, topLogprobs: null, responseFormat: null, tools: null, stream: false,
    includeUsage: false,
  });
});

test("every supported field is normalized", () => {
  const r = valid({
    model: "x", max_completion_tokens: 5, temperature: 0, top_p: 1, seed: -3, stop: "END", frequency_penalty: 1.5,
    presence_penalty: -2, logit_bias: { 7: -100, 42: 3 }, n: 3, logprobs: true, top_logprobs: 20,
    response_format: { type: "json_schema", json_schema: { name: "a-b_1", schema: { type: "object" }, strict: true } },
    stream: true, stream_options: { include_usage: true },
  });
  assert.deepEqual(r, {
    messages, maxTokens: 5, temperature: 0, topP: 1, seed: -3, stop: ["END"], frequencyPenalty: 1.5,
    presencePenalty: -2, logitBias: [[7, -100], [42, 3]], n: 3, topLogprobs: 20,
    responseFormat: { type: "json_schema", name: "a-b_1", schema: '{"type":"object"}' }, tools: null, stream: true,
    includeUsage: true,
  });
  assert.equal(valid({ logprobs: true }).topLogprobs, 0);
  assert.equal(valid({ logprobs: false }).topLogprobs, null);
  assert.deepEqual(valid({ response_format: { type: "json_object" } }).responseFormat, { type: "json_object" });
  assert.equal(valid({ response_format: { type: "text" } }).responseFormat, null);
  assert.equal(valid({ max_tokens: 9 }).maxTokens, 9);
  assert.equal(valid({ max_tokens: 9, max_completion_tokens: 9 }).maxTokens, 9);
  assert.deepEqual(valid({ stop: ["a", "bc"] }).stop, ["a", "bc"]);
  assert.equal(valid({ temperature: null, seed: null }).temperature, 0.2); // null means "not given", as OpenAI
});

test("multi-turn messages and text content parts", () => {
  const r = validateChatRequest({ messages: [
    { role: "system", content: "Be brief." }, { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
    { role: "assistant", content: "ok" }, { role: "user", content: "more" },
  ] }, MODEL);
  assert.deepEqual(r.messages.map((m) => m.content), ["Be brief.", "ab", "ok", "more"]);
});

test("invalid arguments name their parameter", () => {
  rejects(null, null);
  rejects({}, "messages", "missing_required_parameter");
  rejects({ messages: [] }, "messages");
  rejects({ messages: ["hi"] }, "messages[0]");
  rejects({ messages: [{ role: "robot", content: "x" }] }, "messages[0].role");
  rejects({ messages: [{ role: "tool", content: "x", tool_call_id: "a" }] }, "messages[0].tool_call_id");
  rejects({ messages: [{ role: "user" }] }, "messages[0].content");
  rejects({ messages: [{ role: "user", content: [{ type: "image_url" }] }] }, "messages[0].content[0]");
  rejects({ messages, n: 0 }, "n");
  rejects({ messages, n: 129 }, "n");
  rejects({ messages, n: 1.5 }, "n");
  rejects({ messages, logprobs: 1 }, "logprobs");
  rejects({ messages, top_logprobs: 2 }, "top_logprobs"); // needs logprobs: true
  rejects({ messages, logprobs: true, top_logprobs: 21 }, "top_logprobs");
  rejects({ messages, response_format: "json" }, "response_format");
  rejects({ messages, response_format: { type: "yaml" } }, "response_format.type");
  rejects({ messages, response_format: { type: "json_schema" } }, "response_format.json_schema",
    "missing_required_parameter");
  rejects({ messages, response_format: { type: "json_schema", json_schema: { schema: {} } } },
    "response_format.json_schema.name");
  rejects({ messages, response_format: { type: "json_schema", json_schema: { name: "x", schema: [] } } },
    "response_format.json_schema.schema");
  rejects({ messages, response_format: { type: "json_schema", json_schema: { name: "x", strict: "yes" } } },
    "response_format.json_schema.strict");
  rejects({ messages, temperature: 2.5 }, "temperature");
  rejects({ messages, temperature: "1" }, "temperature");
  rejects({ messages, top_p: -0.1 }, "top_p");
  rejects({ messages, max_tokens: 0 }, "max_tokens");
  rejects({ messages, max_completion_tokens: 1.5 }, "max_completion_tokens");
  rejects({ messages, max_tokens: 3, max_completion_tokens: 4 }, "max_completion_tokens");
  rejects({ messages, seed: 0.5 }, "seed");
  rejects({ messages, stop: "" }, "stop");
  rejects({ messages, stop: ["a", "b", "c", "d", "e"] }, "stop");
  rejects({ messages, stop: [1] }, "stop");
  rejects({ messages, frequency_penalty: 2.1 }, "frequency_penalty");
  rejects({ messages, presence_penalty: -3 }, "presence_penalty");
  rejects({ messages, logit_bias: { 100: 1 } }, "logit_bias"); // vocabulary is 0..99
  rejects({ messages, logit_bias: { abc: 1 } }, "logit_bias");
  rejects({ messages, logit_bias: { 5: 101 } }, "logit_bias.5");
  rejects({ messages, stream: "yes" }, "stream");
  rejects({ messages, stream_options: { include_usage: true } }, "stream_options");
  rejects({ messages, stream: true, stream_options: { include_usage: 1 } }, "stream_options.include_usage");
  rejects({ messages, stream: true, stream_options: { other: 1 } }, "stream_options.other", "unsupported_parameter");
  rejects({ messages, model: 3 }, "model");
  rejects({ messages, tools: [] }, "tools");
  rejects({ messages, maxTokens: 3 }, "maxTokens", "unsupported_parameter");
});

const WEATHER = { type: "function", function: { name: "get_weather", description: "Weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } };
const CALL = { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } };

test("tools and tool_choice, and tool calls and results in the history", () => {
  const functions = [{ name: "get_weather", description: "Weather in a city", parameters: WEATHER.function.parameters }];
  assert.deepEqual(valid({ tools: [WEATHER] }).tools, { functions, choice: "auto" });
  assert.deepEqual(valid({ tools: [WEATHER], tool_choice: "required" }).tools, { functions, choice: "required" });
  assert.deepEqual(valid({ tools: [WEATHER], tool_choice: { type: "function", function: { name: "get_weather" } } }).tools,
    { functions, choice: { name: "get_weather" } });
  assert.equal(valid({ tools: [WEATHER], tool_choice: "none" }).tools, null);
  const bare = valid({ tools: [{ type: "function", function: { name: "now" } }] }).tools.functions[0];
  assert.deepEqual(bare, { name: "now", description: "", parameters: { type: "object", properties: {} } });
  const history = validateChatRequest({ messages: [
    ...messages, { role: "assistant", content: null, tool_calls: [CALL] },
    { role: "tool", tool_call_id: "call_1", content: '{"sky":"sunny"}' },
  ] }, MODEL).messages;
  assert.deepEqual(history.slice(1), [
    { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
    { role: "tool", content: '{"sky":"sunny"}', toolCallId: "call_1" },
  ]);
});

test("invalid tools, tool_choice and tool messages name their parameter", () => {
  rejects({ messages, tools: "get_weather" }, "tools");
  rejects({ messages, tools: [{ type: "code", function: {} }] }, "tools[0]");
  rejects({ messages, tools: [{ type: "function", function: { name: "a b" } }] }, "tools[0].function.name");
  rejects({ messages, tools: [{ type: "function", function: { name: "f", parameters: [] } }] }, "tools[0].function.parameters");
  rejects({ messages, tools: [WEATHER, WEATHER] }, "tools");
  rejects({ messages, tool_choice: "required" }, "tool_choice");
  rejects({ messages, tools: [WEATHER], tool_choice: "always" }, "tool_choice");
  rejects({ messages, tools: [WEATHER], tool_choice: { type: "function", function: { name: "other" } } }, "tool_choice");
  rejects({ messages, tools: [WEATHER], response_format: { type: "json_object" } }, "response_format");
  const call = (fn) => ({ messages: [...messages, { role: "assistant", tool_calls: [{ ...CALL, function: fn }] }] });
  rejects(call({ name: "get_weather", arguments: "{" }), "messages[1].tool_calls[0].function.arguments");
  rejects(call({ name: "get_weather" }), "messages[1].tool_calls[0]");
  rejects({ messages: [...messages, { role: "assistant", tool_calls: [] }] }, "messages[1].tool_calls");
  rejects({ messages: [...messages, { role: "tool", tool_call_id: "call_1", content: "x" }] }, "messages[1].tool_call_id");
});

test("a legacy completion: the prompt, OpenAI's default of 16 tokens, the chat-only features off", () => {
  assert.deepEqual(validateCompletionRequest({ prompt: "Once", stop: ["\n"], seed: 1, stream: true }, MODEL), {
    messages: null, prompt: "Once", maxTokens: 16, temperature: 0.2, topP: 0.9, seed: 1, stop: ["\n"],
    frequencyPenalty: 0, presencePenalty: 0, logitBias: [], n: 1, topLogprobs: null, responseFormat: null, tools: null,
    stream: true, includeUsage: false,
  });
  assert.equal(validateCompletionRequest({ prompt: "Once", max_tokens: 3 }, MODEL).maxTokens, 3);
});

test("a legacy completion without a prompt, or with a chat's fields, is refused", () => {
  const refused = (request, param, code = "invalid_value") => assert.throws(
    () => validateCompletionRequest(request, MODEL),
    (error) => error instanceof InvalidRequestError && error.param === param && error.code === code);
  refused({}, "prompt", "missing_required_parameter");
  refused({ prompt: "" }, "prompt");
  refused({ prompt: ["a", "b"] }, "prompt");
  refused({ prompt: "a", messages }, "messages", "unsupported_parameter");
  refused({ prompt: "a", tools: [] }, "tools", "unsupported_parameter");
  refused({ prompt: "a", temperature: 9 }, "temperature");
});
