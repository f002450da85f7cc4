import { test } from "node:test";
import assert from "node:assert/strict";
import { generate } from "../src/engine/generation.js";
import { seededRandom } from "../src/engine/sampler.js";
import { BYTES, END, ScriptedModel } from "./helpers.js";

const GREEDY = { temperature: 0, topP: 1, frequencyPenalty: 0, presencePenalty: 0, logitBias: [] };

/** A model that, after the prompt, writes `answer` byte by byte and then END. */
function writer(answer, promptLength, options) {
  const bytes = BYTES.bytesOf(answer);
  return new ScriptedModel((tokens) => bytes[tokens.length - promptLength] ?? END, options);
}

async function run(model, promptIds, overrides = {}) {
  const texts = [];
  const result = await generate({
    model, promptIds, maxTokens: 100, sampling: GREEDY, random: seededRandom(0), stopTokenIds: new Set([END]),
    stopStrings: [], decodeText: BYTES.decode, isAborted: () => false, onText: (t) => texts.push(t),
    ...overrides,
  });
  return { result, text: texts.join(""), texts };
}

test("greedy generation until the stop token, which is counted but not emitted", async () => {
  const prompt = [1, 2, 3, 4, 5];
  const model = writer("Paris ✓", prompt.length);
  const { result, text, texts } = await run(model, prompt);
  assert.equal(text, "Paris ✓");
  assert.ok(texts.every((t) => !t.includes("\uFFFD")));
  const bytes = BYTES.bytesOf("Paris ✓").length;
  assert.equal(result.finishReason, "stop");
  assert.equal(result.completionTokens, bytes + 1);
  assert.deepEqual({ prompt: result.promptTokens, cached: result.cachedTokens, prefilled: result.prefillTokens },
    { prompt: 5, cached: 0, prefilled: 5 });
  assert.equal(result.decodeSteps, bytes); // the stop token is never decoded
  // prefill in chunks of 4
  assert.deepEqual(model.calls.filter(([op]) => op === "prefill"), [["prefill", 4], ["prefill", 1]]);
  assert.ok(result.timeToFirstTokenS >= 0 && result.prefillS >= 0 && result.decodeS >= 0);
});

test("max_tokens ends with finish_reason length", async () => {
  const { result, text } = await run(writer("abcdef", 2), [1, 2], { maxTokens: 3 });
  assert.deepEqual([result.finishReason, result.completionTokens, text], ["length", 3, "abc"]);
});

test("a stop string ends generation and is not emitted", async () => {
  const { result, text } = await run(writer("Hello. ### more", 1), [9], { stopStrings: ["###"] });
  assert.deepEqual([result.finishReason, text], ["stop", "Hello. "]);
});

test("a partial stop string at max_tokens is released (it was not a stop)", async () => {
  const { result, text } = await run(writer("ab#", 1), [9], { stopStrings: ["##"], maxTokens: 3 });
  assert.deepEqual([result.finishReason, text], ["length", "ab#"]);
});

test("abort between steps ends with finish_reason abort, keeping the text so far", async () => {
  // checked before each prefill chunk, after the prefill and before each decode step: the 4th check is after "b"
  let checks = 0;
  const { result, text } = await run(writer("abcdef", 1), [9], { isAborted: () => ++checks > 3 });
  assert.deepEqual([result.finishReason, text], ["abort", "ab"]);
  const before = await run(writer("abc", 1), [9], { isAborted: () => true });
  assert.deepEqual([before.result.finishReason, before.result.completionTokens, before.text], ["abort", 0, ""]);
  // an abort that arrives during the (last) prefill chunk: no token is sampled
  let prefillChecks = 0;
  const during = await run(writer("abc", 1), [9], { isAborted: () => ++prefillChecks > 1 });
  assert.deepEqual([during.result.finishReason, during.result.completionTokens, during.text], ["abort", 0, ""]);
});

test("KV reuse: a conversation extending the last one prefills only its new tokens", async () => {
  const prompt1 = [1, 2, 3];
  const model = writer("ok", prompt1.length, { prefillChunkSize: 100 });
  const first = await run(model, prompt1);
  assert.equal(first.text, "ok");
  // the cache now holds the prompt and the decoded answer tokens (not the final stop token)
  const answer = BYTES.bytesOf("ok");
  assert.deepEqual(model.tokens, [...prompt1, ...answer]);
  const prompt2 = [...prompt1, ...answer, END, 7, 8];
  model.next = () => END;
  model.calls = [];
  const second = await run(model, prompt2);
  assert.deepEqual([second.result.cachedTokens, second.result.prefillTokens], [5, 3]);
  assert.deepEqual(model.calls, [["truncate", 5], ["prefill", 3]]);
  // a different conversation: only the common prefix is kept
  model.calls = [];
  const third = await run(model, [1, 2, 42]);
  assert.deepEqual([third.result.cachedTokens, third.result.prefillTokens], [2, 1]);
  assert.deepEqual(model.calls, [["truncate", 2], ["prefill", 1]]);
});

test("penalties and logit_bias steer the choice; a seed makes sampling repeatable", async () => {
  // the model always prefers "a" (10) over everything else (0): a bias of -100 on "a" makes it pick the lowest id
  const a = BYTES.bytesOf("a")[0];
  const biased = await run(writer("aaaa", 1), [9], { maxTokens: 2, sampling: { ...GREEDY, logitBias: [[a, -100]] } });
  assert.equal(biased.text, "\0\0");
  // frequency penalty 2 per repeat: after 5 "a"s its logit ties with the rest (argmax: the lowest id, 0),
  // and once 0 was used it is penalized too
  const penalized = await run(writer("aaaaaaaa", 1), [9], { maxTokens: 7, sampling: { ...GREEDY, frequencyPenalty: 2 } });
  assert.equal(penalized.text, "aaaaa\0\x01");
  const sampled = (seed) => run(writer("aaaaaaaaaaaa", 1), [9], {
    maxTokens: 12, random: seededRandom(seed), sampling: { ...GREEDY, temperature: 5, topP: 1 },
  }).then((r) => r.text);
  assert.equal(await sampled(3), await sampled(3));
  assert.notEqual(await sampled(3), await sampled(4));
});
