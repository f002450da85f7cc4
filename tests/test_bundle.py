"""The bundle writer and verifier: real files in tmp_path; checksums recomputed here with hashlib."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from compile.bundle import BundleError, load_bundle, read_params, verify_bundle, write_bundle

REPO = Path(__file__).resolve().parent.parent
CAP = 1024  # a small shard cap so a few tiny tensors exercise the packing rules


def sample_params() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        ("embed.weight", rng.standard_normal((20, 8), dtype=np.float32)),
        ("layer0.q_weight", rng.integers(0, 2**32, (4, 16), dtype=np.uint32)),
        ("layer0.q_scale", rng.standard_normal((4, 2)).astype(">f4")),  # big-endian in, little-endian on disk
        ("layer0.norm", rng.standard_normal((8, 3), dtype=np.float32).T),  # not C-contiguous
        ("layer0.positions", np.arange(-5, 5, dtype=np.int32)),
        ("layer0.half", rng.standard_normal(7).astype(np.float16)),
        ("lm_head.weight", rng.standard_normal((10, 40), dtype=np.float32)),  # 1600 bytes > CAP
        ("layer1.empty", np.zeros((0, 4), dtype=np.float32)),
        ("layer1.scalar", np.array(3.5, dtype=np.float32)),
        ("final_norm.weight", rng.standard_normal(200, dtype=np.float32)),  # 800 bytes: cannot join the previous shard
    ]


@pytest.fixture
def sources(tmp_path) -> dict[str, Path]:
    source_dir = tmp_path / "sources"
    source_dir.mkdir()
    (source_dir / "tokenizer.json").write_text('{"model": {"type": "BPE"}}')
    (source_dir / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}')
    (source_dir / "lib.wasm").write_bytes(b"\0asm\1\0\0\0" + bytes(range(256)))
    return {"tokenizer.json": source_dir / "tokenizer.json",
            "tokenizer_config.json": source_dir / "tokenizer_config.json",
            "tiny-q0f32-webgpu.wasm": source_dir / "lib.wasm"}


def write(output: Path, files: dict[str, Path], params=None, **overrides):
    arguments = dict(model="tiny", quantization="q0f32", chat_config={"model_type": "llama", "vocab_size": 20},
                     files=files, build={"tvm": "0.27.0.post1", "target": "webgpu"}, shard_cap_bytes=CAP)
    arguments.update(overrides)
    return write_bundle(output, params=sample_params() if params is None else params, **arguments)


def shard_entries(bundle_dir: Path) -> list[dict]:
    return json.loads((bundle_dir / "tensor-cache.json").read_text())["records"]


def entries(directory: Path) -> list[str]:
    """What is in the test's directory besides the source files: bundles and any temp dirs left behind."""
    return sorted(name for name in os.listdir(directory) if name != "sources")


def test_params_round_trip_in_order_packed_into_capped_shards(tmp_path, sources):
    bundle = write(tmp_path / "b", sources)
    params = sample_params()

    read = read_params(bundle.path)
    assert list(read) == [name for name, _ in params]
    for name, array in params:
        assert read[name].dtype == array.dtype.newbyteorder("=") and read[name].shape == array.shape, name
        np.testing.assert_array_equal(read[name], array, err_msg=name)

    shards = shard_entries(bundle.path)
    assert [s["dataPath"] for s in shards] == [f"params_shard_{i}.bin" for i in range(len(shards))]
    assert [r["name"] for s in shards for r in s["records"]] == [name for name, _ in params]
    for shard in shards:
        if shard["nbytes"] > CAP:
            assert [r["name"] for r in shard["records"]] == ["lm_head.weight"]  # over the cap: alone
    for shard, following in zip(shards, shards[1:]):  # greedy: a shard closes only when the next tensor won't fit
        assert shard["nbytes"] + following["records"][0]["nbytes"] > CAP
    # The shard files are exactly the little-endian C-order bytes of their tensors, back to back.
    by_name = dict(params)
    for shard in shards:
        expected = b"".join(np.ascontiguousarray(by_name[r["name"]]).astype(by_name[r["name"]].dtype.newbyteorder("<"))
                            .tobytes() for r in shard["records"])
        assert (bundle.path / shard["dataPath"]).read_bytes() == expected


