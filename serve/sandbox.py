"""A bundle's CPU model library (`*-wasm32-relaxed.wasm`, or `*-wasm32.wasm`) in a wasmtime sandbox.

The library is an emscripten `-pthread` link: it imports a shared memory and a few dozen emscripten and WASI
functions. The sandbox gives it exactly what web/src/engine/library-imports.js gives it in the tab, and nothing
else: no file system (no preopened directory, `__syscall_open` answers ENOSYS), no sockets, no environment
variables; stdout and stderr (TVM's log lines) go to this module's logger. Any other import is a function that
traps with its name, so a module that tries to reach the host another way fails at once.

Bounds: the shared memory's maximum is the instance's memory limit (malloc then returns NULL and TVM raises an
error), and every call into the module runs under an epoch deadline, so a runaway call traps (SandboxTimeout).

Threads: the library's thread pool (compile/toolchain/thread_pool.c) runs each parallel loop serially while it is
configured for one thread, which it is by default: no thread is ever spawned, no atomic wait is ever made.
"""
import ctypes
import importlib.metadata
import hashlib
import logging
import threading
import time
from pathlib import Path

import wasmtime
from wasmtime import _ffi as wasmtime_ffi
from wasmtime import Config, Engine, Linker, Module, SharedMemory, Store, MemoryType, Limits

log = logging.getLogger(__name__)

PAGE_BYTES = 65536
ENOSYS = 52
EPOCH_TICK_S = 0.05
DEFAULT_MEMORY_LIMIT = 1 << 30  # SmolLM2-135M with its 4,096-token KV cache: 555 MiB loaded, 694 MiB after a chat
DEFAULT_CALL_TIMEOUT_S = 60.0  # one library call: a prefill chunk of 1,024 tokens takes ~18 s on one thread here
CACHE_DIR = Path.home() / ".cache" / "tabllm" / "wasmtime"


class SandboxError(RuntimeError):
    """The library failed inside the sandbox (a trap, an error TVM raised, or a call it may not make)."""


class SandboxTimeout(SandboxError):
    """A call into the library ran past its deadline and was cut off (the instance cannot be used again)."""


def _engine() -> Engine:
    config = Config()
    config.wasm_threads = True  # the library's memory is shared (a -pthread link)
    config.shared_memory = True
    config.wasm_simd = True
    config.wasm_relaxed_simd = True  # the bundle's relaxed-SIMD library (serve/model.py)
    config.epoch_interruption = True
    return Engine(config)


ENGINE = _engine()
WASMTIME_VERSION = importlib.metadata.version("wasmtime")


class _SharedMemory(SharedMemory):
    """wasmtime-py 50's SharedMemory._as_extern wraps its pointer in one pointer too many (a TypeError when it is
    defined in a linker): this passes the pointer itself."""

    def _as_extern(self):
        union = wasmtime_ffi.wasmtime_extern_union(sharedmemory=self.ptr())
        return wasmtime_ffi.wasmtime_extern_t(wasmtime_ffi.WASMTIME_EXTERN_SHAREDMEMORY, union)


def _tick_epochs():
    while True:
        time.sleep(EPOCH_TICK_S)
        ENGINE.increment_epoch()


threading.Thread(target=_tick_epochs, name="wasmtime-epochs", daemon=True).start()


def compiled_module(wasm_path: Path, cache_dir: Path | None = CACHE_DIR) -> tuple[Module, bool]:
    """The library compiled to machine code, from the cache when it holds this library (keyed by the library's
    sha256 and wasmtime's version: compiling takes seconds, loading the cache milliseconds); (module, from cache)."""
    data = Path(wasm_path).read_bytes()
    if cache_dir is None:
        return Module(ENGINE, data), False
    key = hashlib.sha256(data + WASMTIME_VERSION.encode()).hexdigest()[:32]
    cached = Path(cache_dir) / f"{key}.cwasm"
    if cached.is_file():
        try:
            return Module.deserialize_file(ENGINE, str(cached)), True
        except wasmtime.WasmtimeError as error:  # another wasmtime build's file: compile again
            log.warning("ignoring the compiled-module cache %s: %s", cached, error)
    module = Module(ENGINE, data)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".partial-{threading.get_ident()}")
    partial.write_bytes(module.serialize())
    partial.replace(cached)
    return module, False


