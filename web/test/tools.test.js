import { test } from "node:test";
import assert from "node:assert/strict";
import { ToolCallStream, parseToolCalls, templateInput, toolCallGrammar } from "../src/engine/tools.js";
import { ChatTemplate } from "../src/engine/prompt.js";
import { collectCompletion, completionMeta, toolCallChunks, usageChunk } from "../src/engine/completion.js";

const WEATHER = { name: "get_weather", description: "Weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } };
const TIME = { name: "get_time", description: "", parameters: { type: "object", properties: {} } };
const HISTORY = [
  { role: "user", content: "Weather in Paris?" },
  { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' }] },
  { role: "tool", content: '{"sky":"sunny"}', toolCallId: "call_1" },
];

test("a call is read back from the output, with the text before it", () => {
  const functions = [WEATHER, TIME];
  assert.deepEqual(parseToolCalls('{"name": "get_weather", "arguments": {"city": "Paris {1}"}}', functions),
    { content: "", calls: [{ name: "get_weather", arguments: '{"city":"Paris {1}"}' }] });
  assert.deepEqual(parseToolCalls('Let me check. {"name": "get_time", "arguments": {}}', functions),
    { content: "Let me check. ", calls: [{ name: "get_time", arguments: "{}" }] });
  assert.deepEqual(parseToolCalls("It is sunny.", functions), { content: "It is sunny.", calls: [] });
  // not a call: an unknown function, or JSON cut short
  for (const text of ['{"name": "other", "arguments": {}}', '{"name": "get_time", "arguments": {']) {
    assert.deepEqual(parseToolCalls(text, functions), { content: text, calls: [] });
  }
});

test("the grammar: text or a call with auto, exactly one call otherwise, of the named function only", () => {
  const auto = toolCallGrammar({ functions: [WEATHER, TIME], choice: "auto" }).format;
  assert.deepEqual([auto.type, auto.triggers, auto.at_least_one, auto.stop_after_first],
    ["triggered_tags", ['{"name": '], false, true]);
  assert.deepEqual(auto.tags[0], { type: "tag", begin: '{"name": "get_weather", "arguments": ',
    content: { type: "json_schema", json_schema: WEATHER.parameters }, end: "}" });
  assert.equal(toolCallGrammar({ functions: [WEATHER, TIME], choice: "required" }).format.at_least_one, true);
  const named = toolCallGrammar({ functions: [WEATHER, TIME], choice: { name: "get_time" } }).format;
  assert.deepEqual(named.tags.map((t) => t.begin), ['{"name": "get_time", "arguments": ']);
});

test("fallback (a template without tools): a system message lists the functions; calls and results become text", () => {
  const { messages, tools } = templateInput(HISTORY, { functions: [WEATHER], choice: "auto" }, false);
  assert.equal(tools, null);
  assert.equal(messages[0].role, "system");
  assert.ok(messages[0].content.includes(JSON.stringify(WEATHER)));
  assert.ok(messages[0].content.includes('{"name": <the function\'s name>, "arguments": <its arguments>}'));
  assert.deepEqual(messages.slice(1), [
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: '{"name": "get_weather", "arguments": {"city":"Paris"}}' },
    { role: "user", content: 'The function get_weather returned: {"sky":"sunny"}\nUse this result to answer my '
      + "question in plain text." },
  ]);
  const withSystem = templateInput([{ role: "system", content: "Be brief." }, ...HISTORY], { functions: [WEATHER],
    choice: "auto" }, false).messages;
  assert.match(withSystem[0].content, /^Be brief\.\n\nYou can call these functions:/);
  assert.equal(templateInput(HISTORY, null, false).messages[0].role, "user"); // tool_choice "none": no listing
});

test("a template that takes tools gets them, and the history in Hugging Face's shape", () => {
  const template = new ChatTemplate({ chat_template: "{% if tools %}<tools>{{ tools | tojson }}</tools>{% endif %}"
    + "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}"
    + "<call>{{ c.function.name }} {{ c.function.arguments | tojson }}</call>{% endfor %}{% endif %}"
    + "{% if m.tool_call_id %} ({{ m.tool_call_id }}){% endif %}{% endfor %}" });
  assert.equal(template.takesTools, true);
  const { messages, tools } = templateInput(HISTORY, { functions: [WEATHER], choice: "auto" }, true);
  assert.deepEqual(tools, [{ type: "function", function: WEATHER }]);
  const prompt = template.render(messages, tools);
  assert.ok(prompt.startsWith('<tools>[{"type": "function", "function": {"name": "get_weather"'), prompt);
  assert.ok(prompt.includes('<assistant><call>get_weather {"city": "Paris"}</call><tool>{"sky":"sunny"} (call_1)'), prompt);
  assert.equal(new ChatTemplate({ chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" }).takesTools, false);
});

test("tool calls stream as OpenAI's deltas and collect into message.tool_calls", () => {
  const meta = completionMeta("m");
  const chunks = toolCallChunks(meta, 0, { content: "", calls: [{ name: "get_weather", arguments: '{"city":"Paris"}' }] },
    null, "stop");
  assert.deepEqual(chunks.map((c) => c.choices[0].delta.tool_calls?.[0].function), [
    { name: "get_weather", arguments: "" }, { arguments: '{"city":"Paris"}' }, undefined]);
  assert.match(chunks[0].choices[0].delta.tool_calls[0].id, /^call_[0-9a-f]{24}$/);
  assert.equal(chunks[2].choices[0].finish_reason, "tool_calls");
  const completion = collectCompletion([...chunks, usageChunk(meta, {})]);
  assert.deepEqual(completion.choices[0].message, { role: "assistant", content: null, tool_calls: [
    { id: chunks[0].choices[0].delta.tool_calls[0].id, type: "function",
      function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] });
  const text = toolCallChunks(meta, 1, { content: "Sunny.", calls: [] }, null, "stop");
  assert.deepEqual(text.map((c) => [c.choices[0].delta, c.choices[0].finish_reason]), [[{ content: "Sunny." }, null],
    [{}, "stop"]]);
});

test("text that cannot be part of a call streams at once; a call is held and read at the end", () => {
  const functions = [WEATHER, TIME];
  const answer = new ToolCallStream(functions);
  assert.deepEqual(["It is", " sunny {", "ok} {\"na", "p"].map((t) => answer.push(t)),
    ["It is", " sunny ", "{ok} ", '{"nap']); // "{" and "{\"na" may start a call: held until they cannot
  assert.deepEqual(answer.finish(), { content: "", calls: [] });
  const call = new ToolCallStream(functions);
  assert.deepEqual(['Let me see. {"name', '": "get_time", "argu', 'ments": {}}'].map((t) => call.push(t)),
    ["Let me see. ", "", ""]);
  assert.deepEqual(call.finish(), { content: "", calls: [{ name: "get_time", arguments: "{}" }] });
  const cut = new ToolCallStream(functions); // max_tokens inside the call: the held text comes out as text
  cut.push('{"name": "get_time", "arg');
  assert.deepEqual(cut.finish(), { content: '{"name": "get_time", "arg', calls: [] });
});
