// A bundle kept in OPFS, the origin private file system (storage-layout.js): each file whole in a file of its
// own, written as it downloads and read back with a synchronous access handle in the worker, straight into the
// memory it is for (the CPU library's memory: Sink.place; a piece buffer for the WebGPU upload otherwise).
// Measured in a worker of this machine's Chromium, 1 GB: read into fresh wasm memory at 1.5-1.8 GB/s (the page
// faults of memory never touched; 10-12 GB/s into touched memory), against 300-435 MB/s for the Cache API.
//
// Integrity. A file is checked against the manifest's sha256 once, as it is written (download, resume, or a
// move from the Cache API store); then its record `.verified-<name>` keeps its size and its xxhash64. A warm
// load checks the size and the xxhash64 of the bytes it reads, not the sha256: SubtleCrypto's SHA-256 runs at
// 400-800 MB/s here (1.3-2.5 s per GB, more than the whole read), hash-wasm's xxhash64 at 5.5 GB/s (0.2 s per
// GB). What it guards against is a file changed or damaged on disk since it was verified (truncated, a byte
// flipped), which a 64-bit hash of the whole file catches; not a deliberate forgery, which a script of this
// origin could write into the record as easily as into the file. A file whose size or hash differ is never
// used: a shorter one is resumed from the network with a Range request (sha256-checked whole again), any other
// is fetched again whole. A file without a record (a download cut off) is resumed the same way.
import { createSHA256, createXXHash64 } from "hash-wasm";
import {
  BundleStore, PIECE_ALIGN, PIECE_BYTES, corruptOnServer, manifestOf, parseJson, quotaRanOut,
} from "./bundle-store.js";
import { CacheBundleStore } from "./cache-store.js";
import { BundleError } from "./errors.js";
import { sha256Hex } from "./manifest.js";
import { OPFS_DIR, OPFS_MANIFESTS, opfsBundleDir, verifiedRecordName } from "./storage-layout.js";

/** The engine's OPFS directory, or null where the browser has no OPFS with synchronous access handles (or
 * refuses it, as some private modes do). */
export async function opfsRoot() {
  if (!globalThis.FileSystemFileHandle?.prototype.createSyncAccessHandle || !navigator.storage?.getDirectory) return null;
  try {
    return await (await navigator.storage.getDirectory()).getDirectoryHandle(OPFS_DIR, { create: true });
  } catch {
    return null;
  }
}

export class OpfsBundleStore extends BundleStore {
  /**
   * @param {string} baseUrl @param {import("./manifest.js").Manifest} manifest
   * @param {FileSystemDirectoryHandle} dir the bundle's directory
   * @param {CacheBundleStore | null} cacheApiCopy the bundle as the Cache API store kept it, moved over file by file
   * @param {(p: import("./bundle-store.js").LoadProgress) => void} onProgress
   */
  constructor(baseUrl, manifest, dir, cacheApiCopy, onProgress) {
    super(baseUrl, manifest, onProgress);
    this.dir = dir;
    this.cacheApiCopy = cacheApiCopy;
    this.xxhash = null; // hash-wasm's, made once
  }

  /** @param {FileSystemDirectoryHandle} root the engine's OPFS directory (opfsRoot) */
  static async open(baseUrl, manifestUrl, root, onProgress) {
    const manifests = await root.getDirectoryHandle(OPFS_MANIFESTS, { create: true });
    const manifestName = `${await sha256Hex(new TextEncoder().encode(manifestUrl))}.json`;
    const keep = (text) => writeFile(manifests, manifestName, new TextEncoder().encode(text));
    let kept = await readFile(manifests, manifestName).then((bytes) => bytes && new TextDecoder().decode(bytes));
    if (kept === null) { // a bundle the Cache API store kept, before OPFS
      kept = await CacheBundleStore.manifestText(manifestUrl);
      if (kept !== null) await keep(kept);
    }
    const manifest = await manifestOf(manifestUrl, kept, keep);
    const dir = await root.getDirectoryHandle(opfsBundleDir(manifest.bundle_id), { create: true });
    return new OpfsBundleStore(baseUrl, manifest, dir, await CacheBundleStore.existing(baseUrl, manifest), onProgress);
  }

  /** The bytes OPFS holds of a file (those the Cache API store holds of it verified count too: they move over
   * without a download, the Cache API's copy deleted as each file is written). */
  async storedBytes(entry) {
    if (await this.cacheApiCopy?.holdsVerified(entry.path)) return entry.bytes;
    const file = await this.dir.getFileHandle(entry.path).then((handle) => handle.getFile(), () => null);
    return Math.min(file?.size ?? 0, entry.bytes);
  }

  /**
   * See BundleStore.stream; the file's record and its checks are described at the top of this module.
   * @param {string} name @param {import("./bundle-store.js").Sink} sink
   */
  async stream(name, sink) {
    const entry = this.entry(name);
    const record = await readFile(this.dir, verifiedRecordName(name))
      .then((bytes) => bytes && parseJson(bytes, `${name}'s record`)).catch(() => null);
    if (record?.bytes === entry.bytes) {
      const state = await this.readVerified(entry, record.xxh64, sink);
      if (state === "verified") return;
      await this.dir.removeEntry(verifiedRecordName(name)).catch(() => {});
      if (state === "changed") await this.dir.removeEntry(name).catch(() => {}); // not a prefix to resume from
    }
    await this.fetchFile(entry, sink);
  }

