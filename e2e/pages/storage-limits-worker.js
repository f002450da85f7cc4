// The engine's real worker (/static/worker.js) in a browser that reports smaller limits than this machine's,
// set by this script's query:
//   ?quota=BYTES                        navigator.storage.estimate() reports that quota, nothing used yet
//   ?maxStorageBufferBindingSize=BYTES  the GPU adapter's and device's limit (GPUSupportedLimits)
//   ?hardwareAdapter                    the adapter says it is not a software one (SwiftShader is)
import "/static/worker.js";

const params = new URL(import.meta.url).searchParams;
if (params.has("quota")) {
  const quota = Number(params.get("quota"));
  StorageManager.prototype.estimate = async () => ({ quota, usage: 0 });
}
if (params.has("maxStorageBufferBindingSize") && self.GPUSupportedLimits) {
  const value = Number(params.get("maxStorageBufferBindingSize"));
  Object.defineProperty(GPUSupportedLimits.prototype, "maxStorageBufferBindingSize", { get: () => value,
    configurable: true });
}
if (params.has("hardwareAdapter") && self.GPUAdapterInfo) {
  Object.defineProperty(GPUAdapterInfo.prototype, "isFallbackAdapter", { get: () => false, configurable: true });
}
