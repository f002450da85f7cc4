// The engine's page side (index.js) against a stand-in worker that records what it is sent and answers as the
// test says: argument checks before anything reaches the worker, load/unload ordering under concurrency, and a
// crashed worker or lost GPU device. (The real worker needs a browser: e2e/test_engine_reliability.py.)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AbortError, BundleError, EngineCrashedError, InvalidRequestError, ModelNotLoadedError,
} from "../src/engine/index.js";
import { toWire } from "../src/engine/errors.js";
import { Op, Reply } from "../src/engine/protocol.js";
import { GOOD, INFO, loadedEngine, startEngine } from "./helpers.js";

const MISSING = "http://127.0.0.1:8000/bundles/0000000000000000/";
const messages = [{ role: "user", content: "Hi" }];

async function assertRejects(promise, ErrorClass, fields) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof ErrorClass, `${error.name}: ${error.message}`);
    for (const [key, value] of Object.entries(fields)) assert.equal(error.body[key], value, key);
    return true;
  });
}

test("a wrong signal is an InvalidRequestError and nothing reaches the worker", async () => {
  const { engine, worker } = await loadedEngine();
  const controller = new AbortController();
  for (const signal of [{}, controller, "abort", 1, { aborted: false, addEventListener() {} }]) {
    await assertRejects(engine.chat.completions.create({ messages, signal }), InvalidRequestError,
      { param: "signal", type: "invalid_request_error", code: "invalid_value" });
  }
  assert.deepEqual(worker.sent, []);
});

test("an already aborted signal rejects with AbortError and generates nothing", async () => {
  const { engine, worker } = await loadedEngine();
  await assertRejects(engine.chat.completions.create({ messages, signal: AbortSignal.abort() }), AbortError,
    { code: "request_aborted", type: "invalid_request_error" });
  assert.deepEqual(worker.sent, []);
});

test("every invalid create() argument is refused before the worker is asked", async () => {
  const { engine, worker } = await loadedEngine();
  const invalid = [
    null, { messages: [] }, { messages, n: 0 }, { messages, top_p: 3 }, { messages, stream: "yes" },
    { messages, stream_options: { include_usage: true } }, { messages, logit_bias: { 999: 1 } }, { messages, foo: 1 },
    { messages: [{ role: "robot", content: "x" }] },
  ];
  for (const request of invalid) await assert.rejects(engine.chat.completions.create(request), InvalidRequestError);
  await assert.rejects(engine.promptIds([{ role: "user" }]), InvalidRequestError);
  assert.deepEqual(worker.sent, []);
});

test("a valid request reaches the worker with its abort listener in place", async () => {
  const { engine, worker } = await loadedEngine();
  const controller = new AbortController();
  const created = engine.chat.completions.create({ messages, stream: true, signal: controller.signal });
  assert.equal(worker.sent[0].op, Op.chat);
  worker.answer(0, { type: Reply.started });
  await created;
  controller.abort();
  assert.deepEqual(worker.sent[1], { op: Op.abort, target: worker.sent[0].id });
});

test("load() refuses what is not an http(s) URL, and bad options, before the worker is asked", async () => {
  const { engine, workers } = startEngine();
  for (const url of [123, undefined, null, "", "   ", "javascript:alert(1)", "data:text/plain,x", "http://[::1"]) {
    await assertRejects(engine.load(url), InvalidRequestError, { param: "bundleUrl", type: "invalid_request_error" });
  }
  await assertRejects(engine.load(GOOD, { device: "tpu" }), InvalidRequestError, { param: "device" });
  await assertRejects(engine.load(GOOD, { onProgress: 5 }), InvalidRequestError, { param: "onProgress" });
  await assertRejects(engine.load(GOOD, null), InvalidRequestError, { param: null });
  assert.deepEqual(workers[0].sent, []);
});

test("two loads at once, the later one failing: the earlier is superseded and nothing claims to be loaded", async () => {
  const { engine, workers } = startEngine();
  const good = engine.load(GOOD);
  const missing = engine.load(MISSING);
  const worker = workers[0];
  // the worker runs them in order: the first loads, the second unloads it and fails
  worker.answer(0, { type: Reply.result, value: INFO });
  worker.answer(1, { type: Reply.error, error: toWire(new BundleError("cannot fetch: HTTP 404", "bundle_fetch_failed")) });
  await assertRejects(good, AbortError, { code: "load_superseded" });
  await assertRejects(missing, BundleError, { code: "bundle_fetch_failed" });
  assert.equal(engine.bundle, null);
  assert.equal(engine.device, null);
  await assert.rejects(engine.chat.completions.create({ messages }), ModelNotLoadedError);
});

