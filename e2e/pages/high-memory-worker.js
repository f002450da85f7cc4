// The engine's real worker (/static/worker.js) whose CPU library first takes 2 GB of its memory, so that all the
// model's weights, its KV cache and tvmjs's call stack lie above 2^31, as a 3B model's do: addresses that a
// signed 32-bit number cannot hold.
import "/static/worker.js";

// Two allocations: one of 2^31 bytes would be a negative size to the library's sbrk.
const BALLAST_BYTES = [2 ** 30, 2 ** 30];
const Instance = WebAssembly.Instance;
WebAssembly.Instance = new Proxy(Instance, {
  construct(target, args) {
    const instance = new target(...args);
    if (!instance.exports.tabllm_thread_pool_configure) return instance;
    // The exports object is frozen: hand tvmjs a copy whose constructor call also takes the ballast.
    const exports = { ...instance.exports };
    exports.__wasm_call_ctors = () => {
      instance.exports.__wasm_call_ctors();
      for (const bytes of BALLAST_BYTES) {
        if (!instance.exports.malloc(bytes)) throw new Error("the library could not allocate the ballast");
      }
    };
    return { exports };
  },
});
