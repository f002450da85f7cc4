import { test } from "node:test";
import assert from "node:assert/strict";
import { StreamingDetokenizer } from "../src/engine/detokenizer.js";
import { BYTES, byteTokenizer } from "./helpers.js";

function stream(tokenizer, ids) {
  const detokenizer = new StreamingDetokenizer(tokenizer.decode);
  const pieces = ids.map((id) => detokenizer.push(id));
  pieces.push(detokenizer.flush());
  return pieces;
}

test("multi-byte characters split over byte tokens are emitted whole, never as U+FFFD", () => {
  const text = "héllo 😀 日本語!";
  const pieces = stream(BYTES, BYTES.bytesOf(text));
  assert.equal(pieces.join(""), text);
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")), JSON.stringify(pieces));
  // the 4 bytes of 😀: three empty pieces, then the character
  const emoji = stream(BYTES, BYTES.bytesOf("😀"));
  assert.deepEqual(emoji, ["", "", "", "😀", ""]);
});

test("ASCII tokens are emitted one by one, as they come", () => {
  assert.deepEqual(stream(BYTES, BYTES.bytesOf("abc")), ["a", "b", "c", ""]);
});

test("multi-byte tokens mixing whole and partial characters", () => {
  const e = new TextEncoder().encode("é😀");
  const tokenizer = byteTokenizer([[0x61, e[0]], [e[1], e[2], e[3]], [e[4], e[5], 0x62]]);
  // "aé" is held with the first bytes of 😀: the decoded window ends in an unfinished character
  assert.deepEqual(stream(tokenizer, [0, 1, 2]), ["", "", "aé😀b", ""]);
});

test("generation ending inside a character drops the unfinished bytes", () => {
  const ids = BYTES.bytesOf("ok 😀").slice(0, -2);
  const pieces = stream(BYTES, ids);
  assert.equal(pieces.join(""), "ok ");
  assert.ok(!pieces.join("").includes("\uFFFD"));
});

test("decoding that depends on the previous token (a space-prefix rule) stays right", () => {
  // a Metaspace-like decoder: "▁" becomes a space, except at the very start of the decoded text
  const vocab = ["▁Hello", "▁world", "!"];
  const decode = (ids) => ids.map((id) => vocab[id]).join("").replaceAll("▁", " ").replace(/^ /, "");
  const detokenizer = new StreamingDetokenizer(decode);
  assert.deepEqual([0, 1, 2].map((id) => detokenizer.push(id)), ["Hello", " world", "!"]);
});