test("two loads at once, the earlier one failing: the later one is what is loaded", async () => {
  const { engine, workers } = startEngine();
  const missing = engine.load(MISSING);
  const good = engine.load(GOOD);
  workers[0].answer(0, { type: Reply.error, error: toWire(new BundleError("HTTP 404", "bundle_fetch_failed")) });
  workers[0].answer(1, { type: Reply.result, value: INFO });
  await assertRejects(missing, BundleError, { code: "bundle_fetch_failed" });
  assert.deepEqual(await good, INFO);
  assert.equal(engine.device, "wasm");
});

test("unload() during a load: the load is superseded and the engine says nothing is loaded", async () => {
  const { engine, workers } = startEngine();
  const loading = engine.load(GOOD);
  const unloading = engine.unload();
  workers[0].answer(0, { type: Reply.result, value: INFO });
  workers[0].answer(1, { type: Reply.result, value: null });
  await assertRejects(loading, AbortError, { code: "load_superseded" });
  await unloading;
  assert.equal(engine.bundle, null);
});

for (const [how, crash, code] of [
  ["the worker dies", (worker) => worker.onerror({ message: "Uncaught RangeError: out of memory" }), "worker_crashed"],
  ["the GPU device is lost", (worker) => worker.onmessage({ data: { type: Reply.deviceLost, message: "GPU reset" } }),
    "device_lost"],
]) {
  test(`when ${how}, calls fail with EngineCrashedError until load() starts a new worker`, async () => {
    const { engine, workers, worker } = await loadedEngine();
    const running = engine.chat.completions.create({ messages });
    crash(worker);
    const fields = { code, type: "server_error" };
    await assertRejects(running, EngineCrashedError, fields);
    assert.ok(worker.terminated);
    assert.equal(engine.device, null);
    await assertRejects(engine.chat.completions.create({ messages }), EngineCrashedError, fields);
    await assertRejects(engine.promptIds(messages), EngineCrashedError, fields);
    engine.interrupt();
    assert.equal(worker.sent.length, 1); // only the chat sent before the crash: nothing posted to a dead worker

    const reloading = engine.load(GOOD);
    assert.equal(workers.length, 2);
    workers[1].answer(0, { type: Reply.result, value: INFO });
    assert.deepEqual(await reloading, INFO);
    worker.onmessage({ data: { type: Reply.deviceLost, message: "late news from the old worker" } });
    assert.equal(engine.device, "wasm");
  });
}

test("a base model (no chat template): chat is refused with an OpenAI-shaped error, completions reach the worker",
  async () => {
    const { engine, workers } = startEngine();
    const loading = engine.load(GOOD);
    workers[0].answer(0, { type: Reply.result, value: { ...INFO, chatTemplate: false } });
    await loading;
    const worker = workers[0];
    worker.sent.length = 0;
    await assertRejects(engine.chat.completions.create({ messages }), InvalidRequestError,
      { type: "invalid_request_error", code: "model_not_chat", param: "messages" });
    assert.deepEqual(worker.sent, []);
    const created = engine.completions.create({ prompt: "Once upon", max_tokens: 2 });
    assert.deepEqual([worker.sent[0].op, worker.sent[0].request.prompt, worker.sent[0].request.maxTokens],
      [Op.chat, "Once upon", 2]);
    worker.answer(0, { type: Reply.started });
    const meta = { id: "cmpl-1", created: 1, model: "m" };
    worker.answer(0, { type: Reply.chunk, chunk: { ...meta, object: "text_completion",
      choices: [{ index: 0, text: " a time", logprobs: null, finish_reason: "length" }] } });
    worker.answer(0, { type: Reply.chunk, chunk: { ...meta, object: "text_completion", choices: [], usage: {} } });
    worker.answer(0, { type: Reply.result, value: null });
    assert.equal((await created).choices[0].text, " a time");
  });
