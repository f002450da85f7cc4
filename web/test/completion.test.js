import { test } from "node:test";
import assert from "node:assert/strict";
import {
  collectCompletion, collectTextCompletion, completionMeta, choiceChunk, textChunk, usageChunk, usageOf,
} from "../src/engine/completion.js";

const RESULT = {
  finishReasons: ["stop"], promptTokens: 40, cachedTokens: 30, prefillTokens: 10, completionTokens: 5,
  timeToFirstTokenS: 2, prefillS: 2, decodeS: 4, decodeSteps: 4,
};

test("usage: OpenAI fields, cached prompt tokens, timings", () => {
  assert.deepEqual(usageOf(RESULT), {
    prompt_tokens: 40, completion_tokens: 5, total_tokens: 45, prompt_tokens_details: { cached_tokens: 30 },
    extra: { prefill_tokens: 10, time_to_first_token_s: 2, prefill_tokens_per_s: 5, decode_tokens_per_s: 1, e2e_latency_s: 6 },
  });
  assert.equal(usageOf({ ...RESULT, decodeS: 0, decodeSteps: 0 }).extra.decode_tokens_per_s, 0);
});

test("chunks and the completion collected from them have OpenAI's shape", () => {
  const meta = completionMeta("m");
  assert.match(meta.id, /^chatcmpl-/);
  assert.ok(Number.isInteger(meta.created));
  const chunks = [
    choiceChunk(meta, 0, { role: "assistant", content: "" }), choiceChunk(meta, 0, { content: "Hel" }),
    choiceChunk(meta, 0, { content: "lo" }), choiceChunk(meta, 0, {}, { finishReason: "length" }),
    usageChunk(meta, usageOf(RESULT)),
  ];
  assert.deepEqual(chunks[1], {
    id: meta.id, created: meta.created, model: "m", object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { content: "Hel" }, logprobs: null, finish_reason: null }],
  });
  assert.deepEqual(chunks[4].choices, []);
  assert.deepEqual(collectCompletion(chunks), {
    id: meta.id, object: "chat.completion", created: meta.created, model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, logprobs: null, finish_reason: "length" }],
    usage: usageOf(RESULT),
  });
});

test("several choices, streamed one after the other, are collected by index with their logprobs", () => {
  const meta = completionMeta("m");
  const lp = (token) => ({ token, logprob: -1, bytes: [...Buffer.from(token)], top_logprobs: [] });
  const chunks = [
    choiceChunk(meta, 0, { role: "assistant", content: "" }),
    choiceChunk(meta, 0, { content: "ab" }, { logprobs: [lp("a"), lp("b")] }),
    choiceChunk(meta, 0, {}, { finishReason: "stop" }),
    choiceChunk(meta, 1, { role: "assistant", content: "" }),
    choiceChunk(meta, 1, { content: "c" }, { logprobs: [lp("c")] }),
    choiceChunk(meta, 1, { content: "" }, { logprobs: [lp("d")] }),
    choiceChunk(meta, 1, {}, { finishReason: "length" }),
    usageChunk(meta, usageOf(RESULT)),
  ];
  assert.deepEqual(chunks[1].choices[0].logprobs, { content: [lp("a"), lp("b")], refusal: null });
  assert.deepEqual(collectCompletion(chunks).choices, [
    { index: 0, message: { role: "assistant", content: "ab" }, logprobs: { content: [lp("a"), lp("b")], refusal: null },
      finish_reason: "stop" },
    { index: 1, message: { role: "assistant", content: "c" }, logprobs: { content: [lp("c"), lp("d")], refusal: null },
      finish_reason: "length" },
  ]);
});

test("a legacy completion's chunks and the Completion collected from them have OpenAI's shape", () => {
  const meta = completionMeta("m", "cmpl");
  assert.match(meta.id, /^cmpl-/);
  const usage = usageOf(RESULT);
  const chunks = [textChunk(meta, 0, " Paris"), textChunk(meta, 0, "."), textChunk(meta, 0, "", "length"),
    usageChunk(meta, usage, "text_completion")];
  assert.deepEqual(chunks[0], { ...meta, object: "text_completion",
    choices: [{ index: 0, text: " Paris", logprobs: null, finish_reason: null }] });
  assert.deepEqual(collectTextCompletion(chunks), {
    ...meta, object: "text_completion", choices: [{ index: 0, text: " Paris.", logprobs: null, finish_reason: "length" }],
    usage,
  });
});
