// The imports of the CPU model library (an emscripten -pthread link, see compile/toolchain/link.py), for the
// engine's thread and for each extra thread (cpu-thread.js). emscripten writes JS glue for these, which we do not
// ship: the library runs no file system, no pthread_create and no GL, so each is either a few lines here or an
// error that names the missing function. tvmjs adds its own env functions (TVMFFIWasmSafeCall, ...) on top.

const ENOSYS = 52;
const PAGE_BYTES = 65536;

/** The shared memory the library imports: the initial size and maximum its link declares (TOTAL_MEMORY=160MB,
 * MAXIMUM_MEMORY=4GB). Chromium creates it even where the page is not cross-origin isolated (it can then not be
 * passed to another thread). */
export function createLibraryMemory() {
  return new WebAssembly.Memory({ initial: (160 << 20) / PAGE_BYTES, maximum: 65536, shared: true });
}

/**
 * @param {WebAssembly.Module} module
 * @param {WebAssembly.Memory} memory the shared memory
 * @param {() => any} exports the instance's exports, once it exists
 * @param {(message: string) => void} log
 */
export function libraryImports(module, memory, exports, log) {
  // Pointers arrive as i32: JavaScript sees those above 2 GB as negative numbers, hence every `>>> 0` below.
  const bytes = () => new Uint8Array(memory.buffer);
  const view = () => new DataView(memory.buffer);
  const decoder = new TextDecoder();
  let pendingOutput = "";
  const fail = (name) => () => {
    throw new Error(`the CPU model library called ${name}, which this runtime does not provide`);
  };
  const writeTimespec = (pointer) => {
    const milliseconds = performance.timeOrigin + performance.now();
    view().setInt32(pointer >>> 0, Math.floor(milliseconds / 1000), true);
    view().setInt32((pointer >>> 0) + 4, Math.floor((milliseconds % 1000) * 1e6), true);
    return 0;
  };
  const known = {
    env: {
      memory,
      emscripten_get_now: () => performance.now(),
      emscripten_memcpy_big: (dest, src, count) => bytes().copyWithin(dest >>> 0, src >>> 0, (src >>> 0) + (count >>> 0)),
      emscripten_resize_heap: (requested) => {
        const current = memory.buffer.byteLength;
        const wanted = Math.min(Math.max(requested >>> 0, current * 1.25), 2 ** 32 - PAGE_BYTES);
        try {
          memory.grow(Math.ceil((wanted - current) / PAGE_BYTES));
          return 1;
        } catch {
          return 0;
        }
      },
      emscripten_notify_memory_growth: () => {},
      emscripten_check_blocking_allowed: () => {},
      // The first thread's pthread state and thread-local storage, as emscripten's own glue sets them up. Only a
      // Worker may block (wait on an atomic); a page's main thread may not.
      __emscripten_init_main_thread_js: (thread) => {
        const canBlock = typeof WorkerGlobalScope !== "undefined" ? 1 : 0;
        exports()._emscripten_thread_init(thread, 1 - canBlock, 1, canBlock, 0);
        exports().emscripten_tls_init();
      },
      clock_gettime: (_clock, pointer) => writeTimespec(pointer),
      __clock_gettime: (_clock, pointer) => writeTimespec(pointer),
      __cxa_allocate_exception: (size) => exports().malloc(size),
      __cxa_throw: () => {
        throw new Error("the CPU model library raised a C++ exception");
      },
      abort: () => {
        throw new Error("the CPU model library aborted");
      },
      exit: (code) => {
        throw new Error(`the CPU model library exited with code ${code}`);
      },
      __syscall_open: () => -ENOSYS,
      __syscall_fcntl64: () => -ENOSYS,
      __syscall_ioctl: () => -ENOSYS,
      strftime_l: () => 0,
    },
    wasi_snapshot_preview1: {
      // stdout and stderr (TVM's log lines) go to `log`, a line at a time.
      fd_write: (_fd, iovs, count, written) => {
        const data = view();
        let total = 0;
        for (let i = 0; i < count; i++) {
          const pointer = data.getUint32((iovs >>> 0) + 8 * i, true);
          const length = data.getUint32((iovs >>> 0) + 8 * i + 4, true);
          pendingOutput += decoder.decode(bytes().slice(pointer, pointer + length)); // no decoding of shared views
          total += length;
        }
        const lines = pendingOutput.split("\n");
        pendingOutput = lines.pop();
        for (const line of lines) log(line);
        data.setUint32(written >>> 0, total, true);
        return 0;
      },
      fd_read: () => ENOSYS,
      fd_close: () => 0,
      fd_seek: () => ENOSYS,
      environ_sizes_get: (count, size) => {
        view().setUint32(count >>> 0, 0, true);
        view().setUint32(size >>> 0, 0, true);
        return 0;
      },
      environ_get: () => 0,
      proc_exit: (code) => {
        throw new Error(`the CPU model library exited with code ${code}`);
      },
    },
  };
  const imports = {};
  for (const { module: name, name: field, kind } of WebAssembly.Module.imports(module)) {
    imports[name] ??= {};
    imports[name][field] = known[name]?.[field] ?? (kind === "function" ? fail(field) : undefined);
  }
  return imports;
}
