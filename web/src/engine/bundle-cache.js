// The bundles the engine keeps in the browser's Cache API (cache-layout.js): listed with their sizes, deleted
// one by one or all but one. Bundle ids are content hashes, so a rebuilt model is a new bundle and the old one
// stays cached until deleted here.
import { MANIFEST_CACHE, PIECE_BYTES_HEADER, bundleCacheName, bundleIdOfCache } from "./cache-layout.js";
import { InvalidRequestError } from "./errors.js";

/**
 * @typedef {{bundleId: string, model: string | null, quantization: string | null, bytes: number}} CachedBundle
 * `bytes`: what the Cache API holds of its files (pieces of a cut-off download included); `model` and
 * `quantization` from its cached manifest (null if that is gone).
 */

/** Every cached bundle, by bundle id. @returns {Promise<CachedBundle[]>} */
export async function listCachedBundles() {
  const manifests = await cachedManifests();
  const bundles = [];
  for (const name of await caches.keys()) {
    const bundleId = bundleIdOfCache(name);
    if (bundleId === null) continue;
    let bytes = 0;
    for (const response of await (await caches.open(name)).matchAll()) {
      bytes += Number(response.headers.get(PIECE_BYTES_HEADER)) || 0;
    }
    const manifest = manifests.find((m) => m.bundleId === bundleId);
    bundles.push({ bundleId, model: manifest?.model ?? null, quantization: manifest?.quantization ?? null, bytes });
  }
  return bundles.sort((a, b) => (a.bundleId < b.bundleId ? -1 : 1));
}

/** Delete a bundle's files and manifest from the cache; false if nothing of it was cached.
 * @param {string} bundleId */
export async function deleteCachedBundle(bundleId) {
  if (typeof bundleId !== "string" || !/^[0-9a-f]{16}$/.test(bundleId)) {
    throw new InvalidRequestError(`bundleId must be a bundle id (16 hex digits); got ${JSON.stringify(bundleId)}`,
      "bundleId");
  }
  let deleted = await caches.delete(bundleCacheName(bundleId));
  const manifests = await caches.open(MANIFEST_CACHE);
  for (const manifest of await cachedManifests()) {
    if (manifest.bundleId === bundleId) deleted = (await manifests.delete(manifest.request)) || deleted;
  }
  return deleted;
}

/** The cached manifests: bundle id, model and quantization, and the request they are cached under. */
async function cachedManifests() {
  const cache = await caches.open(MANIFEST_CACHE);
  const manifests = [];
  for (const request of await cache.keys()) {
    const manifest = await (await cache.match(request)).json().catch(() => null);
    manifests.push({ request, bundleId: manifest?.bundle_id, model: manifest?.model, quantization: manifest?.quantization });
  }
  return manifests;
}
