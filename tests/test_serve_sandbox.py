"""The sandbox (serve/sandbox.py) with small hand-written modules importing what the CPU library imports: a
module cannot open a file or a socket, cannot grow its memory past the limit, and a call that never returns is
cut off by the epoch deadline."""
import pytest
import wasmtime

from serve.sandbox import ENGINE, PAGE_BYTES, LibrarySandbox, SandboxError, SandboxTimeout

MODULE = """
(module
  (import "env" "memory" (memory 2 100 shared))
  (import "env" "__syscall_open" (func $open (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (data (i32.const 64) "/etc/passwd\\00")
  (func (export "__wasm_call_ctors"))
  (func (export "open_file") (result i32) (call $open (i32.const 64) (i32.const 0) (i32.const 0)))
  (func (export "path_open_file") (result i32)
    (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 11) (i32.const 0) (i64.const 0)
                     (i64.const 0) (i32.const 0) (i32.const 128)))
  (func (export "accept_socket") (result i32) (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 128)))
  (func (export "read_stdin") (result i32) (call $fd_read (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 128)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "spin") (loop $forever (br $forever)))
)
"""


@pytest.fixture(scope="module")
def sandbox():
    module = wasmtime.Module(ENGINE, wasmtime.wat2wasm(MODULE))
    return LibrarySandbox(module, memory_limit=10 * PAGE_BYTES, call_timeout_s=0.5)


def test_opening_a_file_fails(sandbox):
    assert sandbox.call("open_file") == -52  # -ENOSYS: there is no file system
    with pytest.raises(SandboxError, match="path_open, which the sandbox does not provide"):
        sandbox.call("path_open_file")
    assert sandbox.call("read_stdin") == 52  # ENOSYS


def test_opening_a_socket_fails(sandbox):
    with pytest.raises(SandboxError, match="sock_accept, which the sandbox does not provide"):
        sandbox.call("accept_socket")


def test_memory_cannot_grow_past_the_limit(sandbox):
    assert sandbox.memory_bytes() == 2 * PAGE_BYTES
    assert sandbox.call("grow", 20) == -1  # the module declares 100 pages; the limit is 10
    assert sandbox.call("grow", 8) == 2
    assert sandbox.memory_bytes() == 10 * PAGE_BYTES


def test_a_call_that_never_returns_is_cut_off(sandbox):
    with pytest.raises(SandboxTimeout):
        sandbox.call("spin")


def test_a_library_without_a_shared_memory_is_refused():
    module = wasmtime.Module(ENGINE, wasmtime.wat2wasm('(module (memory (export "memory") 1))'))
    with pytest.raises(SandboxError, match="older tabllm"):
        LibrarySandbox(module)


def test_a_limit_above_the_modules_own_maximum_keeps_the_modules():
    module = wasmtime.Module(ENGINE, wasmtime.wat2wasm(
        '(module (import "env" "memory" (memory 1 3 shared)) (func (export "__wasm_call_ctors"))'
        ' (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))'))
    sandbox = LibrarySandbox(module, memory_limit=1 << 30)
    assert sandbox.call("grow", 3) == -1
    assert sandbox.call("grow", 2) == 1
