// One extra thread of the CPU model library (see model-library.js): instantiate the library on its shared memory,
// set up this thread's pthread state, stack and thread-local storage as emscripten's glue would, report ready,
// then serve the library's thread pool; that call never returns (the engine terminates this worker).
import { libraryImports } from "./library-imports.js";

self.onmessage = ({ data: { module, memory, index, state, stackTop, stackBytes } }) => {
  let exports = null;
  try {
    const log = (line) => console.log(`[cpu thread ${index}] ${line}`);
    exports = new WebAssembly.Instance(module, libraryImports(module, memory, () => exports, log)).exports;
    exports._emscripten_thread_init(state, 0, 0, 1, 0);
    exports.emscripten_stack_set_limits(stackTop, stackTop - stackBytes);
    exports.stackRestore(stackTop);
    exports.emscripten_tls_init();
  } catch (error) {
    self.postMessage({ error: `CPU thread ${index} could not start: ${error.message}` });
    return;
  }
  self.postMessage({ ready: true });
  exports.tabllm_thread_pool_work();
};
