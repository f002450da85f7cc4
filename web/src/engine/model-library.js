// A bundle's model library instantiated through tvmjs. The WebGPU library (*-webgpu.wasm) is a standalone
// emscripten module. The CPU library (*-wasm32.wasm) runs on WebAssembly threads: it lives in a shared memory;
// this thread instantiates it, and each extra thread (cpu-thread.js, a Web Worker) instantiates the same
// compiled module on the same memory and then serves the library's thread pool (compile/toolchain/thread_pool.c):
// TVM's parallel loops hand their tasks to all of them. Passing a shared memory to another thread
// needs a cross-origin isolated page (COOP and COEP headers); without one the library runs on one thread.
import * as tvmjs from "@mlc-ai/web-runtime";
import { BundleError } from "./errors.js";
import { createLibraryMemory, libraryImports } from "./library-imports.js";
import { addressWholeMemory } from "./wasm32-addresses.js";

export { tvmjs }; // for pages that drive a library directly: tvmjs's classes must be those of this copy

const THREAD_STACK_BYTES = 1 << 20; // the kernels keep their tiles on the stack (TVM's limit is 1 KB per buffer)
const THREAD_STATE_BYTES = 1024; // emscripten's struct pthread needs about 200
// Polls of a counter (some tens of microseconds) before a thread sleeps on it (thread_pool.c): longer holds a core
// that the browser's own threads need (measured on 2 cores, with a fixed share of each loop per thread: 200,000
// made 2 threads slower than one).
const SPIN_ROUNDS = 20000;

// The smallest module that uses relaxed SIMD: a function returning f32x4.relaxed_madd of three zero vectors.
const RELAXED_SIMD_PROBE = (() => {
  const zeroVector = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
  const body = [0x00, ...zeroVector, ...zeroVector, ...zeroVector, 0xfd, 0x85, 0x02, 0x0b]; // no locals; madd; end
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x0a, body.length + 2, 0x01, body.length, ...body]); // its code
})();

/** Whether this browser runs relaxed SIMD (Chrome and Firefox do, Safari does not): then the CPU library of
 * choice is the bundle's relaxed-SIMD build. */
export function hasRelaxedSimd() {
  return WebAssembly.validate(RELAXED_SIMD_PROBE);
}

/**
 * How many threads the CPU library gets: `requested`, or one per core; one where threads are impossible, and
 * then `limitedBy` says why.
 * @param {number | undefined} requested
 * @returns {{threads: number, limitedBy: string | null}}
 */
export function threadCount(requested) {
  const wanted = requested ?? (globalThis.navigator?.hardwareConcurrency || 1);
  if (wanted > 1 && !globalThis.crossOriginIsolated) {
    return { threads: 1, limitedBy: "the page is not cross-origin isolated (it needs the COOP and COEP headers)" };
  }
  return { threads: wanted, limitedBy: null };
}

/**
 * A tvmjs instance of a model library; for the CPU library, with `threads` - 1 extra threads started and ready.
 * Only a Worker can run more than one thread: the library's thread waits on the others.
 * @param {Uint8Array} library the library's bytes
 * @param {"webgpu" | "cpu"} device which library it is
 * @param {number} [threads]
 * @returns {Promise<{tvm: any, dispose: () => void}>}
 */
export async function instantiateModelLibrary(library, device, threads = 1) {
  const log = (line) => console.log(`[tvmjs] ${line}`);
  if (device === "webgpu") {
    const tvm = await tvmjs.instantiate(library, tvmjs.createPolyfillWASI(), log);
    return { tvm, dispose: () => tvm.dispose() };
  }
  const module = await WebAssembly.compile(library);
  if (!WebAssembly.Module.imports(module).some(({ kind }) => kind === "memory")) {
    throw new BundleError("This bundle's CPU library is from an older tabllm (a single-threaded library with a "
      + "memory of its own): compile the bundle again with `python -m compile`", "bundle_invalid");
  }
  const memory = createLibraryMemory();
  let exports = null;
  const tvm = new tvmjs.Instance(module, {
    imports: libraryImports(module, memory, () => exports, log),
    start: (instance) => {
      exports = instance.exports;
      exports.__wasm_call_ctors();
    },
  });
  addressWholeMemory(tvm); // the weights of a 3B model alone take more than 2 GB
  let workers = [];
  try {
    workers = await startThreads(module, memory, exports, threads - 1);
  } catch (error) {
    tvm.dispose();
    throw error;
  }
  exports.tabllm_thread_pool_configure(threads, SPIN_ROUNDS);
  return {
    tvm,
    dispose() {
      tvm.dispose();
      for (const worker of workers) worker.terminate();
    },
  };
}

/** `count` Web Workers, each with its own stack and thread state in the library's memory, serving its pool. */
async function startThreads(module, memory, exports, count) {
  const workers = [];
  const ready = [];
  for (let index = 1; index <= count; index++) {
    const stack = exports.malloc(THREAD_STACK_BYTES) >>> 0; // i32 addresses: see wasm32-addresses.js
    const state = exports.malloc(THREAD_STATE_BYTES) >>> 0;
    new Uint8Array(memory.buffer, state, THREAD_STATE_BYTES).fill(0);
    const worker = new Worker(new URL("./cpu-thread.js", import.meta.url), { type: "module" });
    workers.push(worker);
    ready.push(new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve());
      worker.onerror = (event) => reject(new Error(`CPU thread ${index} could not start: ${event.message}`));
    }));
    worker.postMessage({ module, memory, index, state, stackTop: stack + THREAD_STACK_BYTES,
      stackBytes: THREAD_STACK_BYTES });
  }
  try {
    await Promise.all(ready);
  } catch (error) {
    for (const worker of workers) worker.terminate();
    throw error;
  }
  return workers;
}
