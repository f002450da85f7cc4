// The bundle's manifest.json (written by compile/bundle.py): checked before any file is trusted, and the
// model library for a device chosen from it.
import { BundleError } from "./errors.js";

export const MANIFEST_FORMAT = "tabllm-bundle/1";
const BUNDLE_ID_HEX_CHARS = 16;
const REQUIRED_FILES = ["mlc-chat-config.json", "tensor-cache.json", "tokenizer.json", "tokenizer_config.json"];
// One model library per device kind; the CPU has two: SIMD128 (every browser) and relaxed SIMD (fused multiply-add).
export const LIBRARY_SUFFIX = { webgpu: "-webgpu.wasm", wasm32: "-wasm32.wasm", "wasm32-relaxed": "-wasm32-relaxed.wasm" };

/**
 * @typedef {{path: string, bytes: number, sha256: string}} ManifestFile
 * @typedef {{format: string, bundle_id: string, model: string, quantization: string, files: ManifestFile[]}} Manifest
 */

/** Lowercase hex sha256 of bytes (SubtleCrypto: the browser's and node's). @param {BufferSource} bytes */
export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Parse and check a manifest: its format, its fields, and that bundle_id is the hash of its file list (as
 * compile/bundle.py computes it: sha256 of the sorted `sha256sum`-style listing, first 16 hex digits), so a
 * manifest read back from the cache cannot silently disagree with the files it vouches for.
 * @param {string} text @param {string} url where it came from (for messages)
 * @returns {Promise<Manifest>}
 */
export async function parseManifest(text, url) {
  let manifest;
  try {
    manifest = JSON.parse(text);
  } catch (error) {
    throw new BundleError(`${url} is not valid JSON (${error.message}): is this a bundle URL?`, "bundle_invalid");
  }
  if (manifest?.format !== MANIFEST_FORMAT) {
    throw new BundleError(`${url}: format ${JSON.stringify(manifest?.format)} is not ${MANIFEST_FORMAT}; rebuild the bundle`,
      "bundle_invalid");
  }
  const files = manifest.files;
  const wellFormed = typeof manifest.bundle_id === "string" && typeof manifest.model === "string" && Array.isArray(files)
    && files.every((f) => typeof f?.path === "string" && /^[^/\\]+$/.test(f.path) && !f.path.startsWith(".")
      && Number.isSafeInteger(f.bytes) && f.bytes >= 0 && /^[0-9a-f]{64}$/.test(f.sha256));
  if (!wellFormed) throw new BundleError(`${url}: malformed manifest; rebuild the bundle`, "bundle_invalid");
  const listing = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.path}\n`).join("");
  if ((await sha256Hex(new TextEncoder().encode(listing))).slice(0, BUNDLE_ID_HEX_CHARS) !== manifest.bundle_id) {
    throw new BundleError(`${url}: bundle_id does not match the file list (edited or corrupt manifest)`, "bundle_invalid");
  }
  const missing = REQUIRED_FILES.filter((name) => !files.some((f) => f.path === name));
  if (missing.length) throw new BundleError(`${url}: does not list ${missing.join(", ")}`, "bundle_invalid");
  return manifest;
}

/**
 * Whether the bundle has a model library for a device kind (`*-webgpu.wasm`, or `*-wasm32.wasm` and
 * `*-wasm32-relaxed.wasm` for the CPU).
 * @param {Manifest} manifest @param {keyof LIBRARY_SUFFIX} device
 */
export function hasModelLibrary(manifest, device) {
  return manifest.files.some((f) => f.path.endsWith(LIBRARY_SUFFIX[device]));
}

/**
 * The model library for a device kind: the one file named with its suffix.
 * @param {Manifest} manifest @param {keyof LIBRARY_SUFFIX} device
 */
export function modelLibrary(manifest, device) {
  const found = manifest.files.filter((f) => f.path.endsWith(LIBRARY_SUFFIX[device]));
  if (found.length !== 1) {
    throw new BundleError(`bundle ${manifest.bundle_id} has ${found.length} ${device} model libraries ` +
      `(*${LIBRARY_SUFFIX[device]}), expected exactly one`, "bundle_invalid");
  }
  return found[0];
}
