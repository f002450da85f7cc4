import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BundleError, ContextLengthExceededError, EngineError, InternalEngineError, InvalidRequestError, ModelNotLoadedError,
  WebGPUUnavailableError, fromWire, toWire,
} from "../src/engine/errors.js";

test("each error carries an OpenAI-shaped body", () => {
  assert.deepEqual(new InvalidRequestError("bad n", "n", "unsupported_value").body,
    { message: "bad n", type: "invalid_request_error", param: "n", code: "unsupported_value" });
  assert.deepEqual(new ContextLengthExceededError("too long").body,
    { message: "too long", type: "invalid_request_error", param: "messages", code: "context_length_exceeded" });
  assert.equal(new ModelNotLoadedError().code, "model_not_loaded");
  assert.equal(new WebGPUUnavailableError("none").code, "webgpu_unavailable");
  assert.equal(new BundleError("x", "bundle_checksum_mismatch").type, "bundle_error");
});

test("errors survive the worker boundary as the same class", () => {
  for (const error of [new InvalidRequestError("m", "top_p"), new ContextLengthExceededError("c"), new ModelNotLoadedError(),
    new WebGPUUnavailableError("w"), new BundleError("b", "bundle_fetch_failed")]) {
    const copy = fromWire(structuredClone(toWire(error)));
    assert.ok(copy instanceof error.constructor && copy instanceof EngineError && copy instanceof Error);
    assert.equal(copy.name, error.name);
    assert.deepEqual(copy.body, error.body);
  }
});

test("unexpected errors become InternalEngineError with the original message", () => {
  const copy = fromWire(toWire(new TypeError("x is undefined")));
  assert.ok(copy instanceof InternalEngineError);
  assert.deepEqual(copy.body, { message: "TypeError: x is undefined", type: "server_error", param: null, code: "internal_error" });
});
