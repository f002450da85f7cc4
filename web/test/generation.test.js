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
  assert.equal(result.finishReasons[0], "stop");
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
  assert.deepEqual([result.finishReasons[0], result.completionTokens, text], ["length", 3, "abc"]);
});

test("a stop string ends generation and is not emitted", async () => {
  const { result, text } = await run(writer("Hello. ### more", 1), [9], { stopStrings: ["###"] });
  assert.deepEqual([result.finishReasons[0], text], ["stop", "Hello. "]);
});

test("a partial stop string at max_tokens is released (it was not a stop)", async () => {
  const { result, text } = await run(writer("ab#", 1), [9], { stopStrings: ["##"], maxTokens: 3 });
  assert.deepEqual([result.finishReasons[0], text], ["length", "ab#"]);
});

test("abort between steps ends with finish_reason abort, keeping the text so far", async () => {
  // checked before each prefill chunk, after the prefill and before each decode step: the 4th check is after "b"
  let checks = 0;
  const { result, text } = await run(writer("abcdef", 1), [9], { isAborted: () => ++checks > 3 });
  assert.deepEqual([result.finishReasons[0], text], ["abort", "ab"]);
  const before = await run(writer("abc", 1), [9], { isAborted: () => true });
  assert.deepEqual([before.result.finishReasons[0], before.result.completionTokens, before.text], ["abort", 0, ""]);
  // an abort that arrives during the (last) prefill chunk: no token is sampled
  let prefillChecks = 0;
  const during = await run(writer("abc", 1), [9], { isAborted: () => ++prefillChecks > 1 });
  assert.deepEqual([during.result.finishReasons[0], during.result.completionTokens, during.text], ["abort", 0, ""]);
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

/** A model whose logits are a fixed pseudo-random function of the tokens it holds (so sampling has choices). */
class RandomLogitsModel extends ScriptedModel {
  constructor() {
    super(() => 0, { prefillChunkSize: 100 });
    this.returned = []; // every logits array handed out (the sampler adjusts them in place)
  }

  logits() {
    const random = seededRandom(this.tokens.reduce((h, t) => Math.imul(h ^ t, 0x01000193) >>> 0, 0x811c9dc5));
    const logits = Float32Array.from({ length: this.vocab }, () => 8 * random());
    logits[END] = 6;
    this.returned.push(logits);
    return logits;
  }
}

/** log softmax(logits)[token], in float64 by a two-pass log-sum-exp. */
function logSoftmax(logits, token) {
  const max = Math.max(...logits);
  return logits[token] - max - Math.log(logits.reduce((sum, x) => sum + Math.exp(x - max), 0));
}

const SAMPLED = { temperature: 0.8, topP: 0.95, frequencyPenalty: 0.5, presencePenalty: 0, logitBias: [[65, 3]] };

test("logprobs: each token's log-probability under the logits it was drawn from, with the most likely tokens", async () => {
  const model = new RandomLogitsModel();
  const entries = [];
  const texts = [];
  const { result } = await run(model, [1, 2, 3], {
    sampling: SAMPLED, random: seededRandom(7), maxTokens: 12, logprobs: { top: 5, tokenBytes: (id) => Uint8Array.from(id < 256 ? [id] : []) },
    onText: (text, tokens) => { texts.push(text); entries.push(...tokens); },
  });
  assert.equal(entries.length, result.completionTokens - (result.finishReasons[0] === "stop" ? 1 : 0));
  // the k-th sampled token was drawn from the k-th logits returned (prefill, then each decode step)
  const sampled = model.tokens.slice(3); // the decoded tokens: all sampled ones but the last
  entries.forEach((entry, k) => {
    const logits = model.returned[k];
    const token = entry.bytes[0];
    if (k < sampled.length) assert.equal(token, sampled[k]);
    assert.ok(Math.abs(entry.logprob - logSoftmax(logits, token)) < 1e-9, `${entry.logprob} vs ${logSoftmax(logits, token)}`);
    assert.equal(entry.top_logprobs.length, 5);
    const ids = entry.top_logprobs.map((t) => t.bytes[0]);
    const expected = Array.from(logits.keys()).filter((i) => i < 256).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 5);
    assert.deepEqual(ids, expected);
    entry.top_logprobs.forEach((t, j) => assert.ok(Math.abs(t.logprob - logSoftmax(logits, ids[j])) < 1e-9));
    assert.ok(entry.top_logprobs.reduce((sum, t) => sum + Math.exp(t.logprob), 0) <= 1);
    assert.equal(entry.token, BYTES.decode([token]));
  });
  assert.equal(texts.join(""), BYTES.decode(entries.map((e) => e.bytes[0])));
});

test("n choices: the prompt is prefilled once, each choice starts from it, and a seed repeats them all", async () => {
  const generateThree = async (seed) => {
    const model = new RandomLogitsModel();
    const texts = ["", "", ""];
    const events = [];
    const { result } = await run(model, [1, 2, 3, 4, 5], {
      n: 3, sampling: SAMPLED, random: seededRandom(seed), maxTokens: 6,
      onChoice: (index) => events.push(["choice", index]),
      onText: (text, _, index) => { texts[index] += text; },
      onFinish: (reason, index) => events.push(["finish", index, reason]),
    });
    return { model, texts, events, result };
  };
  const first = await generateThree(11);
  const { model, result, events } = first;
  assert.deepEqual(model.calls.filter(([op]) => op !== "decode"),
    [["truncate", 0], ["prefill", 5], ["truncate", 5], ["truncate", 5]]);
  assert.deepEqual(events.map(([kind, index]) => [kind, index]),
    [["choice", 0], ["finish", 0], ["choice", 1], ["finish", 1], ["choice", 2], ["finish", 2]]);
  assert.equal(result.finishReasons.length, 3);
  assert.equal(result.prefillTokens, 5);
  assert.ok(new Set(first.texts).size > 1, "three samples, not one repeated");
  const again = await generateThree(11);
  assert.deepEqual(again.texts, first.texts);
  assert.notDeepEqual((await generateThree(12)).texts, first.texts);
});

test("an abort before the first token finishes every choice with abort", async () => {
  const finishes = [];
  const { result } = await run(writer("abc", 1), [9], {
    n: 2, isAborted: () => true, onFinish: (reason, index) => finishes.push([index, reason]),
  });
  assert.deepEqual(finishes, [[0, "abort"], [1, "abort"]]);
  assert.equal(result.completionTokens, 0);
});

test("a logits processor runs before the sampler and is told every token sampled", async () => {
  const accepted = [];
  const resets = [];
  const allowOnly = (allowed) => ({
    reset: () => resets.push(accepted.length),
    processLogits: async (logits) => { for (let i = 0; i < logits.length; i++) if (!allowed.has(i)) logits[i] = -Infinity; },
    acceptToken: (token) => accepted.push(token),
  });
  const xy = new Set([...BYTES.bytesOf("xy"), END]);
  const texts = [];
  await run(new RandomLogitsModel(), [1], {
    n: 2, sampling: SAMPLED, maxTokens: 8, logitsProcessor: allowOnly(xy),
    logprobs: { top: 20, tokenBytes: (id) => Uint8Array.from(id < 256 ? [id] : []) },
    onText: (t, tokens) => {
      texts.push(t);
      for (const entry of tokens) assert.ok(entry.top_logprobs.length <= 3 && entry.top_logprobs.every((e) => Number.isFinite(e.logprob)));
    },
  });
  assert.match(texts.join(""), /^[xy]*$/);
  assert.ok(accepted.every((t) => xy.has(t)));
  assert.equal(resets.length, 2); // once per choice
});
