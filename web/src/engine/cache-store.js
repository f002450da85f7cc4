// A bundle kept in the Cache API (storage-layout.js): the store where OPFS is missing, and the one tabllm used
// before OPFS (opfs-store.js moves such a bundle over as it reads it). A file is cached as pieces of at most
// PIECE_BYTES (key `<url>?piece=<offset>`), written as they arrive, each with its own sha256; a `?verified`
// entry marks a file whose whole bytes matched the manifest's sha256.
//
// Reading it back is the slow part of a warm load: the page reads cached pieces at 300-435 MB/s here, whatever
// the reads in flight (1 GB: 2.4 s or more), and each piece is checked against its sha256 (SubtleCrypto,
// ~800 MB/s).
import { createSHA256 } from "hash-wasm";
import {
  BundleStore, ChunkReader, PIECE_BYTES, corruptOnServer, manifestOf, quotaRanOut,
} from "./bundle-store.js";
import { deleteCacheApiBundle } from "./bundle-cache.js";
import { sha256Hex } from "./manifest.js";
import { MANIFEST_CACHE, PIECE_BYTES_HEADER, bundleCacheName } from "./storage-layout.js";

const pieceKey = (url, offset) => `${url}?piece=${offset}`;
const verifiedKey = (url) => `${url}?verified`; // present once the whole file matched the manifest's sha256
const PIECE_SHA256_HEADER = "Tabllm-Piece-Sha256"; // a piece's own sha256, to check it on later loads

export class CacheBundleStore extends BundleStore {
  /**
   * @param {string} baseUrl @param {import("./manifest.js").Manifest} manifest @param {Cache} cache
   * @param {(p: import("./bundle-store.js").LoadProgress) => void} onProgress
   */
  constructor(baseUrl, manifest, cache, onProgress) {
    super(baseUrl, manifest, onProgress);
    this.cache = cache;
  }

  static async open(baseUrl, manifestUrl, onProgress) {
    const manifests = await caches.open(MANIFEST_CACHE);
    const manifest = await manifestOf(manifestUrl, await CacheBundleStore.manifestText(manifestUrl),
      (text) => manifests.put(manifestUrl, new Response(text, { headers: { "Content-Type": "application/json" } })));
    return new CacheBundleStore(baseUrl, manifest, await caches.open(bundleCacheName(manifest.bundle_id)), onProgress);
  }

  /** The text of the manifest cached for `manifestUrl`, or null (also where the browser has no Cache API).
   * @param {string} manifestUrl */
  static async manifestText(manifestUrl) {
    if (!globalThis.caches) return null;
    const cached = await (await caches.open(MANIFEST_CACHE)).match(manifestUrl);
    return cached ? cached.text() : null;
  }

  /** The bundle's store if the Cache API holds some of its files, else null (without creating its cache). */
  static async existing(baseUrl, manifest) {
    if (!globalThis.caches) return null;
    const name = bundleCacheName(manifest.bundle_id);
    return (await caches.has(name)) ? new CacheBundleStore(baseUrl, manifest, await caches.open(name), () => {}) : null;
  }

  /** How many of a file's bytes the cache holds: its consecutive pieces from the start. */
  async storedBytes(entry) {
    const url = this.urlOf(entry.path);
    let offset = 0;
    for (;;) {
      const piece = offset < entry.bytes && await this.cache.match(pieceKey(url, offset));
      const bytes = piece ? Number(piece.headers.get(PIECE_BYTES_HEADER)) : 0;
      if (!(bytes > 0)) return offset;
      offset += bytes;
    }
  }

  /** Whether the cache holds the whole file, verified. @param {string} name */
  async holdsVerified(name) {
    return Boolean(await this.cache.match(verifiedKey(this.urlOf(name))));
  }

  /** Delete a file's pieces, and the bundle's cache (with its manifest) once it holds nothing.
   * @param {string} name */
  async deleteFile(name) {
    await this.deletePieces(this.urlOf(name));
    if ((await this.cache.keys()).length === 0) await deleteCacheApiBundle(this.manifest.bundle_id);
  }

  /**
   * See BundleStore.stream (`sink.write` only). A file not yet verified (being downloaded, or resumed) is hashed
   * whole as it streams (hash-wasm) and checked against the manifest's sha256; then a `?verified` entry marks it.
   * A verified file is checked piece by piece against the sha256 each piece was stored with (SubtleCrypto,
   * several times faster than hash-wasm here: 630 against 115-220 MB/s measured in node on this machine).
   * @param {string} name @param {import("./bundle-store.js").Sink} sink
   */
  async stream(name, sink) {
    const entry = this.entry(name);
    const url = this.urlOf(name);
    const write = (bytes, offset) => sink.write(bytes, offset);
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
    const keep = (bytes, offset) => this.keepPiece(url, bytes, offset);
    const fromCache = await this.readPieces(url, entry, deliver, false);
    if (fromCache < entry.bytes) await this.download(url, entry, fromCache, deliver, keep);
    if (hash.digest("hex") === entry.sha256) return this.markVerified(url);
    await this.deletePieces(url);
    if (fromCache > 0) { // the cached part was corrupt: once more, all from the network
      this.loadedBytes -= entry.bytes;
      hash.init();
      await this.download(url, entry, 0, deliver, keep);
      if (hash.digest("hex") === entry.sha256) return this.markVerified(url);
      await this.deletePieces(url);
    }
    throw corruptOnServer(url);
  }

  async markVerified(url) {
    await this.cache.put(verifiedKey(url), new Response(null));
  }

  async keepPiece(url, bytes, offset) {
    const response = new Response(bytes, { headers: {
      "Content-Type": "application/octet-stream", [PIECE_BYTES_HEADER]: String(bytes.length),
      [PIECE_SHA256_HEADER]: await sha256Hex(bytes),
    } });
    await this.cache.put(pieceKey(url, offset), response).catch((error) => {
      if (error?.name !== "QuotaExceededError") throw error;
      throw quotaRanOut(url, error);
    });
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
}

/** Read a response's body into `into`; false unless it held exactly that many bytes. */
async function readBody(response, into) {
  const reader = new ChunkReader(response.body);
  let filled = 0;
  for (let value; (value = await reader.read());) {
    if (filled + value.length > into.length) {
      await reader.cancel();
      return false;
    }
    into.set(value, filled);
    filled += value.length;
  }
  return filled === into.length;
}
