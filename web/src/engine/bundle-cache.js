// The bundles the engine keeps in the browser (storage-layout.js: OPFS, and the Cache API where OPFS is
// missing or for bundles cached before OPFS): listed with their sizes, deleted one by one or all but one. Bundle
// ids are content hashes, so a rebuilt model is a new bundle and the old one stays cached until deleted here.
import { InvalidRequestError } from "./errors.js";
import {
  MANIFEST_CACHE, OPFS_DIR, OPFS_MANIFESTS, PIECE_BYTES_HEADER, bundleCacheName, bundleIdOfCache, bundleIdOfDir,
  isBundleFile, opfsBundleDir,
} from "./storage-layout.js";

/**
 * @typedef {{bundleId: string, model: string | null, quantization: string | null, bytes: number}} CachedBundle
 * `bytes`: what the browser holds of its files (a cut-off download's part included); `model` and `quantization`
 * from its cached manifest (null if that is gone).
 */

/** Every cached bundle, by bundle id. @returns {Promise<CachedBundle[]>} */
export async function listCachedBundles() {
  /** @type {Map<string, number>} bundle id -> bytes, of both stores */
  const sizes = new Map();
  const add = (bundleId, bytes) => sizes.set(bundleId, (sizes.get(bundleId) ?? 0) + bytes);
  const opfs = await opfsDir();
  for await (const [name, handle] of opfs?.entries() ?? []) {
    const bundleId = bundleIdOfDir(name);
    if (bundleId === null || handle.kind !== "directory") continue;
    let bytes = 0;
    for await (const [file, fileHandle] of handle.entries()) {
      if (!isBundleFile(file) || fileHandle.kind !== "file") continue;
      // a file a load is writing right now cannot be opened: it counts once written
      bytes += await fileHandle.getFile().then((f) => f.size, () => 0);
    }
    add(bundleId, bytes);
  }
  for (const name of globalThis.caches ? await caches.keys() : []) {
    const bundleId = bundleIdOfCache(name);
    if (bundleId === null) continue;
    let bytes = 0;
    for (const response of await (await caches.open(name)).matchAll()) {
      bytes += Number(response.headers.get(PIECE_BYTES_HEADER)) || 0;
    }
    add(bundleId, bytes);
  }
  const manifests = [...await opfsManifests(opfs), ...await cacheApiManifests()];
  return [...sizes].map(([bundleId, bytes]) => {
    const manifest = manifests.find((m) => m.bundleId === bundleId);
    return { bundleId, model: manifest?.model ?? null, quantization: manifest?.quantization ?? null, bytes };
  }).sort((a, b) => (a.bundleId < b.bundleId ? -1 : 1));
}

/** Delete a bundle's files and manifest from the browser; false if nothing of it was cached.
 * @param {string} bundleId */
export async function deleteCachedBundle(bundleId) {
  if (typeof bundleId !== "string" || !/^[0-9a-f]{16}$/.test(bundleId)) {
    throw new InvalidRequestError(`bundleId must be a bundle id (16 hex digits); got ${JSON.stringify(bundleId)}`,
      "bundleId");
  }
  let deleted = false;
  const opfs = await opfsDir();
  if (opfs) {
    deleted = await opfs.removeEntry(opfsBundleDir(bundleId), { recursive: true }).then(() => true, (error) => {
      if (error?.name === "NotFoundError") return false;
      throw error; // NoModificationAllowedError: a load is reading or writing it right now
    });
    const manifests = await opfs.getDirectoryHandle(OPFS_MANIFESTS).catch(() => null);
    for (const manifest of await opfsManifests(opfs)) {
      if (manifest.bundleId !== bundleId) continue;
      await manifests.removeEntry(manifest.key);
      deleted = true;
    }
  }
  return (await deleteCacheApiBundle(bundleId)) || deleted;
}

/** Delete what the Cache API holds of a bundle: its files and manifest; false if it held nothing.
 * @param {string} bundleId */
export async function deleteCacheApiBundle(bundleId) {
  if (!globalThis.caches) return false;
  let deleted = await caches.delete(bundleCacheName(bundleId));
  const cache = await caches.open(MANIFEST_CACHE);
  for (const manifest of await cacheApiManifests()) {
    if (manifest.bundleId === bundleId) deleted = (await cache.delete(manifest.key)) || deleted;
  }
  return deleted;
}

/** The engine's OPFS directory, or null (no OPFS here, or nothing kept there yet). */
async function opfsDir() {
  try {
    return await (await navigator.storage.getDirectory()).getDirectoryHandle(OPFS_DIR);
  } catch {
    return null;
  }
}

/**
 * @typedef {{key: any, bundleId: string | undefined, model: string | undefined, quantization: string | undefined}}
 *   KeptManifest a cached manifest's fields, and its key (an OPFS file name, or a Cache API request)
 */

/** @param {FileSystemDirectoryHandle | null} opfs @returns {Promise<KeptManifest[]>} */
async function opfsManifests(opfs) {
  const dir = await opfs?.getDirectoryHandle(OPFS_MANIFESTS).catch(() => null);
  const manifests = [];
  for await (const [name, handle] of dir?.entries() ?? []) {
    const manifest = await handle.getFile().then((file) => file.text()).then(JSON.parse).catch(() => null);
    manifests.push(fields(name, manifest));
  }
  return manifests;
}

/** @returns {Promise<KeptManifest[]>} */
async function cacheApiManifests() {
  if (!globalThis.caches) return [];
  const cache = await caches.open(MANIFEST_CACHE);
  const manifests = [];
  for (const request of await cache.keys()) {
    manifests.push(fields(request, await (await cache.match(request)).json().catch(() => null)));
  }
  return manifests;
}

const fields = (key, manifest) => ({
  key, bundleId: manifest?.bundle_id, model: manifest?.model, quantization: manifest?.quantization,
});