  /**
   * Read a verified file into `sink`, checking its size and xxhash64 against its record: "verified"; "shorter"
   * (nothing delivered: resume it) or "changed" (what was delivered must not be used).
   */
  async readVerified(entry, xxh64, sink) {
    const handle = await this.openSync(entry.path, "read-only");
    if (!handle) return "shorter";
    try {
      const size = handle.getSize();
      if (size !== entry.bytes) return size < entry.bytes ? "shorter" : "changed";
      this.xxhash ??= await createXXHash64();
      const hash = this.xxhash.init();
      const read = this.readInto(handle, entry, sink, size, (bytes) => hash.update(bytes));
      if (read === size && hash.digest("hex") === xxh64) return "verified";
      this.loadedBytes -= read;
      return "changed";
    } finally {
      handle.close();
    }
  }

  /**
   * Deliver a file not verified yet, sha256-checked whole, and write it: the bytes a download cut off kept (to a
   * PIECE_ALIGN boundary), then the rest from the network (a Range request); or, with nothing kept, the Cache API
   * store's verified copy. On a mismatch the file is emptied, and fetched once more, all from the network, if
   * any of it came from storage.
   */
  async fetchFile(entry, sink) {
    const url = this.urlOf(entry.path);
    const handle = await this.openSync(entry.path, "readwrite");
    try {
      const sha256 = await createSHA256();
      const xxhash = await createXXHash64();
      const hash = (bytes) => {
        sha256.update(bytes);
        xxhash.update(bytes);
      };
      const deliver = (bytes, offset) => {
        hash(bytes);
        sink.write(bytes, offset);
      };
      const keep = (bytes, offset) => {
        try {
          handle.write(bytes, { at: offset });
        } catch (error) {
          throw error?.name === "QuotaExceededError" ? quotaRanOut(url, error) : error;
        }
      };
      const size = handle.getSize();
      const kept = size === entry.bytes ? size : size > entry.bytes ? 0 : size - (size % PIECE_ALIGN);
      if (kept !== size) handle.truncate(kept);
      const fromStorage = kept && this.readInto(handle, entry, sink, kept, hash);
      const moved = !fromStorage && await this.cacheApiCopy?.holdsVerified(entry.path);
      if (moved) {
        await this.cacheApiCopy.stream(entry.path, { write: (bytes, offset) => {
          if (offset === 0) [sha256, xxhash].forEach((h) => h.init()); // it starts again after a corrupt piece
          deliver(bytes, offset);
          keep(bytes, offset);
          this.advance("cache", entry.path, bytes.length);
        } });
      } else if (fromStorage < entry.bytes) {
        await this.download(url, entry, fromStorage, deliver, keep);
      }
      if (sha256.digest("hex") !== entry.sha256) {
        handle.truncate(0);
        if (!fromStorage && !moved) throw corruptOnServer(url);
        this.loadedBytes -= entry.bytes;
        [sha256, xxhash].forEach((h) => h.init());
        await this.download(url, entry, 0, deliver, keep);
        if (sha256.digest("hex") !== entry.sha256) {
          handle.truncate(0);
          throw corruptOnServer(url);
        }
      }
      handle.flush();
      await writeFile(this.dir, verifiedRecordName(entry.path),
        new TextEncoder().encode(JSON.stringify({ bytes: entry.bytes, xxh64: xxhash.digest("hex") })));
    } finally {
      handle.close();
    }
    await this.cacheApiCopy?.deleteFile(entry.path); // the Cache API's copy (or what it held of it) is not needed now
  }

  /**
   * Read a file's first `end` bytes into `sink` in pieces (each placed where the sink wants it, or read into a
   * buffer and written), passing each to `check` too; returns how many were read (fewer if the file is shorter).
   * @param {FileSystemSyncAccessHandle} handle @param {import("./bundle-store.js").Sink} sink
   * @param {(bytes: Uint8Array) => void} check
   */
  readInto(handle, entry, sink, end, check) {
    let buffer = null;
    for (let offset = 0; offset < end;) {
      const length = Math.min(PIECE_BYTES, end - offset);
      const placed = sink.place?.(offset, length);
      const bytes = placed ?? (buffer ??= new Uint8Array(Math.min(PIECE_BYTES, end))).subarray(0, length);
      if (handle.read(bytes, { at: offset }) !== bytes.length) return offset;
      check(bytes);
      if (!placed) sink.write(bytes, offset);
      offset += bytes.length;
      this.advance("cache", entry.path, bytes.length);
    }
    return end;
  }

  /**
   * A synchronous access handle on one of the bundle's files: "read-only" (several loads may read it at once;
   * null if the file is missing) or "readwrite" (created if missing; only one at a time).
   * @param {string} name @param {"read-only" | "readwrite"} mode
   */
  async openSync(name, mode) {
    const file = await this.dir.getFileHandle(name, { create: mode === "readwrite" }).catch((error) => {
      if (error?.name === "NotFoundError") return null;
      throw error;
    });
    try {
      return file && await file.createSyncAccessHandle({ mode });
    } catch (error) {
      if (error?.name !== "NoModificationAllowedError") throw error;
      throw new BundleError(`${this.urlOf(name)}: another tab or worker is writing this file of bundle `
        + `${this.manifest.bundle_id} (loading the same model); load again once it is done`, "bundle_storage_busy");
    }
  }
}

/** The bytes of a small file of `dir`, or null if it is missing. @param {FileSystemDirectoryHandle} dir */
async function readFile(dir, name) {
  const handle = await dir.getFileHandle(name).catch((error) => {
    if (error?.name === "NotFoundError") return null;
    throw error;
  });
  return handle && new Uint8Array(await (await handle.getFile()).arrayBuffer());
}

/** Write a small file of `dir` whole. @param {FileSystemDirectoryHandle} dir @param {Uint8Array} bytes */
async function writeFile(dir, name, bytes) {
  const handle = await (await dir.getFileHandle(name, { create: true })).createSyncAccessHandle();
  try {
    handle.truncate(0);
    handle.write(bytes, { at: 0 });
    handle.flush();
  } finally {
    handle.close();
  }
}
