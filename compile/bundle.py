"""The bundle on disk: write it atomically, verify it, read its parameters back.

A bundle is a flat directory that MLC/WebLLM-style runtimes can also read:
  mlc-chat-config.json               the chat config, as given
  tensor-cache.json                  the MLC/tvmjs index of the parameter shards
  params_shard_N.bin                 raw little-endian C-order tensor bytes, packed in the order given
  tokenizer files, model libraries   copied in as given
  manifest.json                      ours, written last: every other file with its size and sha256, the
                                     bundle id (a content hash) and the build information

The field names of tensor-cache.json are the ones tvmjs (`fetchTensorCache` in @mlc-ai/web-runtime) and
TVM's native loader (src/runtime/vm/tensor_cache_support.cc) read. Shards also carry "md5sum" (the name
tvmjs and MLC use) and "sha256" (what the browser can check with SubtleCrypto).
"""
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

FORMAT = "tabllm-bundle/1"
MANIFEST = "manifest.json"
TENSOR_CACHE = "tensor-cache.json"
CHAT_CONFIG = "mlc-chat-config.json"
SHARD_CAP_BYTES = 32 * 2**20
SUPPORTED_DTYPES = ("float32", "float16", "int32", "uint32")
BUNDLE_ID_HEX_CHARS = 16


class BundleError(Exception):
    """A bundle cannot be written or read. The message is one line naming the file and what to do."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    bundle_id: str
    manifest: dict
    total_bytes: int  # of the files listed in the manifest (the manifest itself not included)


ProgressCallback = Callable[[str, int, int], None]


def write_bundle(
    output: Path,
    *,
    model: str,
    quantization: str,
    params: Iterable[tuple[str, np.ndarray]],
    chat_config: dict,
    files: dict[str, Path],
    build: dict,
    shard_cap_bytes: int = SHARD_CAP_BYTES,
    on_progress: ProgressCallback | None = None,
) -> Bundle:
    """Write a bundle to `output`, atomically: either the whole new bundle is there, or what was before.

    `params` may be a list (then its size counts in the free-space check made before writing) or a one-shot
    iterator such as a generator (then memory stays at one tensor; a disk that fills up still fails cleanly).
    `files` maps bundle file names to source paths (tokenizer files, model libraries).
    `on_progress(name, done, total)` is called after each parameter and each file is written, with bytes
    written so far and the total bytes expected (0 when `params` is an iterator of unknown size).
    """
    output = Path(output)
    _check_replaceable(output)
    for name, source in files.items():
        _check_file_name(name, "files")
        if name in (MANIFEST, TENSOR_CACHE, CHAT_CONFIG) or _is_shard_name(name):
            raise BundleError(f"files: {name!r} is a name the bundle writer makes itself; pass it differently")
        if not Path(source).is_file():
            raise BundleError(f"files: source of {name} not found: {source}")
    chat_config_text = _json_text(chat_config, "chat_config")
    _json_text(build, "build")  # fail now, not after minutes of writing shards

    file_bytes = sum(Path(source).stat().st_size for source in files.values())
    param_bytes = sum(np.asarray(array).nbytes for _, array in params) if isinstance(params, Sized) else None
    output.parent.mkdir(parents=True, exist_ok=True)
    _check_free_space(output.parent, file_bytes + (param_bytes or 0))
    progress = _Progress(on_progress, file_bytes + param_bytes if param_bytes is not None else 0)

    # A dot name that says "partial" and no manifest until the end: never mistaken for a bundle.
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        shards, metadata = _write_shards(staging, params, shard_cap_bytes, progress)
        tensor_cache = {"metadata": metadata, "records": shards}
        (staging / TENSOR_CACHE).write_text(_json_text(tensor_cache, TENSOR_CACHE), encoding="utf-8")
        (staging / CHAT_CONFIG).write_text(chat_config_text, encoding="utf-8")
        for name, source in files.items():
            shutil.copyfile(source, staging / name)
            progress.advance(name, Path(source).stat().st_size)
        listed = [_file_entry(staging, path.name) for path in sorted(staging.iterdir())]
        manifest = {
            "format": FORMAT,
            "bundle_id": bundle_id_of(listed),
            "model": model,
            "quantization": quantization,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": listed,
            "build": build,
        }
        (staging / MANIFEST).write_text(_json_text(manifest, MANIFEST), encoding="utf-8")
        _move_into_place(staging, output)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BundleError(f"not enough disk space in {output.parent}: the disk filled up while writing "
                              f"the bundle ({error.strerror}); free some space and run again") from None
        raise
    except BaseException:  # KeyboardInterrupt too: leave no half-written temp directory behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_bundle(output)


def load_bundle(path: Path) -> Bundle:
    """Read a bundle's manifest without checking the files (see verify_bundle for that)."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"not a bundle: no {MANIFEST} in {path}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path}: not valid JSON ({error}); rebuild the bundle") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(f"{manifest_path}: format {found!r} is not {FORMAT!r}; rebuild the bundle")
    try:
        total_bytes = sum(entry["bytes"] for entry in manifest["files"])
        return Bundle(path=path, bundle_id=manifest["bundle_id"], manifest=manifest, total_bytes=total_bytes)
    except (KeyError, TypeError) as error:
        raise BundleError(f"{manifest_path}: malformed ({error!r} missing or wrong); rebuild the bundle") from None


