// The files of a bundle, verified and kept in the browser: what both stores share (open-store.js picks one:
// OPFS, opfs-store.js, where the browser has it; the Cache API, cache-store.js, otherwise). Every file is
// checked against the manifest's sha256 when it is stored; a file read again is checked as its store describes.
// A second load makes no network request (bundle URLs are content-addressed, /bundles/<bundle_id>/, so the
// manifest is kept too); a kept file that fails its check is fetched again.
//
// Files are downloaded in pieces of at most PIECE_BYTES, kept as they arrive: a download cut off keeps what
// came, and the next load asks for the rest with a Range request. A file is passed piece by piece to a Sink and
// checked as it streams, so a shard goes into the weights' memory without ever being held whole
// (bench/load_memory.py).
//
// Why our own store rather than tvmjs's fetchTensorCache cache: tvmjs trusts whatever its cache holds, knows
// only the weight shards, and fetches whole files without byte progress. Here one store serves every file
// (library, tokenizer, configs, shards), verifies bytes before they are used, and reports progress per chunk.
import { BundleError } from "./errors.js";
import { parseManifest } from "./manifest.js";

export const MANIFEST = "manifest.json";
// 8 MB: small beside the weights (the one piece held at a time), large enough that a 600 MB bundle is under a
// hundred Cache API entries.
export const PIECE_BYTES = 8 << 20;
// A download cut off keeps its bytes up to a multiple of this, so every piece starts 4-byte aligned (WebGPU
// writes need it) whatever byte the connection dropped at.
export const PIECE_ALIGN = 4096;
const MB = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
/**
 * @typedef {{stage: string, text: string, loadedBytes: number, totalBytes: number, fraction: number}} LoadProgress
 *   stage: "manifest" | "download" (from the network) | "cache" (from the browser's storage) | "compile" | "ready"
 * @typedef {{write: (bytes: Uint8Array, offset: number) => void,
 *            place?: (offset: number, length: number) => Uint8Array | null}} Sink
 *   Where a file's bytes go. `write` copies bytes (valid only during the call; offsets 4-byte aligned) to their
 *   place. `place`, where given, is the memory the bytes from `offset` on belong in (at most `length` of them), or
 *   null: a store that reads from a file reads them straight there instead of calling `write`.
 */

export class BundleStore {
  /**
   * @param {string} baseUrl absolute, ending in "/"
   * @param {import("./manifest.js").Manifest} manifest
   * @param {(p: LoadProgress) => void} onProgress
   */
  constructor(baseUrl, manifest, onProgress) {
    this.baseUrl = baseUrl;
    this.manifest = manifest;
    this.onProgress = onProgress;
    this.totalBytes = manifest.files.reduce((sum, f) => sum + f.bytes, 0);
    this.loadedBytes = 0;
    /** @type {Set<string>} files this load will not read */
    this.leftOut = new Set();
    /** @type {Uint8Array | null} the piece downloads gather bytes in, between downloads */
    this.sparePiece = null;
  }

