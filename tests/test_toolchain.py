"""The runtime cache and the linker: reuse, corruption, a missing emcc and a failed link give clear errors."""
import json
import shutil

import pytest

from compile.toolchain import ToolchainError, ensure_runtime, link_wasm
from compile.toolchain import runtime as runtime_module
from compile.toolchain.runtime_fixes import RUNTIME_FIXES, apply_runtime_fixes


@pytest.fixture(scope="module", params=[False, True], ids=["webgpu-runtime", "threads-runtime"])
def built_runtime(request):
    """The real runtime (the WebGPU library's, and the CPU library's for threads), built into the user cache on
    first use (about two minutes each), reused afterwards."""
    return ensure_runtime(threads=request.param)


@pytest.fixture
def cache_copy(built_runtime, tmp_path, monkeypatch):
    """A private cache holding a copy of the built runtime, so tests can damage it safely."""
    monkeypatch.setenv("TABLLM_CACHE_DIR", str(tmp_path))
    target = runtime_module.runtime_cache_dir(built_runtime.threads)
    shutil.copytree(built_runtime.directory, target)
    return target


def test_runtime_objects_are_wasm_objects_listed_in_the_manifest(built_runtime):
    manifest = json.loads((built_runtime.directory / "manifest.json").read_text())
    assert sorted(manifest["sha256"]) == sorted(p.name for p in built_runtime.paths)
    assert ("thread_pool.o" in manifest["sha256"]) == built_runtime.threads
    for path in built_runtime.paths:
        assert path.read_bytes()[:4] == b"\0asm", f"{path} is not a wasm object file"


def test_the_two_variants_are_cached_apart(built_runtime):
    assert runtime_module.cache_key(True) != runtime_module.cache_key(False)


def test_cached_runtime_is_reused_without_emcc(built_runtime, cache_copy, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    mtimes = {p: p.stat().st_mtime_ns for p in cache_copy.iterdir()}
    assert ensure_runtime(built_runtime.threads).directory == cache_copy
    assert {p: p.stat().st_mtime_ns for p in cache_copy.iterdir()} == mtimes


def test_corrupted_cache_entry_says_what_to_delete(built_runtime, cache_copy):
    obj = cache_copy / "webgpu_runtime.o"
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    with pytest.raises(ToolchainError, match="corrupted or incomplete.*rm -r"):
        ensure_runtime(built_runtime.threads)


def test_incomplete_cache_entry_is_reported(built_runtime, cache_copy):
    (cache_copy / "wasm_runtime.o").unlink()
    with pytest.raises(ToolchainError, match="corrupted or incomplete"):
        ensure_runtime(built_runtime.threads)


def test_missing_emcc_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("TABLLM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime_module, "cache_key", lambda threads: "no-such-entry")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainError, match="apt-get install emscripten"):
        ensure_runtime()
    assert not (tmp_path / "tvm-web-runtime" / "no-such-entry").exists()


def test_failed_link_reports_emcc_output(built_runtime, tmp_path):
    bogus = tmp_path / "model.o"
    bogus.write_bytes(b"not an object file")
    with pytest.raises(ToolchainError, match="failed to link"):
        link_wasm(tmp_path / "model.wasm", [str(bogus)], "-O1", built_runtime.threads)
    assert not (tmp_path / "model.wasm").exists()


@pytest.mark.parametrize("threads", [False, True])
def test_cache_key_changes_with_the_headers(monkeypatch, tmp_path, threads):
    before = runtime_module.cache_key(threads)
    headers = tmp_path / "headers"
    shutil.copytree(runtime_module.HEADERS_DIR, headers)
    (headers / "src/support/utils.h").write_text("// changed\n", encoding="utf-8")
    monkeypatch.setattr(runtime_module, "HEADERS_DIR", headers)
    assert runtime_module.cache_key(threads) != before


def test_cache_key_of_the_threads_variant_changes_with_the_thread_pool(monkeypatch, tmp_path):
    before = runtime_module.cache_key(True), runtime_module.cache_key(False)
    source = tmp_path / "thread_pool.c"
    source.write_text(runtime_module.THREAD_POOL_SOURCE.read_text() + "// changed\n", encoding="utf-8")
    monkeypatch.setattr(runtime_module, "THREAD_POOL_SOURCE", source)
    assert runtime_module.cache_key(True) != before[0]
    assert runtime_module.cache_key(False) == before[1]


def test_failed_runtime_compile_is_reported_and_nothing_is_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("TABLLM_CACHE_DIR", str(tmp_path / "cache"))
    headers = tmp_path / "headers"
    shutil.copytree(runtime_module.HEADERS_DIR, headers)
    (headers / "include/tvm/support/io.h").write_text('#error "deliberately broken header"\n', encoding="utf-8")
    monkeypatch.setattr(runtime_module, "HEADERS_DIR", headers)
    with pytest.raises(ToolchainError, match="emcc failed on the TVM runtime unit(.|\n)*deliberately broken"):
        ensure_runtime()
    assert list((tmp_path / "cache/tvm-web-runtime").iterdir()) == []


def test_runtime_fixes_apply_to_the_wheels_sources(tmp_path):
    runtime_module.assemble_source_root(tmp_path / "src")
    fixed = {fix.path: (tmp_path / "src" / fix.path).read_text() for fix in RUNTIME_FIXES}
    assert all(fix.new in fixed[fix.path] and fix.old not in fixed[fix.path] for fix in RUNTIME_FIXES)
    # every table the sliding layers copy now asks for depths of its own
    assert "_sliding_window_on_depths_host_[d], d);" not in fixed["src/runtime/vm/paged_kv_cache.cc"]


def test_a_source_the_fix_does_not_find_stops_the_build(tmp_path):
    wheel = runtime_module._site_package("tvm")
    for fix in RUNTIME_FIXES:
        (tmp_path / fix.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wheel / fix.path, tmp_path / fix.path)
    header = tmp_path / "src/runtime/vm/attn_utils.h"
    header.write_text(header.read_text().replace("kPagedKVCacheMaxBlockDepth; ++d", "kMaxDepth; ++d"))
    with pytest.raises(ToolchainError, match="attn_utils.h of the installed apache-tvm wheel does not hold"):
        apply_runtime_fixes(tmp_path)


def test_cache_key_changes_with_the_runtime_fixes(monkeypatch):
    before = runtime_module.cache_key(False)
    monkeypatch.setattr(runtime_module, "RUNTIME_FIXES", RUNTIME_FIXES[:1])
    assert runtime_module.cache_key(False) != before