def verify_bundle(path: Path) -> Bundle:
    """Check every byte: the manifest's files (present, sizes, sha256, nothing extra) and the shard index."""
    bundle = load_bundle(path)
    try:
        _verify_files(bundle)
    except (KeyError, TypeError) as error:
        raise BundleError(f"{bundle.path}: malformed {MANIFEST} or {TENSOR_CACHE} ({error!r} missing or wrong); "
                          "rebuild the bundle") from None
    return bundle


def _verify_files(bundle: Bundle) -> None:
    path = bundle.path
    listed = bundle.manifest["files"]
    for entry in listed:
        _check_file_name(entry["path"], str(path / MANIFEST))
    if bundle_id_of(listed) != bundle.bundle_id:
        raise BundleError(f"{path / MANIFEST}: bundle_id does not match the file list (edited? rebuild the bundle)")
    by_name = {entry["path"]: entry for entry in listed}
    for required in (TENSOR_CACHE, CHAT_CONFIG):
        if required not in by_name:
            raise BundleError(f"{path / MANIFEST}: does not list {required}; rebuild the bundle")

    md5_by_name = {}
    for name, entry in by_name.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"missing file {file} (listed in {MANIFEST}); rebuild the bundle")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise BundleError(f"{file}: {size} bytes, {MANIFEST} says {entry['bytes']} (truncated? rebuild the bundle)")
        sha256, md5_by_name[name] = _digests(file)
        if sha256 != entry["sha256"]:
            raise BundleError(f"{file}: sha256 mismatch (file corrupt? rebuild the bundle)")
    extras = sorted(set(os.listdir(path)) - set(by_name) - {MANIFEST})
    if extras:
        raise BundleError(f"{path}: {', '.join(extras)} not listed in {MANIFEST} (remove or rebuild the bundle)")

    for shard in _read_tensor_cache(path)["records"]:
        name = shard["dataPath"]
        if name not in by_name:
            raise BundleError(f"{path / TENSOR_CACHE}: shard {name} is not listed in {MANIFEST}; rebuild the bundle")
        entry = by_name[name]
        if (shard["nbytes"], shard["sha256"], shard["md5sum"]) != (entry["bytes"], entry["sha256"], md5_by_name[name]):
            raise BundleError(f"{path / TENSOR_CACHE}: size or checksum of {name} disagrees with the file; "
                              "rebuild the bundle")
        _check_records_tile_shard(path / TENSOR_CACHE, shard)


def read_params(path: Path) -> dict[str, np.ndarray]:
    """The parameters of a bundle (or any MLC tensor cache with raw records), as read-only memory-mapped arrays."""
    path = Path(path)
    params = {}
    for shard in _read_tensor_cache(path)["records"]:
        # np.memmap cannot map an empty file; a shard of zero-sized tensors has nothing to map.
        data = np.memmap(path / shard["dataPath"], mode="r") if shard["nbytes"] else b""
        for record in shard["records"]:
            if record["format"] != "raw":
                raise BundleError(f"{path / TENSOR_CACHE}: {record['name']} has format {record['format']!r}, "
                                  "only 'raw' is supported")
            dtype = np.dtype(record["dtype"]).newbyteorder("<")
            count = math.prod(record["shape"])
            array = np.frombuffer(data, dtype=dtype, count=count, offset=record["byteOffset"])
            params[record["name"]] = array.reshape(tuple(record["shape"]))
    return params


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback, self.total, self.done = callback, total, 0

    def advance(self, name: str, nbytes: int) -> None:
        self.done += nbytes
        if self.callback is not None:
            self.callback(name, self.done, self.total)


