// The files of a bundle, verified and cached: every file is checked against the manifest's sha256 when it is
// stored, and each of its cached pieces against its own sha256 every time it is read again; files are kept in a
// Cache API cache named after the bundle id. A second load makes no network request
// (bundle URLs are content-addressed, /bundles/<bundle_id>/, so the manifest is cached too); a cached file that
// fails its check is deleted and fetched again.
//
// A file is cached as pieces of at most PIECE_BYTES (key `<url>?piece=<offset>`), written as they arrive: a
// download cut off keeps what came, and the next load asks for the rest with a Range request. A file is read
// piece by piece into a `write(bytes, offset)` callback and checked as it streams (see `stream`: hash-wasm's
// incremental SHA-256 for the whole file, as SubtleCrypto hashes only whole buffers), so a shard goes into the
// weights' memory without ever being held whole (bench/load_memory.py).
//
// Why our own store rather than tvmjs's fetchTensorCache cache: tvmjs trusts whatever its cache holds, knows
// only the weight shards, and fetches whole files without byte progress. Here one store serves every file
// (library, tokenizer, configs, shards), verifies bytes before they are used, and reports progress per chunk.
import { createSHA256 } from "hash-wasm";
import { MANIFEST_CACHE, PIECE_BYTES_HEADER, bundleCacheName } from "./cache-layout.js";
import { BundleError } from "./errors.js";
import { parseManifest, sha256Hex } from "./manifest.js";

