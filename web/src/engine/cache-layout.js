// Where the engine keeps bundles in the browser's Cache API: the names both the store that fills the caches
// (bundle-store.js, in the worker) and the cache API that lists and deletes them (bundle-cache.js, on the page)
// use. Each bundle's files are in a cache of their own, as pieces (see bundle-store.js); the manifests of every
// bundle share one cache, keyed by their URL.
export const MANIFEST_CACHE = "tabllm-manifests";
const BUNDLE_CACHE_PREFIX = "tabllm-bundle-";
export const bundleCacheName = (bundleId) => `${BUNDLE_CACHE_PREFIX}${bundleId}`;
/** The bundle id a cache of bundle files is named after, or null for another cache. @param {string} name */
export const bundleIdOfCache = (name) => (name.startsWith(BUNDLE_CACHE_PREFIX) ? name.slice(BUNDLE_CACHE_PREFIX.length) : null);
/** Response header of a cached piece: its length, read without reading the body. */
export const PIECE_BYTES_HEADER = "Tabllm-Piece-Bytes";
