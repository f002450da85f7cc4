// The files of a bundle, verified and cached: every file is checked against the manifest's sha256 with
// SubtleCrypto every time it is used, and kept in a Cache API cache named after the bundle id. A second load
// makes no network request (bundle URLs are content-addressed, /bundles/<bundle_id>/, so the manifest is
// cached too); a cached file that fails its check is deleted and fetched again.
//
// Why our own store rather than tvmjs's fetchTensorCache cache: tvmjs trusts whatever its cache holds, knows
// only the weight shards, and fetches whole files without byte progress. Here one store serves every file
// (library, tokenizer, configs, shards), verifies bytes before tvmjs sees them, and reports progress per chunk.
import { BundleError } from "./errors.js";
import { parseManifest, sha256Hex } from "./manifest.js";

const MANIFEST = "manifest.json";
const MANIFEST_CACHE = "tabllm-manifests";
export const bundleCacheName = (bundleId) => `tabllm-bundle-${bundleId}`;

/**
 * @typedef {{stage: string, text: string, loadedBytes: number, totalBytes: number, fraction: number}} LoadProgress
 *   stage: "manifest" | "download" (from the network) | "cache" (from the Cache API) | "compile" | "ready"
 */

export class BundleStore {
  /**
   * @param {string} baseUrl absolute, ending in "/"
   * @param {import("./manifest.js").Manifest} manifest
   * @param {Cache} cache
   * @param {(p: LoadProgress) => void} onProgress
   */
  constructor(baseUrl, manifest, cache, onProgress) {
    this.baseUrl = baseUrl;
    this.manifest = manifest;
    this.cache = cache;
    this.onProgress = onProgress;
    this.totalBytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
    this.loadedBytes = 0;
  }

  /**
   * @param {string} bundleUrl the bundle's absolute base URL (trailing "/" optional)
   * @param {(p: LoadProgress) => void} onProgress
   */
  static async open(bundleUrl, onProgress) {
    const baseUrl = bundleUrl.endsWith("/") ? bundleUrl : `${bundleUrl}/`;
    const manifestUrl = new URL(MANIFEST, baseUrl).href;
    onProgress({ stage: "manifest", text: `Reading ${manifestUrl}`, loadedBytes: 0, totalBytes: 0, fraction: 0 });
    const manifests = await caches.open(MANIFEST_CACHE);
    const cached = await manifests.match(manifestUrl);
    let manifest = cached && (await parseManifest(await cached.text(), manifestUrl).catch(() => null));
    if (!manifest) {
      const response = await fetchOrThrow(manifestUrl);
      const text = await response.text().catch((error) => {
        throw cutOff(manifestUrl, `(${error.message})`);
      });
      manifest = await parseManifest(text, manifestUrl);
      await manifests.put(manifestUrl, new Response(text, { headers: { "Content-Type": "application/json" } }));
    }
    return new BundleStore(baseUrl, manifest, await caches.open(bundleCacheName(manifest.bundle_id)), onProgress);
  }

  /** A listed file this load will not read (another device's model library): progress leaves it out.
   * @param {string} name */
  leaveOut(name) {
    this.totalBytes -= this.manifest.files.find((f) => f.path === name).bytes;
  }

  /** The verified bytes of a file listed in the manifest, in an ArrayBuffer of their own. @param {string} name */
  async read(name) {
    const entry = this.manifest.files.find((f) => f.path === name);
    if (!entry) throw new BundleError(`bundle ${this.manifest.bundle_id} has no file ${name}`, "bundle_invalid");
    const url = new URL(name, this.baseUrl).href;
    const cached = await this.cache.match(url);
    if (cached) {
      const bytes = new Uint8Array(await cached.arrayBuffer());
      if (bytes.length === entry.bytes && (await sha256Hex(bytes)) === entry.sha256) {
        this.advance("cache", name, bytes.length);
        return bytes;
      }
      await this.cache.delete(url); // corrupt or truncated: fetch it again below
    }
    const bytes = await this.download(url, entry);
    if ((await sha256Hex(bytes)) !== entry.sha256) {
      throw new BundleError(`${url}: sha256 mismatch (the server's copy is corrupt; rebuild the bundle)`,
        "bundle_checksum_mismatch");
    }
    await this.cache.put(url, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }));
    return bytes;
  }

  /** Parsed JSON of a listed file. @param {string} name */
  async readJson(name) {
    const text = new TextDecoder().decode(await this.read(name));
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BundleError(`${name} in bundle ${this.manifest.bundle_id} is not valid JSON (${error.message})`,
        "bundle_invalid");
    }
  }

  /** Stream a file from the network into one buffer of the manifest's size, reporting progress per chunk. */
  async download(url, entry) {
    // no-store: the Cache API holds our verified copy; the HTTP cache would only duplicate it, and a re-fetch
    // after corruption must reach the server.
    const response = await fetchOrThrow(url, { cache: "no-store" });
    const bytes = new Uint8Array(entry.bytes);
    const reader = response.body.getReader();
    let offset = 0;
    for (;;) {
      const { done, value } = await reader.read().catch((error) => {
        throw cutOff(url, `after ${offset} of ${entry.bytes} bytes (${error.message})`);
      });
      if (done) break;
      if (offset + value.length > entry.bytes) {
        await reader.cancel();
        throw new BundleError(`${url}: larger than the ${entry.bytes} bytes the manifest lists`, "bundle_checksum_mismatch");
      }
      bytes.set(value, offset);
      offset += value.length;
      this.advance("download", entry.path, value.length);
    }
    if (offset !== entry.bytes) throw cutOff(url, `after ${offset} of the ${entry.bytes} bytes the manifest lists`);
    return bytes;
  }

  advance(stage, name, bytes) {
    this.loadedBytes += bytes;
    this.onProgress({
      stage, text: `${stage === "cache" ? "Read from cache" : "Downloading"} ${name}`,
      loadedBytes: this.loadedBytes, totalBytes: this.totalBytes, fraction: this.loadedBytes / this.totalBytes,
    });
  }
}

/** The connection ended before the whole file came (the server stopped, the network dropped). */
function cutOff(url, detail) {
  return new BundleError(`${url}: the download was cut off ${detail}. Load again to retry: the files already `
    + "verified come from the cache, this one is fetched anew", "bundle_download_interrupted");
}

async function fetchOrThrow(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new BundleError(`cannot fetch ${url}: ${error.message}`, "bundle_fetch_failed");
  }
  if (!response.ok) {
    throw new BundleError(`cannot fetch ${url}: HTTP ${response.status}${response.status === 404 ? " (no bundle there?)" : ""}`,
      "bundle_fetch_failed");
  }
  return response;
}
