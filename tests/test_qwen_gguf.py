"""Qwen2 and Qwen3 from a GGUF in llama.cpp's layout (general.architecture qwen2 / qwen3): the tiny checkpoints'
weights written as llama.cpp's converter writes them (tests/tiny_ggufs.py) read back as the same model, and its
native float32 build gives transformers' greedy ids and logits (the recorded fixture)."""
import numpy as np
import pytest

from compile.native import build_native_model
from compile.options import CompileOptions
from compile.pipeline import load_source
from compile.quantization import get_quantization
from tests.teacher_forced import assert_gives_recorded_logits
from tests.tiny_checkpoints import recorded
from tests.tiny_ggufs import write_qwen_gguf

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


@pytest.fixture(scope="module", params=["qwen2", "qwen3"])
def tiny_qwen(request, tmp_path_factory):
    """(name, GGUF path, the checkpoint's config, its float32 weights)."""
    name = request.param
    path, config, weights = write_qwen_gguf(name, tmp_path_factory.mktemp(name), recorded(name)["seed"])
    return name, path, config, weights


def test_the_gguf_reads_as_the_checkpoint_it_was_written_from(tiny_qwen):
    name, path, config, weights = tiny_qwen
    read_config, read_weights = load_source(path, get_quantization("q0f32"))
    assert read_config == config and read_config.model_type == name
    assert read_weights.keys() == weights.keys()
    for hf, w in weights.items():
        np.testing.assert_array_equal(read_weights[hf], w, err_msg=hf)


def test_its_native_float32_build_gives_transformers_greedy_ids_and_logits(tiny_qwen):
    name, path, _, _ = tiny_qwen
    case = recorded(name)
    config, weights = load_source(path, get_quantization("q0f32"))
    assert_gives_recorded_logits(build_native_model(config, weights, "q0f32", OPTIONS), case, f"{name} from GGUF")
