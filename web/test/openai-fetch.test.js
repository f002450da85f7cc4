// engineFetch over the engine's page side and a stand-in worker: routes, OpenAI's error bodies and HTTP statuses,
// JSON and server-sent events. (The official openai client against the real engine: e2e/test_engine_api.py.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { engineFetch } from "../src/engine/index.js";
import { choiceChunk, usageChunk } from "../src/engine/completion.js";
import { Reply } from "../src/engine/protocol.js";
import { loadedEngine, startEngine } from "./helpers.js";

const ENDPOINT = "http://tab.local/v1/chat/completions";
const messages = [{ role: "user", content: "Hi" }];
const post = (body, init = {}) => ({ method: "POST", body: typeof body === "string" ? body : JSON.stringify(body), ...init });
const META = { id: "chatcmpl-1", created: 1, model: "m" };
const USAGE = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 };
const CHUNKS = [choiceChunk(META, 0, { role: "assistant", content: "" }), choiceChunk(META, 0, { content: "Hello" }),
  choiceChunk(META, 0, {}, { finishReason: "stop" }), usageChunk(META, USAGE)];

/** The stand-in worker answers the chat it was sent with CHUNKS, once the engine has posted it. */
async function answerChat(worker) {
  while (!worker.sent.length) await new Promise((resolve) => setTimeout(resolve, 1));
  worker.answer(0, { type: Reply.started });
  for (const chunk of CHUNKS) worker.answer(0, { type: Reply.chunk, chunk });
  worker.answer(0, { type: Reply.result, value: null });
}

async function errorOf(response) {
  return { status: response.status, type: response.headers.get("content-type"), error: (await response.json()).error };
}

test("routes: only POST /v1/chat/completions; no model loaded is OpenAI's 404", async () => {
  const fetch = engineFetch(startEngine().engine);
  const notLoaded = await errorOf(await fetch(ENDPOINT, post({ messages })));
  assert.deepEqual([notLoaded.status, notLoaded.error.code, notLoaded.type], [404, "model_not_loaded", "application/json"]);
  assert.deepEqual((await errorOf(await fetch("http://tab.local/v1/models"))).error.code, "unknown_url");
  assert.equal((await fetch(ENDPOINT)).status, 405);
  const badJson = await errorOf(await fetch(ENDPOINT, post("{")));
  assert.deepEqual([badJson.status, badJson.error.code], [400, "invalid_json"]);
});

test("an invalid argument is a 400 with OpenAI's error body naming it", async () => {
  const { engine, worker } = await loadedEngine();
  const { status, error } = await errorOf(await engineFetch(engine)(ENDPOINT, post({ messages, temperature: 9 })));
  assert.equal(status, 400);
  assert.deepEqual([error.type, error.param, error.code], ["invalid_request_error", "temperature", "invalid_value"]);
  assert.deepEqual(worker.sent, []);
});

test("a completion is JSON; a stream is server-sent events ending with [DONE]", async () => {
  const { engine, worker } = await loadedEngine();
  const [response] = await Promise.all([engineFetch(engine)(ENDPOINT, post({ messages })), answerChat(worker)]);
  assert.deepEqual([response.status, response.headers.get("content-type")], [200, "application/json"]);
  const completion = await response.json();
  assert.deepEqual([completion.object, completion.choices[0].message.content, completion.usage], ["chat.completion", "Hello", USAGE]);

  const streaming = await loadedEngine();
  const [events] = await Promise.all([
    engineFetch(streaming.engine)(ENDPOINT, post({ messages, stream: true, stream_options: { include_usage: true } })),
    answerChat(streaming.worker)]);
  assert.equal(events.headers.get("content-type"), "text/event-stream");
  assert.equal(await events.text(), [...CHUNKS.map((c) => JSON.stringify(c)), "[DONE]"].map((d) => `data: ${d}\n\n`).join(""));
});

test("a signal aborted before the request rejects as fetch does (AbortError), and nothing runs", async () => {
  const { engine, worker } = await loadedEngine();
  await assert.rejects(engineFetch(engine)(ENDPOINT, post({ messages }, { signal: AbortSignal.abort() })),
    (error) => error.name === "AbortError");
  assert.deepEqual(worker.sent, []);
});
