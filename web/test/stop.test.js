import { test } from "node:test";
import assert from "node:assert/strict";
import { StopStringFilter } from "../src/engine/stop.js";

/** Feed pieces; return [emitted pieces, stopped]. */
function run(stops, pieces) {
  const filter = new StopStringFilter(stops);
  const out = [];
  for (const piece of pieces) {
    out.push(filter.push(piece));
    if (filter.stopped) return [out.join(""), true, out];
  }
  out.push(filter.flush());
  return [out.join(""), false, out];
}

test("text without stop strings passes through unchanged", () => {
  assert.deepEqual(run(["###"], ["Hello", " world"]).slice(0, 2), ["Hello world", false]);
  assert.deepEqual(run([], ["a", "b"]).slice(0, 2), ["ab", false]);
});

test("a stop string is never emitted, even split over many pieces", () => {
  assert.deepEqual(run(["STOP"], ["Hello S", "T", "O", "P and more"]).slice(0, 2), ["Hello ", true]);
  assert.deepEqual(run(["\n\n"], ["one\n", "\ntwo"]).slice(0, 2), ["one", true]);
  assert.deepEqual(run(["<|im_end|>"], ["x<|im_", "end|>"]).slice(0, 2), ["x", true]);
});

test("a partial stop string is held back, then released when it turns out not to be one", () => {
  const [text, stopped, pieces] = run(["STOP"], ["ab ST", "ar"]);
  assert.equal(stopped, false);
  assert.deepEqual(pieces, ["ab ", "STar", ""]);
  assert.equal(text, "ab STar");
  // held at the end of generation: released by flush
  assert.deepEqual(run(["STOP"], ["ab ST"])[2], ["ab ", "ST"]);
});

test("the earliest of several stop strings wins; overlapping prefixes are held", () => {
  assert.deepEqual(run(["world", "lo"], ["Hello world"]).slice(0, 2), ["Hel", true]);
  const filter = new StopStringFilter(["abc", "bcd"]);
  assert.equal(filter.push("xab"), "x"); // "ab" could start "abc"
  assert.equal(filter.push("cd"), "x".slice(1)); // "abc" found at 0 of the held buffer
  assert.equal(filter.stopped, true);
});

test("a stop string at the very start gives empty content", () => {
  assert.deepEqual(run(["Hi"], ["Hi there"]).slice(0, 2), ["", true]);
});