const MANIFEST = "manifest.json";
// 8 MB: small beside the weights (the one piece held at a time), large enough that a 600 MB bundle is under a
// hundred cache entries.
const PIECE_BYTES = 8 << 20;
// A download cut off keeps its bytes up to a multiple of this, so every piece starts 4-byte aligned (WebGPU
// writes need it) whatever byte the connection dropped at.
const PIECE_ALIGN = 4096;
const pieceKey = (url, offset) => `${url}?piece=${offset}`;
const verifiedKey = (url) => `${url}?verified`; // present once the whole file matched the manifest's sha256
const PIECE_SHA256_HEADER = "Tabllm-Piece-Sha256"; // a piece's own sha256, to check it on later loads
const MB = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
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
    /** @type {Set<string>} files this load will not read */
    this.leftOut = new Set();
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
    this.totalBytes -= this.entry(name).bytes;
    this.leftOut.add(name);
  }

  /** @param {string} name */
  entry(name) {
    const entry = this.manifest.files.find((f) => f.path === name);
    if (!entry) throw new BundleError(`bundle ${this.manifest.bundle_id} has no file ${name}`, "bundle_invalid");
    return entry;
  }

  /**
   * Fail before downloading when the browser's storage quota cannot hold the files still to fetch (the Cache API
   * shares it with the origin's other storage): BundleError "bundle_storage_quota", saying how much is needed
   * and how much is free.
   */
  async checkQuota() {
    const estimate = await globalThis.navigator?.storage?.estimate?.();
    if (!estimate?.quota) return; // the browser does not say: the download itself fails if space runs out
    let needed = 0;
    for (const entry of this.manifest.files) {
      if (!this.leftOut.has(entry.path)) needed += entry.bytes - await this.storedBytes(entry);
    }
    const free = Math.max(0, estimate.quota - (estimate.usage ?? 0));
    if (needed > free) {
      throw new BundleError(`Not enough storage to cache bundle ${this.manifest.bundle_id} (${this.manifest.model}): `
        + `it needs ${MB(needed)} more, and the browser allows this site ${MB(free)} more (quota ${MB(estimate.quota)}, `
        + `used ${MB(estimate.usage ?? 0)}). Delete cached models you no longer use (engine.deleteCachedBundle) `
        + "or free disk space, then load again", "bundle_storage_quota");
    }
  }

  /** How many of a file's bytes the cache holds: its consecutive pieces from the start. */
  async storedBytes(entry) {
    const url = new URL(entry.path, this.baseUrl).href;
    let offset = 0;
    for (;;) {
      const piece = offset < entry.bytes && await this.cache.match(pieceKey(url, offset));
      const bytes = piece ? Number(piece.headers.get(PIECE_BYTES_HEADER)) : 0;
      if (!(bytes > 0)) return offset;
      offset += bytes;
    }
  }

  /** The verified bytes of a file listed in the manifest, in an ArrayBuffer of their own. @param {string} name */
  async read(name) {
    const bytes = new Uint8Array(this.entry(name).bytes);
    await this.stream(name, (chunk, offset) => bytes.set(chunk, offset));
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

  /**
   * Pass a file's bytes to `write(bytes, offset)` in order, in pieces (offsets 4-byte aligned; `bytes` is only
   * valid during the call), from the cache and then from the network, and resolve once they are verified.
   * Rejects if they are not: then what `write` received must not be used. A cached copy that fails its check is
   * deleted and the file is fetched again, from its start, through `write` again.
   *
   * A file not yet verified (being downloaded, or resumed) is hashed whole as it streams (hash-wasm) and checked
   * against the manifest's sha256; then a `?verified` entry marks it. A verified file is checked piece by piece
   * against the sha256 each piece was stored with (SubtleCrypto, several times faster than hash-wasm here:
   * 630 against 115-220 MB/s measured in node on this machine), which is what a warm load pays.
   * @param {string} name @param {(bytes: Uint8Array, offset: number) => void} write
   */
  async stream(name, write) {
    const entry = this.entry(name);
    const url = new URL(name, this.baseUrl).href;
    if (await this.cache.match(verifiedKey(url))) {
      const read = await this.readPieces(url, entry, write, true);
      if (read === entry.bytes) return;
      await this.deletePieces(url); // a piece lost or changed since it was verified
      this.loadedBytes -= read;
    }
    const hash = await createSHA256();
    const deliver = (bytes, offset) => {
      hash.update(bytes);
      write(bytes, offset);
    };
    const fromCache = await this.readPieces(url, entry, deliver, false);
    if (fromCache < entry.bytes) await this.download(url, entry, fromCache, deliver);
    if (hash.digest("hex") === entry.sha256) return this.markVerified(url);
    await this.deletePieces(url);
    if (fromCache > 0) { // the cached part was corrupt: once more, all from the network
      this.loadedBytes -= entry.bytes;
      hash.init();
      await this.download(url, entry, 0, deliver);
      if (hash.digest("hex") === entry.sha256) return this.markVerified(url);
      await this.deletePieces(url);
    }
    throw new BundleError(`${url}: sha256 mismatch (the server's copy is corrupt; rebuild the bundle)`,
      "bundle_checksum_mismatch");
  }

  async markVerified(url) {
    await this.cache.put(verifiedKey(url), new Response(null));
  }

  /**
   * Deliver the cached pieces of a file from its start, up to the first one missing or not as stored (with
   * `checkPieces`, one whose bytes do not match the sha256 it was stored with); returns how many bytes they
   * held. The next piece is read while one is checked and delivered (WebCrypto hashes on a thread of its own),
   * into two buffers used in turn (measured: a new ArrayBuffer per piece left ~60 MB of them for the GC).
   */
  async readPieces(url, entry, deliver, checkPieces) {
    const buffers = [0, 1].map(() => new Uint8Array(Math.min(PIECE_BYTES, entry.bytes)));
    const readPiece = async (offset, buffer) => {
      const piece = await this.cache.match(pieceKey(url, offset));
      if (!piece) return null;
      const length = Number(piece.headers.get(PIECE_BYTES_HEADER));
      const bytes = buffer.subarray(0, length);
      const whole = length > 0 && length <= buffer.length && offset + length <= entry.bytes
        && await readBody(piece, bytes);
      return { bytes: whole ? bytes : null, sha256: piece.headers.get(PIECE_SHA256_HEADER) };
    };
    let offset = 0;
    let reading = readPiece(0, buffers[0]);
    for (let index = 0; reading; index++) {
      const piece = await reading;
      if (!piece) break;
      const end = offset + (piece.bytes?.length ?? 0);
      reading = piece.bytes && end < entry.bytes ? readPiece(end, buffers[(index + 1) % 2]) : null;
      if (!piece.bytes || (checkPieces && (await sha256Hex(piece.bytes)) !== piece.sha256)) {
        reading?.catch(() => {}); // not used: this piece ends what the cache holds
        await this.cache.delete(pieceKey(url, offset));
        break;
      }
      deliver(piece.bytes, offset);
      offset = end;
      this.advance("cache", entry.path, piece.bytes.length);
    }
    return offset;
  }

  /** Delete every cached piece of a file. */
  async deletePieces(url) {
    await this.cache.delete(url, { ignoreSearch: true });
  }

  /**
   * Fetch a file from byte `offset` on (a Range request when it is not 0), delivering and caching it in
   * pieces. When the connection drops, the bytes received so far are cached (up to a PIECE_ALIGN boundary) for
   * the next load to resume from.
   */
  async download(url, entry, offset, deliver) {
    // no-store: the Cache API holds our copy; the HTTP cache would only duplicate it, and a re-fetch after
    // corruption must reach the server.
    const response = await fetchOrThrow(url, { cache: "no-store", headers: offset ? { Range: `bytes=${offset}-` } : {} });
    if (offset && response.status !== 206) {
      throw new BundleError(`${url}: the server ignored the Range request (HTTP ${response.status}), so the cut-off `
        + "download cannot resume", "bundle_fetch_failed");
    }
    const piece = new Uint8Array(Math.min(PIECE_BYTES, entry.bytes - offset));
    let filled = 0;
    const store = async (bytes) => {
      const response = new Response(bytes, { headers: {
        "Content-Type": "application/octet-stream", [PIECE_BYTES_HEADER]: String(bytes.length),
        [PIECE_SHA256_HEADER]: await sha256Hex(bytes),
      } });
      await this.cache.put(pieceKey(url, offset), response).catch((error) => {
        if (error?.name !== "QuotaExceededError") throw error;
        throw new BundleError(`${url}: the browser's storage quota ran out while caching it (${error.message}). `
          + "Delete cached models you no longer use (engine.deleteCachedBundle), then load again",
        "bundle_storage_quota");
      });
    };
    const reader = response.body.getReader();
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        const kept = filled - (filled % PIECE_ALIGN);
        if (kept) await store(piece.subarray(0, kept));
        throw cutOff(url, `after ${offset + filled} of ${entry.bytes} bytes (${error.message})`);
      }
      if (chunk.done) break;
      let value = chunk.value;
      if (offset + filled + value.length > entry.bytes) {
        await reader.cancel();
        throw new BundleError(`${url}: larger than the ${entry.bytes} bytes the manifest lists`, "bundle_checksum_mismatch");
      }
      this.advance("download", entry.path, value.length);
      while (value.length) {
        const taken = Math.min(value.length, piece.length - filled);
        piece.set(value.subarray(0, taken), filled);
        filled += taken;
        value = value.subarray(taken);
        if (filled === piece.length || offset + filled === entry.bytes) {
          deliver(piece.subarray(0, filled), offset);
          await store(piece.subarray(0, filled));
          offset += filled;
          filled = 0;
        }
      }
    }
    if (offset + filled !== entry.bytes) {
      throw cutOff(url, `after ${offset + filled} of the ${entry.bytes} bytes the manifest lists`);
    }
  }

  advance(stage, name, bytes) {
    this.loadedBytes += bytes;
    this.onProgress({
      stage, text: `${stage === "cache" ? "Read from cache" : "Downloading"} ${name}`,
      loadedBytes: this.loadedBytes, totalBytes: this.totalBytes, fraction: this.loadedBytes / this.totalBytes,
    });
  }
}

/** Read a response's body into `into`; false unless it held exactly that many bytes. */
async function readBody(response, into) {
  const reader = response.body.getReader();
  let filled = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return filled === into.length;
    if (filled + value.length > into.length) {
      await reader.cancel();
      return false;
    }
    into.set(value, filled);
    filled += value.length;
  }
}

/** The connection ended before the whole file came (the server stopped, the network dropped). */
function cutOff(url, detail) {
  return new BundleError(`${url}: the download was cut off ${detail}. Load again to retry: the bytes already `
    + "received come from the cache, and the download resumes where it stopped", "bundle_download_interrupted");
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