def test_tensor_cache_records_offsets_and_checksums(tmp_path, sources):
    bundle = write(tmp_path / "b", sources)
    params = dict(sample_params())
    cache = json.loads((bundle.path / "tensor-cache.json").read_text())

    for shard in cache["records"]:
        data = (bundle.path / shard["dataPath"]).read_bytes()
        assert shard["nbytes"] == len(data)
        assert shard["md5sum"] == hashlib.md5(data).hexdigest()
        assert shard["sha256"] == hashlib.sha256(data).hexdigest()
        offset = 0
        for record in shard["records"]:
            array = params[record["name"]]
            assert record["byteOffset"] == offset
            assert record["nbytes"] == array.nbytes
            assert record["shape"] == list(array.shape)
            assert record["dtype"] == array.dtype.name
            offset += record["nbytes"]
        assert offset == shard["nbytes"]
    assert sorted(r["name"] for s in cache["records"] for r in s["records"]) == sorted(params)
    total = sum(a.nbytes for a in params.values())
    assert cache["metadata"]["ParamSize"] == len(params)  # MLC counts tensors here
    assert cache["metadata"]["ParamBytes"] == total
    assert cache["metadata"]["BitsPerParam"] == pytest.approx(8 * total / sum(a.size for a in params.values()))


def test_tensor_cache_has_the_fields_tvmjs_reads(tmp_path, sources):
    cache = json.loads((write(tmp_path / "b", sources).path / "tensor-cache.json").read_text())
    # web/node_modules/@mlc-ai/web-runtime/lib/index.js:
    #   fetchTensorCache: list["records"], list["metadata"] (becomes cacheMetadata)
    #   fetchTensorCacheInternal: shard.dataPath, shard.nbytes, shard.records;
    #     rec.name, rec.shape, rec.dtype, rec.format ("raw"; "f32-to-bf16" means packed bf16)
    #   getTensorCacheRecordBytes: record.byteOffset, record.nbytes
    # tvm/src/runtime/vm/tensor_cache_support.cc (the native and wasm loader) reads the same names, plus
    # shard.format. "md5sum" is MLC's/tvmjs's name (tvm/contrib/tvmjs.py); "sha256" is ours.
    assert set(cache) == {"metadata", "records"}
    assert set(cache["metadata"]) == {"ParamSize", "ParamBytes", "BitsPerParam"}
    for shard in cache["records"]:
        assert set(shard) == {"dataPath", "format", "nbytes", "records", "md5sum", "sha256"}
        assert shard["format"] == "raw-shard"
        for record in shard["records"]:
            assert set(record) == {"name", "shape", "dtype", "format", "nbytes", "byteOffset"}
            assert record["format"] == "raw"
            assert all(type(dim) is int for dim in record["shape"])


def test_tvm_native_loader_reads_the_params(tmp_path, sources):
    tvm = pytest.importorskip("tvm")
    bundle = write(tmp_path / "b", sources)
    load, get = tvm.get_global_func("vm.builtin.tensor_cache.load"), tvm.get_global_func("vm.builtin.tensor_cache.get")
    load(str(bundle.path), tvm.cpu().dlpack_device_type(), 0)
    try:
        for name, array in sample_params():
            np.testing.assert_array_equal(get(name).numpy(), array, err_msg=name)
    finally:
        tvm.get_global_func("vm.builtin.tensor_cache.clear")()


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path, sources):
    bundle = write(tmp_path / "b", sources)
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest == bundle.manifest
    assert manifest["format"] == "tabllm-bundle/1"
    assert (manifest["model"], manifest["quantization"]) == ("tiny", "q0f32")
    assert manifest["build"] == {"tvm": "0.27.0.post1", "target": "webgpu"}
    assert datetime.fromisoformat(manifest["created"]).utcoffset().total_seconds() == 0

    on_disk = sorted(name for name in os.listdir(bundle.path) if name != "manifest.json")
    assert [entry["path"] for entry in manifest["files"]] == on_disk
    for entry in manifest["files"]:
        data = (bundle.path / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert bundle.total_bytes == sum(entry["bytes"] for entry in manifest["files"])

    for name, source in sources.items():
        assert (bundle.path / name).read_bytes() == source.read_bytes()
    assert json.loads((bundle.path / "mlc-chat-config.json").read_text()) == {"model_type": "llama", "vocab_size": 20}
    listing = "".join(f"{e['sha256']}  {e['path']}\n" for e in manifest["files"])  # `sha256sum` output
    assert bundle.bundle_id == hashlib.sha256(listing.encode()).hexdigest()[:16]
    assert load_bundle(bundle.path) == bundle == verify_bundle(bundle.path)


def test_bundle_id_is_a_content_hash(tmp_path, sources):
    first = write(tmp_path / "first", sources)
    again = write(tmp_path / "again", sources, build={"note": "rebuilt later"})  # the id covers files only
    params = sample_params()
    params[0][1][0, 0] += 1
    other_param = write(tmp_path / "other_param", sources, params=params)
    other_config = write(tmp_path / "other_config", sources, chat_config={"model_type": "llama", "vocab_size": 21})
    assert first.bundle_id == again.bundle_id
    assert len({first.bundle_id, other_param.bundle_id, other_config.bundle_id}) == 3


def test_progress_reports_every_param_and_file(tmp_path, sources):
    calls = []
    write(tmp_path / "b", sources, on_progress=lambda *call: calls.append(call))
    names = [name for name, _ in sample_params()] + list(sources)
    total = sum(a.nbytes for _, a in sample_params()) + sum(p.stat().st_size for p in sources.values())
    assert [name for name, _, _ in calls] == names
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls)
    assert calls[-1][1:] == (total, total)


