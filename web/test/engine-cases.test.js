// The cases that the server (serve/, Python) must answer as this engine does: tests/fixtures/engine_cases.json,
// checked here against the engine and by tests/test_serve_engine_cases.py against the server, so neither drifts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { planPrefill } from "../src/engine/prefill.js";
import { validateChatRequest } from "../src/engine/request.js";
import { sampleToken, seededRandom } from "../src/engine/sampler.js";
import { StopStringFilter } from "../src/engine/stop.js";

const CASES = JSON.parse(readFileSync(new URL("../../tests/fixtures/engine_cases.json", import.meta.url), "utf8"));

test("seeded random numbers", () => {
  for (const { seed, draws } of CASES.random) {
    const random = seededRandom(seed);
    assert.deepEqual(draws.map(() => random()), draws, `seed ${seed}`);
  }
});

test("seeded draws of tokens", () => {
  const logits = Float32Array.from(CASES.sampling_logits);
  for (const { temperature, top_p: topP, seed, tokens } of CASES.sampling) {
    const random = seededRandom(seed);
    const drawn = tokens.map(() => sampleToken(logits.slice(), { temperature, topP }, random));
    assert.deepEqual(drawn, tokens, `temperature ${temperature}, top_p ${topP}`);
  }
});

test("stop strings", () => {
  for (const { stops, pieces, emitted, flushed, stopped } of CASES.stop_strings) {
    const filter = new StopStringFilter(stops);
    const out = [];
    for (const piece of pieces) if (!filter.stopped) out.push(filter.push(piece));
    assert.deepEqual([out, filter.flush(), filter.stopped], [emitted, flushed, stopped], JSON.stringify(pieces));
  }
});

test("prefill plans (KV reuse)", () => {
  for (const { cached, prompt, chunk_size: chunkSize, keep, chunks } of CASES.prefill) {
    assert.deepEqual(planPrefill(cached, prompt, chunkSize), { keep, chunks });
  }
});

test("request validation", () => {
  const model = { vocabSize: CASES.request_model.vocab_size, temperature: CASES.request_model.temperature,
    topP: CASES.request_model.top_p };
  for (const { request, normalized, error } of CASES.requests) {
    const where = JSON.stringify(request);
    if (error) {
      assert.throws(() => validateChatRequest(request, model), (e) => e.param === error.param && e.code === error.code
        && e.type === "invalid_request_error", where);
      continue;
    }
    const r = validateChatRequest(request, model);
    assert.deepEqual({ max_tokens: r.maxTokens, temperature: r.temperature, top_p: r.topP, seed: r.seed, stop: r.stop,
      n: r.n, stream: r.stream, include_usage: r.includeUsage }, normalized, where);
  }
});
