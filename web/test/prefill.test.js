import { test } from "node:test";
import assert from "node:assert/strict";
import { planPrefill } from "../src/engine/prefill.js";

test("an empty cache prefills the whole prompt in chunks", () => {
  assert.deepEqual(planPrefill([], [1, 2, 3, 4, 5], 2), { keep: 0, chunks: [[1, 2], [3, 4], [5]] });
  assert.deepEqual(planPrefill([], [1, 2, 3], 8), { keep: 0, chunks: [[1, 2, 3]] });
});

test("a prompt extending the cached tokens prefills only the new tokens", () => {
  assert.deepEqual(planPrefill([1, 2, 3], [1, 2, 3, 4, 5], 8), { keep: 3, chunks: [[4, 5]] });
});

test("a diverging prompt keeps the common prefix only", () => {
  assert.deepEqual(planPrefill([1, 2, 3, 9, 9], [1, 2, 3, 4], 8), { keep: 3, chunks: [[4]] });
  assert.deepEqual(planPrefill([7, 8], [1, 2], 8), { keep: 0, chunks: [[1, 2]] });
});

test("a prompt the cache fully holds still prefills its last token (its logits pick the next token)", () => {
  assert.deepEqual(planPrefill([1, 2, 3], [1, 2, 3], 8), { keep: 2, chunks: [[3]] });
  assert.deepEqual(planPrefill([1, 2, 3, 4], [1, 2], 8), { keep: 1, chunks: [[2]] });
});
