"""Reading a Hugging Face checkpoint directory: safetensors in each float dtype (exact widening to float32), shards,
and one clear error for each way a directory can be incomplete. (That the files mean to transformers what they
mean here: tests/test_architectures.py.)"""
import json

import numpy as np
import pytest

from models.errors import ModelError, UnsupportedModelError
from models.huggingface import generation_eos_ids, read_hf_checkpoint, read_safetensors
from models.tokenizer import hf_tokenizer_files
from tests.tiny_checkpoints import write_checkpoint, write_safetensors


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_float_dtypes_widen_to_float32_exactly(dtype, tmp_path):
    # values every dtype holds exactly: small integers times powers of two
    w = (np.arange(-12, 12, dtype=np.float32).reshape(4, 6) * np.float32(0.25))
    write_safetensors(tmp_path / "w.safetensors", {"a": w, "b": w[:1] * 2}, dtype)
    tensors = read_safetensors(tmp_path / "w.safetensors")
    assert {name: t.dtype for name, t in tensors.items()} == {"a": np.float32, "b": np.float32}
    np.testing.assert_array_equal(tensors["a"], w)
    np.testing.assert_array_equal(tensors["b"], w[:1] * 2)


def test_bfloat16_keeps_the_upper_half_of_float32(tmp_path):
    w = np.array([1 + 2**-7, -3.140625, 2**-126, 65280.0], np.float32)  # all exact in bfloat16
    write_safetensors(tmp_path / "w.safetensors", {"w": w}, "BF16")
    np.testing.assert_array_equal(read_safetensors(tmp_path / "w.safetensors")["w"], w)


def test_sharded_checkpoint_reads_every_shard(tmp_path):
    directory = write_checkpoint("qwen3", tmp_path / "qwen3")  # two shards and an index
    config, weights = read_hf_checkpoint(directory)
    assert config["model_type"] == "qwen3"
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    assert weights.keys() == index["weight_map"].keys() and len(set(index["weight_map"].values())) == 2


def test_a_missing_shard_is_named(tmp_path):
    directory = write_checkpoint("qwen3", tmp_path / "qwen3")
    (directory / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelError, match="weight files missing: model-00002-of-00002.safetensors"):
        read_hf_checkpoint(directory)


def test_integer_tensors_are_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    header = json.dumps({"ids": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
    with pytest.raises(UnsupportedModelError, match="ids is I32; supported: F32, F16, BF16"):
        read_safetensors(path)


def test_a_truncated_file_is_refused(tmp_path):
    write_safetensors(tmp_path / "w.safetensors", {"w": np.ones((8, 8), np.float32)}, "F32")
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[:-4])
    with pytest.raises(ModelError, match="do not hold F32"):
        read_safetensors(tmp_path / "w.safetensors")


def test_tokenizer_files_are_required_and_must_parse(tmp_path):
    directory = write_checkpoint("qwen2", tmp_path / "qwen2")
    (directory / "tokenizer.json").write_text('{"model": {"type": "NoSuchModel"}}')
    with pytest.raises(ModelError, match="cannot read the tokenizer"):
        hf_tokenizer_files(directory)
    (directory / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="tokenizer.json is missing"):
        hf_tokenizer_files(directory)


def test_generation_stop_tokens_come_as_an_id_or_a_list(tmp_path):
    assert generation_eos_ids(tmp_path) == []  # no generation_config.json
    for eos, ids in [(7, [7]), ([7, 9], [7, 9]), (None, [])]:
        (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
        assert generation_eos_ids(tmp_path) == ids
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": "</s>"}))
    with pytest.raises(ModelError, match="eos_token_id must be a token id"):
        generation_eos_ids(tmp_path)