def flip_byte(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def edit_manifest(bundle_dir: Path, edit):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    edit(manifest)
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))


def forge_tensor_cache(bundle_dir: Path):
    """Wrong md5 in tensor-cache.json, with the manifest rewritten to match: only the cross-check can tell."""
    cache_path = bundle_dir / "tensor-cache.json"
    cache = json.loads(cache_path.read_text())
    cache["records"][0]["md5sum"] = "0" * 32
    cache_path.write_text(json.dumps(cache))

    def rehash(manifest):
        for entry in manifest["files"]:
            data = (bundle_dir / entry["path"]).read_bytes()
            entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        listing = "".join(f"{e['sha256']}  {e['path']}\n" for e in manifest["files"])
        manifest["bundle_id"] = hashlib.sha256(listing.encode()).hexdigest()[:16]
    edit_manifest(bundle_dir, rehash)


DAMAGE = {
    "flipped byte": (lambda b: flip_byte(b / "params_shard_1.bin"), r"params_shard_1\.bin: sha256 mismatch"),
    "truncated shard": (lambda b: os.truncate(b / "params_shard_0.bin", 10),
                        r"params_shard_0\.bin: 10 bytes.*truncated"),
    "missing file": (lambda b: (b / "tokenizer.json").unlink(), r"missing file .*tokenizer\.json"),
    "extra file": (lambda b: (b / "notes.txt").write_text("hi"), r"notes\.txt not listed in manifest\.json"),
    "extra directory": (lambda b: (b / "old").mkdir(), r"old not listed in manifest\.json"),
    "edited library": (lambda b: (b / "tiny-q0f32-webgpu.wasm").write_bytes(b"\0asm" + bytes(260)),
                       r"tiny-q0f32-webgpu\.wasm: sha256 mismatch"),
    "edited manifest": (lambda b: edit_manifest(b, lambda m: m["files"][0].update(sha256="0" * 64)),
                        r"manifest\.json: bundle_id does not match"),
    "forged tensor cache": (forge_tensor_cache, r"tensor-cache\.json: size or checksum of params_shard_0\.bin"),
    "no manifest": (lambda b: (b / "manifest.json").unlink(), r"^not a bundle: no manifest\.json in "),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_verify_names_the_damaged_file(tmp_path, sources, damage):
    bundle = write(tmp_path / "b", sources)
    verify_bundle(bundle.path)
    make_damage, message = DAMAGE[damage]
    make_damage(bundle.path)
    with pytest.raises(BundleError, match=message) as raised:
        verify_bundle(bundle.path)
    assert "\n" not in str(raised.value)


def failing_params(error: BaseException):
    params = sample_params()
    yield from params[:7]  # past the first shards: some files are already written
    raise error


@pytest.mark.parametrize("error", [RuntimeError("dequantization failed"), KeyboardInterrupt()],
                         ids=lambda error: type(error).__name__)
@pytest.mark.parametrize("previous", [True, False], ids=["over a bundle", "fresh"])
def test_interrupted_write_leaves_the_previous_state_and_no_temp_dir(tmp_path, sources, error, previous):
    output = tmp_path / "b"
    old = write(output, sources, model="old") if previous else None
    with pytest.raises(type(error)):
        write(output, sources, params=failing_params(error))
    assert entries(tmp_path) == (["b"] if previous else [])
    if previous:
        assert verify_bundle(output) == old


def test_replacing_a_bundle_leaves_only_the_new_one(tmp_path, sources):
    output = tmp_path / "b"
    write(output, sources)
    new_sources = {"tokenizer.json": sources["tokenizer.json"]}  # fewer files: stale ones must go
    new = write(output, new_sources, params=sample_params()[:2])
    assert verify_bundle(output).bundle_id == new.bundle_id
    assert not (output / "tiny-q0f32-webgpu.wasm").exists()
    assert list(read_params(output)) == ["embed.weight", "layer0.q_weight"]
    assert entries(tmp_path) == ["b"]


def test_failed_move_into_place_puts_the_old_bundle_back(tmp_path, sources, monkeypatch):
    # The one injected fault: a rename cannot be made to fail on demand. Only the final move of the
    # finished temp dir onto `output` fails; everything before it runs for real.
    output = tmp_path / "b"
    old = write(output, sources, model="old")
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".b.partial-") and Path(target) == output:
            raise OSError("simulated rename failure")
        return real_rename(self, target)
    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        write(output, sources, params=sample_params()[:2])
    assert verify_bundle(output) == old
    assert entries(tmp_path) == ["b"]