class _ShardWriter:
    """Streams tensors, in order, into params_shard_N.bin files of at most `cap` bytes each.

    A tensor never spans shards (a record lives in one file), so a tensor larger than the cap gets a shard of
    its own. Only the open shard's file handle is held, never shard contents.
    """

    def __init__(self, directory: Path, cap: int):
        self.directory, self.cap = directory, cap
        self.shards: list[dict] = []
        self._file = None
        self._records: list[dict] = []
        self._offset = 0

    def add(self, name: str, data: np.ndarray) -> None:
        if self._file is not None and self._offset + data.nbytes > self.cap:
            self.finish_shard()
        if self._file is None:
            self._file = open(self.directory / _shard_name(len(self.shards)), "wb")
        self._file.write(data.reshape(-1).view(np.uint8))
        self._records.append({
            "name": name,
            "shape": [int(dim) for dim in data.shape],
            "dtype": data.dtype.name,
            "format": "raw",
            "nbytes": int(data.nbytes),
            "byteOffset": self._offset,
        })
        self._offset += data.nbytes

    def finish_shard(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        name = _shard_name(len(self.shards))
        sha256, md5 = _digests(self.directory / name)  # just written: read back from the page cache
        self.shards.append({"dataPath": name, "format": "raw-shard", "nbytes": self._offset,
                            "records": self._records, "md5sum": md5, "sha256": sha256})
        self._records, self._offset = [], 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _write_shards(directory: Path, params, cap: int, progress: _Progress) -> tuple[list[dict], dict]:
    writer = _ShardWriter(directory, cap)
    names, elements, nbytes = set(), 0, 0
    try:
        for name, array in params:
            if not isinstance(name, str) or not name:
                raise BundleError(f"params: parameter name {name!r} is not a non-empty string")
            if name in names:
                raise BundleError(f"params: parameter {name} is given twice")
            array = np.asarray(array)
            if array.dtype.name not in SUPPORTED_DTYPES:
                raise BundleError(f"params: {name} has dtype {array.dtype}, "
                                  f"the bundle supports {', '.join(SUPPORTED_DTYPES)}")
            data = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
            writer.add(name, data)
            names.add(name)
            elements += data.size
            nbytes += data.nbytes
            progress.advance(name, data.nbytes)
        writer.finish_shard()
    finally:
        writer.close()
    # As MLC writes it: ParamSize counts tensors. BitsPerParam here is per stored element (MLC divides by the
    # model's logical weight count, which packed int4 hides from us).
    metadata = {"ParamSize": len(names), "ParamBytes": nbytes,
                "BitsPerParam": 8 * nbytes / elements if elements else 0.0}
    return writer.shards, metadata


def _check_records_tile_shard(tensor_cache: Path, shard: dict) -> None:
    """Records are packed back to back in order and fill the shard exactly, each the size its shape says."""
    offset = 0
    for record in shard["records"]:
        expected = math.prod(record["shape"]) * np.dtype(record["dtype"]).itemsize
        if record["byteOffset"] != offset or record["nbytes"] != expected:
            raise BundleError(f"{tensor_cache}: record {record['name']} in {shard['dataPath']} has a wrong "
                              "byteOffset or nbytes; rebuild the bundle")
        offset += record["nbytes"]
    if offset != shard["nbytes"]:
        raise BundleError(f"{tensor_cache}: records of {shard['dataPath']} do not add up to its nbytes; "
                          "rebuild the bundle")


def _read_tensor_cache(path: Path) -> dict:
    file = path / TENSOR_CACHE
    if not file.is_file():
        raise BundleError(f"missing file {file}; rebuild the bundle")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{file}: not valid JSON ({error}); rebuild the bundle") from None


def _move_into_place(staging: Path, output: Path) -> None:
    """Rename the finished bundle to `output`; an old bundle there is renamed away first, deleted last."""
    if not output.exists():
        staging.rename(output)
        return
    # mkdtemp reserves a unique name; renaming a directory onto an empty one replaces it.
    old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    output.rename(old)
    try:
        staging.rename(output)
    except BaseException:
        old.rename(output)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _check_replaceable(output: Path) -> None:
    """Only a bundle or an empty directory may be replaced: never delete someone's other files."""
    if not output.exists():
        return
    if output.is_dir() and ((output / MANIFEST).is_file() or not any(output.iterdir())):
        return
    raise BundleError(f"{output} exists and is not a bundle; refusing to replace it (choose another output)")


def _check_free_space(directory: Path, payload_bytes: int) -> None:
    needed = payload_bytes + payload_bytes // 20 + 2**20  # 5% + 1 MiB for file system overhead and the JSON files
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise BundleError(f"not enough disk space in {directory}: need {needed / 1e6:.1f} MB, have {free / 1e6:.1f} MB")


def _check_file_name(name: str, where: str) -> None:
    # Bundles are flat: a plain file name cannot escape the bundle directory. Dot names are temp files.
    if not isinstance(name, str) or not name or name != Path(name).name or name.startswith("."):
        raise BundleError(f"{where}: {name!r} is not a plain file name")


def _shard_name(index: int) -> str:
    return f"params_shard_{index}.bin"


def _is_shard_name(name: str) -> bool:
    return name.startswith("params_shard_") and name.endswith(".bin")


def _file_entry(directory: Path, name: str) -> dict:
    sha256, _ = _digests(directory / name)
    return {"path": name, "bytes": (directory / name).stat().st_size, "sha256": sha256}


def bundle_id_of(files: list[dict]) -> str:
    """sha256 of the `sha256sum`-style listing of the files sorted by path; no timestamps, so same content, same id."""
    listing = "".join(f"{entry['sha256']}  {entry['path']}\n" for entry in sorted(files, key=lambda e: e["path"]))
    return hashlib.sha256(listing.encode()).hexdigest()[:BUNDLE_ID_HEX_CHARS]


def _digests(file: Path) -> tuple[str, str]:
    """(sha256, md5) of a file in one streaming pass."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(file, "rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()


def _json_text(value, what: str) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise BundleError(f"{what}: not JSON-serializable ({error})") from None