  /** The load is over: its downloads' piece is let go. The store lives on as long as the engine may read a stored
   * file again (tokenizer.json, for the plain tokenizer), and 8 MB is much for a rare read. */
  endLoad() {
    this.sparePiece = null;
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

  /** @param {string} name */
  urlOf(name) {
    return new URL(name, this.baseUrl).href;
  }

  /**
   * Fail before downloading when the browser's storage quota cannot hold the files still to fetch (the store
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

  /** How many of a file's bytes the store holds (or will not need to fetch). @abstract
   * @param {import("./manifest.js").ManifestFile} entry @returns {Promise<number>} */
  async storedBytes(entry) { // eslint-disable-line no-unused-vars
    throw new Error("a BundleStore subclass defines storedBytes");
  }

  /**
   * Pass a file's bytes to `sink` in order (see Sink), and resolve once they are verified. Rejects if they are
   * not: then what `sink` received must not be used. A kept copy that fails its check is fetched again, and its
   * bytes passed to `sink` again from the start. @abstract
   * @param {string} name @param {Sink} sink
   */
  async stream(name, sink) { // eslint-disable-line no-unused-vars
    throw new Error("a BundleStore subclass defines stream");
  }

  /** The verified bytes of a file listed in the manifest, in an ArrayBuffer of their own. @param {string} name */
  async read(name) {
    const bytes = new Uint8Array(this.entry(name).bytes);
    await this.stream(name, {
      place: (offset, length) => bytes.subarray(offset, offset + length),
      write: (chunk, offset) => bytes.set(chunk, offset),
    });
    return bytes;
  }

  /** Parsed JSON of a listed file. @param {string} name */
  async readJson(name) {
    return parseJson(await this.read(name), `${name} in bundle ${this.manifest.bundle_id}`);
  }

  /**
   * Fetch a file from byte `offset` on (a Range request when it is not 0), passing it in pieces to `deliver` and
   * then to `keep` (the store's copy; offsets 4-byte aligned). When the connection drops, the bytes received so
   * far go to `keep` (up to a PIECE_ALIGN boundary) for the next load to resume from.
   * @param {(bytes: Uint8Array, offset: number) => void} deliver
   * @param {(bytes: Uint8Array, offset: number) => Promise<void> | void} keep
   */
  async download(url, entry, offset, deliver, keep) {
    // no-store: the store holds our copy; the HTTP cache would only duplicate it, and a re-fetch after
    // corruption must reach the server.
    const response = await fetchOrThrow(url, { cache: "no-store", headers: offset ? { Range: `bytes=${offset}-` } : {} });
    if (offset && response.status !== 206) {
      throw new BundleError(`${url}: the server ignored the Range request (HTTP ${response.status}), so the cut-off `
        + "download cannot resume", "bundle_fetch_failed");
    }
    // One piece for all of this store's downloads, and the network's bytes read into one small buffer: a cold
    // load that took a new piece per file and each chunk the network gave as a new array peaked 80 MB higher with
    // the 0.5B model, garbage not yet collected (bench/load_memory.py).
    const whole = this.sparePiece ?? new Uint8Array(PIECE_BYTES);
    this.sparePiece = null; // a download running at the same time takes a piece of its own
    const piece = whole.subarray(0, Math.min(PIECE_BYTES, entry.bytes - offset));
    let filled = 0;
    const reader = new ChunkReader(response.body);
    try {
      for (;;) {
        let value;
        try {
          value = await reader.read();
        } catch (error) {
          const kept = filled - (filled % PIECE_ALIGN);
          if (kept) await keep(piece.subarray(0, kept), offset);
          throw cutOff(url, `after ${offset + filled} of ${entry.bytes} bytes (${error.message})`);
        }
        if (!value) break;
        if (offset + filled + value.length > entry.bytes) {
          await reader.cancel();
          throw new BundleError(`${url}: larger than the ${entry.bytes} bytes the manifest lists`,
            "bundle_checksum_mismatch");
        }
        this.advance("download", entry.path, value.length);
        while (value.length) {
          const taken = Math.min(value.length, piece.length - filled);
          piece.set(value.subarray(0, taken), filled);
          filled += taken;
          value = value.subarray(taken);
          if (filled === piece.length || offset + filled === entry.bytes) {
            deliver(piece.subarray(0, filled), offset);
            await keep(piece.subarray(0, filled), offset);
            offset += filled;
            filled = 0;
          }
        }
      }
    } finally {
      this.sparePiece = whole;
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

/**
 * The bundle's manifest: the kept copy (`kept`, its text or null) if it is still valid, else fetched and handed
 * to `keep`. @param {string} manifestUrl @param {string | null} kept @param {(text: string) => Promise<void>} keep
 */
export async function manifestOf(manifestUrl, kept, keep) {
  const manifest = kept && (await parseManifest(kept, manifestUrl).catch(() => null));
  if (manifest) return manifest;
  const response = await fetchOrThrow(manifestUrl);
  const text = await response.text().catch((error) => {
    throw cutOff(manifestUrl, `(${error.message})`);
  });
  const fetched = await parseManifest(text, manifestUrl);
  await keep(text);
  return fetched;
}

/** @param {Uint8Array} bytes @param {string} what */
export function parseJson(bytes, what) {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new BundleError(`${what} is not valid JSON (${error.message})`, "bundle_invalid");
  }
}

/** The store cannot keep a file: the storage quota ran out while writing it. */
export function quotaRanOut(url, error) {
  return new BundleError(`${url}: the browser's storage quota ran out while caching it (${error.message}). `
    + "Delete cached models you no longer use (engine.deleteCachedBundle), then load again", "bundle_storage_quota");
}

/** A file whose bytes do not match the manifest's sha256 on the server itself. */
export function corruptOnServer(url) {
  return new BundleError(`${url}: sha256 mismatch (the server's copy is corrupt; rebuild the bundle)`,
    "bundle_checksum_mismatch");
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

/**
 * A response body's bytes, chunk by chunk, each valid until the next read. Where the browser reads a body into a
 * given buffer (a BYOB reader: Chromium, Firefox), one buffer serves every chunk; a pending read's buffer is lost
 * if the connection drops, so it is not the piece the received bytes are gathered in.
 */
export class ChunkReader {
  static BUFFER_BYTES = 256 << 10;

  /** @param {ReadableStream<Uint8Array>} body */
  constructor(body) {
    try {
      this.reader = body.getReader({ mode: "byob" });
      this.buffer = new ArrayBuffer(ChunkReader.BUFFER_BYTES);
    } catch {
      this.reader = body.getReader(); // not a byte stream here
      this.buffer = null;
    }
  }

  /** @returns {Promise<Uint8Array | null>} the next chunk, or null at the end */
  async read() {
    const { done, value } = await (this.buffer ? this.reader.read(new Uint8Array(this.buffer)) : this.reader.read());
    if (done) return null;
    if (this.buffer) this.buffer = value.buffer; // the read took the buffer over and hands it back
    return value;
  }

  cancel() {
    return this.reader.cancel();
  }
}
