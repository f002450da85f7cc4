// The one place that chooses where a load keeps its bundle: OPFS where a worker can open its files
// synchronously (Chromium, Firefox, Safari; not some private modes), else the Cache API.
import { MANIFEST } from "./bundle-store.js";
import { CacheBundleStore } from "./cache-store.js";
import { OpfsBundleStore, opfsRoot } from "./opfs-store.js";

/**
 * @param {string} bundleUrl the bundle's absolute base URL (trailing "/" optional)
 * @param {(p: import("./bundle-store.js").LoadProgress) => void} onProgress
 * @returns {Promise<import("./bundle-store.js").BundleStore>}
 */
export async function openBundleStore(bundleUrl, onProgress) {
  const baseUrl = bundleUrl.endsWith("/") ? bundleUrl : `${bundleUrl}/`;
  const manifestUrl = new URL(MANIFEST, baseUrl).href;
  onProgress({ stage: "manifest", text: `Reading ${manifestUrl}`, loadedBytes: 0, totalBytes: 0, fraction: 0 });
  const root = await opfsRoot();
  return root ? OpfsBundleStore.open(baseUrl, manifestUrl, root, onProgress)
    : CacheBundleStore.open(baseUrl, manifestUrl, onProgress);
}
