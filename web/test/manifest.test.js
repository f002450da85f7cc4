import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { modelLibrary, parseManifest, sha256Hex } from "../src/engine/manifest.js";
import { BundleError } from "../src/engine/errors.js";

const sha = (text) => createHash("sha256").update(text).digest("hex");
const FILES = ["mlc-chat-config.json", "tensor-cache.json", "tokenizer.json", "tokenizer_config.json",
  "params_shard_0.bin", "m-q4f32_1-webgpu.wasm"].map((path) => ({ path, bytes: path.length, sha256: sha(path) }));

/** A manifest as compile/bundle.py writes it: bundle_id = first 16 hex of sha256 of the listing sorted by path in
 * code-point order (Python's; "tokenizer.json" < "tokenizer_config.json", unlike localeCompare). */
function manifest(files = FILES) {
  const listing = [...files].sort((a, b) => (a.path < b.path ? -1 : 1)).map((f) => `${f.sha256}  ${f.path}\n`).join("");
  return { format: "tabllm-bundle/1", bundle_id: sha(listing).slice(0, 16), model: "m", quantization: "q4f32_1", files };
}

async function rejects(value, pattern) {
  await assert.rejects(parseManifest(typeof value === "string" ? value : JSON.stringify(value), "u/manifest.json"),
    (error) => error instanceof BundleError && error.code === "bundle_invalid" && pattern.test(error.message));
}

test("sha256Hex matches node's sha256", async () => {
  assert.equal(await sha256Hex(new TextEncoder().encode("abc")), sha("abc"));
});

test("a well-formed manifest parses and names its WebGPU library", async () => {
  const parsed = await parseManifest(JSON.stringify(manifest()), "u/manifest.json");
  assert.equal(parsed.bundle_id, manifest().bundle_id);
  assert.equal(modelLibrary(parsed, "webgpu").path, "m-q4f32_1-webgpu.wasm");
  assert.throws(() => modelLibrary(parsed, "wasm32"), (e) => e instanceof BundleError && /0 wasm32/.test(e.message));
});

test("the two CPU libraries are told apart by their suffixes", async () => {
  const files = [...FILES, "m-q4f32_1-wasm32.wasm", "m-q4f32_1-wasm32-relaxed.wasm"]
    .map((f) => (typeof f === "string" ? { path: f, bytes: f.length, sha256: sha(f) } : f));
  const parsed = await parseManifest(JSON.stringify(manifest(files)), "u/manifest.json");
  assert.equal(modelLibrary(parsed, "wasm32").path, "m-q4f32_1-wasm32.wasm");
  assert.equal(modelLibrary(parsed, "wasm32-relaxed").path, "m-q4f32_1-wasm32-relaxed.wasm");
});

test("bad manifests are BundleErrors saying what is wrong", async () => {
  await rejects("<html>", /not valid JSON/);
  await rejects({ ...manifest(), format: "other/1" }, /format "other\/1"/);
  await rejects({ ...manifest(), bundle_id: "0123456789abcdef" }, /does not match the file list/);
  const edited = manifest();
  edited.files = edited.files.map((f, i) => (i === 0 ? { ...f, bytes: f.bytes + 1, sha256: sha("x") } : f));
  await rejects(edited, /does not match the file list/);
  await rejects(manifest(FILES.map((f) => (f.path === "tensor-cache.json" ? { ...f, path: "../x" } : f))), /malformed/);
  await rejects(manifest(FILES.filter((f) => f.path !== "tokenizer.json")), /does not list tokenizer.json/);
});