def test_refuses_to_replace_a_directory_that_is_not_a_bundle(tmp_path, sources):
    output = tmp_path / "b"
    output.mkdir()
    (output / "precious.txt").write_text("keep me")
    with pytest.raises(BundleError, match="exists and is not a bundle"):
        write(output, sources)
    assert os.listdir(output) == ["precious.txt"]
    assert entries(tmp_path) == ["b"]


@pytest.mark.parametrize("params, files, message", [
    ([("w", np.zeros(3, np.int64))], {}, "params: w has dtype int64"),
    ([("w", np.zeros(3, np.float32)), ("w", np.zeros(3, np.float32))], {}, "params: parameter w is given twice"),
    ([], {"manifest.json": "tokenizer.json"}, "'manifest.json' is a name the bundle writer makes"),
    ([], {"params_shard_0.bin": "tokenizer.json"}, "'params_shard_0.bin' is a name the bundle writer makes"),
    ([], {"../escape.json": "tokenizer.json"}, "'../escape.json' is not a plain file name"),
    ([], {"lib.wasm": "no-such-file"}, "source of lib.wasm not found"),
], ids=["dtype", "duplicate", "reserved", "shard name", "path", "missing source"])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, sources, params, files, message):
    files = {name: sources["tokenizer.json"].parent / source for name, source in files.items()}
    with pytest.raises(BundleError, match=message):
        write(tmp_path / "b", files, params=params)
    assert entries(tmp_path) == []


def test_build_info_must_be_json(tmp_path, sources):
    with pytest.raises(BundleError, match="build: not JSON-serializable"):
        write(tmp_path / "b", sources, build={"target": object()})
    assert entries(tmp_path) == []


def run_on_tiny_disk(tmp_path, script: str) -> dict:
    """Run `script` in a child process that sees a 2 MiB tmpfs at tmp_path/disk (a private mount namespace:
    nothing to clean up, no root needed). The script prints a JSON result."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a tiny tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    code = textwrap.dedent(f"""
        import json, os, sys
        import numpy as np
        from compile.bundle import BundleError, write_bundle
        disk = {str(disk)!r}
        def write(params):
            try:
                write_bundle(os.path.join(disk, "b"), model="m", quantization="q0f32", params=params,
                             chat_config={{}}, files={{}}, build={{}})
            except BundleError as error:
                return str(error)
    """) + textwrap.dedent(script) + "\nprint(json.dumps(result))\n"
    mount = f"mount -t tmpfs -o size=2m tmpfs {disk} && exec {sys.executable} -c \"$0\""
    run = subprocess.run(["unshare", "-rm", "sh", "-c", mount, code], cwd=REPO, capture_output=True, text=True)
    if run.returncode != 0 and run.stderr.startswith(("unshare:", "mount:")):
        pytest.skip(f"cannot mount a tmpfs here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_not_enough_disk_space_is_found_before_writing(tmp_path):
    result = run_on_tiny_disk(tmp_path, """
        two_mb = [("w", np.zeros(2**19, np.float32))]
        result = {"error": write(two_mb), "left": os.listdir(disk)}
    """)
    assert result["left"] == []
    assert result["error"].startswith(f"not enough disk space in {tmp_path / 'disk'}: need 3.3 MB, have 2.1 MB")


def test_disk_filling_up_midway_is_a_clean_error(tmp_path):
    result = run_on_tiny_disk(tmp_path, """
        def four_mb():  # an iterator: its size is unknown up front, so only the full disk can stop it
            for i in range(8):
                yield f"w{i}", np.zeros(2**17, np.float32)
        result = {"error": write(four_mb()), "left": os.listdir(disk)}
    """)
    assert result["left"] == []
    assert result["error"].startswith(f"not enough disk space in {tmp_path / 'disk'}: the disk filled up")
    assert "\n" not in result["error"]


def test_writing_streams_without_holding_shards_in_memory(tmp_path):
    # 128 MB of parameters in 4 MB tensors made one at a time: peak memory must stay far below one 32 MB shard.
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from compile.bundle import write_bundle
        def params():
            for i in range(32):
                yield f"w{{i}}", np.full(2**20, i, np.float32)
        np.full(2**20, 0, np.float32).sum()  # warm up numpy's allocator before the baseline
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        write_bundle({str(tmp_path / "b")!r}, model="m", quantization="q0f32", params=params(),
                     chat_config={{}}, files={{}}, build={{}})
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    growth_mib = int(run.stdout)
    assert growth_mib < 16, f"peak memory grew by {growth_mib} MiB while writing"
    assert len(shard_entries(tmp_path / "b")) == 4
