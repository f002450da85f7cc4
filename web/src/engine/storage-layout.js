// Where the engine keeps bundles in the browser: the names that the stores filling it (in the worker) and the
// cache API listing and deleting bundles (bundle-cache.js, on the page) share.
//
// OPFS (the origin private file system; opfs-store.js), the store of choice: a directory `tabllm` holding
// `manifests/` (each cached manifest.json, named after the sha256 of its URL) and one directory per bundle,
// `bundle-<id>`, with the bundle's files under their own names and, for each file verified whole, its record
// `.verified-<name>` (a manifest's file names never start with ".").
//
// The Cache API (cache-store.js), where OPFS is missing, and where tabllm kept bundles before OPFS: one cache
// per bundle (`tabllm-bundle-<id>`) holding its files as pieces, and one cache of every bundle's manifest.
export const OPFS_DIR = "tabllm";
export const OPFS_MANIFESTS = "manifests";
export const opfsBundleDir = (bundleId) => `bundle-${bundleId}`;
/** The bundle id a directory of bundle files is named after, or null. @param {string} name */
export const bundleIdOfDir = (name) => (name.startsWith("bundle-") ? name.slice("bundle-".length) : null);
export const verifiedRecordName = (file) => `.verified-${file}`;
/** Whether an OPFS entry of a bundle directory is one of the bundle's files (not a record). @param {string} name */
export const isBundleFile = (name) => !name.startsWith(".");

export const MANIFEST_CACHE = "tabllm-manifests";
const BUNDLE_CACHE_PREFIX = "tabllm-bundle-";
export const bundleCacheName = (bundleId) => `${BUNDLE_CACHE_PREFIX}${bundleId}`;
/** The bundle id a cache of bundle files is named after, or null for another cache. @param {string} name */
export const bundleIdOfCache = (name) => (name.startsWith(BUNDLE_CACHE_PREFIX) ? name.slice(BUNDLE_CACHE_PREFIX.length) : null);
/** Response header of a cached piece: its length, read without reading the body. */
export const PIECE_BYTES_HEADER = "Tabllm-Piece-Bytes";
