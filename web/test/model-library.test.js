// The relaxed-SIMD probe: Node 20's V8 runs relaxed SIMD only behind a flag, so the same probe must say no
// without it and yes with it (a malformed probe would say no both times).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

const PROBE = `import("${new URL("../src/engine/model-library.js", import.meta.url)}")
  .then(({ hasRelaxedSimd }) => process.stdout.write(String(hasRelaxedSimd())))`;

function probe(flags) {
  return execFileSync(process.execPath, [...flags, "--input-type=module", "-e", PROBE], { encoding: "utf8" });
}

test("hasRelaxedSimd is true exactly where the runtime has relaxed SIMD", () => {
  assert.equal(probe([]), "false");
  assert.equal(probe(["--experimental-wasm-relaxed-simd"]), "true");
});