class LibrarySandbox:
    """One instance of a model library: its store, shared memory and exports. Use from one thread at a time."""

    def __init__(self, module: Module, memory_limit: int = DEFAULT_MEMORY_LIMIT,
                 call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S):
        self.call_ticks = max(1, round(call_timeout_s / EPOCH_TICK_S))
        self.store = Store(ENGINE)
        self.store.set_epoch_deadline(self.call_ticks)
        memory_import = next((i for i in module.imports if isinstance(i.type, MemoryType)), None)
        if memory_import is None or not memory_import.type.is_shared:
            raise SandboxError("this bundle's CPU library has no shared memory import: it is from an older tabllm; "
                               "compile the bundle again with `python -m compile`")
        minimum, declared = memory_import.type.limits.min, memory_import.type.limits.max
        maximum = min(max(minimum, memory_limit // PAGE_BYTES), declared if declared is not None else 65536)
        self.memory = _SharedMemory(ENGINE, MemoryType(Limits(minimum, maximum), shared=True))
        self.memory_limit = maximum * PAGE_BYTES
        self._pending_output = ""
        self.exports = None
        linker = Linker(ENGINE)
        host = self._host_functions()
        for item in module.imports:
            if isinstance(item.type, MemoryType):
                linker.define(self.store, item.module, item.name, self.memory)
                continue
            function = host.get((item.module, item.name)) or self._refuse(item.module, item.name)
            linker.define_func(item.module, item.name, item.type, function)
        instance = linker.instantiate(self.store, module)
        self.exports = instance.exports(self.store)
        self.call("__wasm_call_ctors")  # static constructors: registers the system library and global functions

    # calls into the module
    def call(self, name: str, *args):
        """Call an export under the epoch deadline; traps become SandboxError (SandboxTimeout when cut off)."""
        self.store.set_epoch_deadline(self.call_ticks)
        try:
            return self.exports[name](self.store, *args)
        except wasmtime.Trap as trap:
            if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
                raise SandboxTimeout(f"the model library's {name} ran past its deadline and was cut off") from None
            raise SandboxError(f"the model library trapped in {name}: {trap.message}") from None
        except wasmtime.WasmtimeError as error:  # a host function raised (an import the library may not call)
            raise SandboxError(f"the model library failed in {name}: {error}") from None

    # linear memory (bounds-checked: an address outside the memory must never reach ctypes)
    def _address(self, pointer: int, size: int) -> int:
        if pointer < 0 or size < 0 or pointer + size > self.memory.data_len():
            raise SandboxError(f"address {pointer}+{size} is outside the library's memory")
        return ctypes.addressof(self.memory.data_ptr().contents) + pointer

    def read(self, pointer: int, size: int) -> bytes:
        return ctypes.string_at(self._address(pointer, size), size)

    def write(self, pointer: int, data: bytes) -> None:
        ctypes.memmove(self._address(pointer, len(data)), data, len(data))

    def memory_bytes(self) -> int:
        return self.memory.data_len()

    # imports
    def _refuse(self, module: str, name: str):
        def refuse(*_args):
            raise SandboxError(f"the model library called {module}.{name}, which the sandbox does not provide")
        return refuse

    def _host_functions(self) -> dict:
        def write_timespec(_clock, pointer):
            now = time.time()
            self.write(pointer, int(now).to_bytes(4, "little") + int((now % 1) * 1e9).to_bytes(4, "little"))
            return 0

        def resize_heap(requested):
            current, requested = self.memory.data_len(), requested & 0xFFFFFFFF
            if requested > self.memory_limit:
                return 0  # malloc then returns NULL: TVM reports that it is out of memory
            wanted = min(max(requested, int(current * 1.25)), self.memory_limit)
            if wanted <= current:
                return 0
            try:
                self.memory.grow(-(-(wanted - current) // PAGE_BYTES))
                return 1
            except wasmtime.WasmtimeError:
                return 0

        def init_main_thread(thread):
            # as emscripten's glue: this thread is the runtime's main thread and may block
            self.exports["_emscripten_thread_init"](self.store, thread, 0, 1, 1, 0)
            self.exports["emscripten_tls_init"](self.store)

        def fd_write(_fd, iovs, count, written):
            total = 0
            for i in range(count):
                pointer, length = (int.from_bytes(self.read(iovs + 8 * i + k, 4), "little") for k in (0, 4))
                self._pending_output += self.read(pointer, length).decode(errors="replace")
                total += length
            *lines, self._pending_output = self._pending_output.split("\n")
            for line in lines:
                log.info("[library] %s", line)
            self.write(written, total.to_bytes(4, "little"))
            return 0

        def environ_sizes_get(count, size):
            self.write(count, bytes(4))
            self.write(size, bytes(4))
            return 0

        def fail(message):
            def raise_(*_args):
                raise SandboxError(message)
            return raise_

        env, wasi = "env", "wasi_snapshot_preview1"
        return {
            (env, "emscripten_get_now"): lambda: time.perf_counter() * 1000,
            (env, "emscripten_memcpy_big"): lambda dest, src, count: self.write(dest, self.read(src, count)),
            (env, "emscripten_resize_heap"): resize_heap,
            (env, "emscripten_notify_memory_growth"): lambda _index: None,
            (env, "emscripten_check_blocking_allowed"): lambda: None,
            (env, "__emscripten_init_main_thread_js"): init_main_thread,
            (env, "clock_gettime"): write_timespec,
            (env, "__clock_gettime"): write_timespec,
            (env, "__cxa_allocate_exception"): lambda size: self.exports["malloc"](self.store, size),
            (env, "__cxa_throw"): fail("the model library raised a C++ exception"),
            (env, "abort"): fail("the model library aborted"),
            (env, "exit"): fail("the model library exited"),
            (env, "__syscall_open"): lambda *_: -ENOSYS,
            (env, "__syscall_fcntl64"): lambda *_: -ENOSYS,
            (env, "__syscall_ioctl"): lambda *_: -ENOSYS,
            (env, "strftime_l"): lambda *_: 0,
            # TVM's callbacks into host-registered functions: the server registers none
            (env, "TVMFFIWasmSafeCall"): lambda *_: -1,
            (env, "TVMFFIWasmFunctionDeleter"): lambda _handle: None,
            (wasi, "fd_write"): fd_write,
            (wasi, "fd_read"): lambda *_: ENOSYS,
            (wasi, "fd_close"): lambda _fd: 0,
            (wasi, "fd_seek"): lambda *_: ENOSYS,
            (wasi, "environ_sizes_get"): environ_sizes_get,
            (wasi, "environ_get"): lambda *_: 0,
            (wasi, "proc_exit"): fail("the model library exited"),
        }
