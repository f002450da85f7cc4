"""Llama 3, Qwen2, Qwen3 and Phi-3 from a GGUF in llama.cpp's layout (general.architecture llama / qwen2 / qwen3 /
phi3): the tiny checkpoints' weights and config written as llama.cpp's converter writes them (tests/tiny_ggufs.py;
Llama 3's with its RoPE scaling as rope_freqs, Phi-3's with LongRoPE) read back as the same model, and its native
float32 build gives transformers' greedy ids and logits (the recorded fixture)."""
from functools import partial

import gguf
import numpy as np
import pytest

from compile.native import build_native_model
from compile.options import CompileOptions
from compile.pipeline import load_source
from compile.quantization import get_quantization
from models.errors import UnsupportedModelError
from tests.teacher_forced import assert_gives_recorded_logits
from tests.tiny_checkpoints import CHECKPOINTS, recorded
from tests.tiny_ggufs import PHI3_FACTOR_TENSORS, write_llama3_gguf, write_phi3_gguf, write_qwen_gguf

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


WRITERS = {"llama3": write_llama3_gguf, "phi3": write_phi3_gguf,
           **{name: partial(write_qwen_gguf, name) for name in ("qwen2", "qwen3")}}


@pytest.fixture(scope="module", params=list(WRITERS))
def tiny_gguf(request, tmp_path_factory):
    """(name, GGUF path, the checkpoint's config, its float32 weights)."""
    name = request.param
    path, config, weights = WRITERS[name](tmp_path_factory.mktemp(name), recorded(name)["seed"])
    return name, path, config, weights


def test_the_gguf_reads_as_the_checkpoint_it_was_written_from(tiny_gguf):
    name, path, config, weights = tiny_gguf
    read_config, read_weights = load_source(path, get_quantization("q0f32"))
    assert read_config == config and read_config.model_type == CHECKPOINTS[name][0]["model_type"]
    assert read_weights.keys() == weights.keys()
    for hf, w in weights.items():
        np.testing.assert_array_equal(read_weights[hf], w, err_msg=hf)


def test_its_native_float32_build_gives_transformers_greedy_ids_and_logits(tiny_gguf):
    name, path, _, _ = tiny_gguf
    config, weights = load_source(path, get_quantization("q0f32"))
    assert_gives_recorded_logits(build_native_model(config, weights, "q0f32", OPTIONS), recorded(name),
                                 f"{name} from GGUF")


def test_phi3_keeps_its_fused_matrices_and_longrope_factors(tmp_path):
    """q/k/v and gate/up are one tensor each in the file, as in the checkpoint; the RoPE factors are config."""
    path, config, _ = write_phi3_gguf(tmp_path, seed=0)
    assert {t.name for t in gguf.GGUFReader(path).tensors} >= {"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight",
                                                               *PHI3_FACTOR_TENSORS.values()}
    read_config, read_weights = load_source(path, get_quantization("q0f32"))
    assert read_config.rope_scaling["long_factor"][-1] == 44.0 and read_config.sliding_window == 48
    assert read_weights["model.layers.1.mlp.gate_up_proj.weight"].shape == (2 * config.intermediate_size,
                                                                             config.hidden_size)


def test_a_phi3_gguf_with_a_partial_rotary_embedding_is_refused(tmp_path):
    """Phi-4-mini is a phi3 GGUF too, its RoPE over 3/4 of each head."""
    path, _, _ = write_phi3_gguf(tmp_path, seed=0, rope_dimension_count=12)
    with pytest.raises(UnsupportedModelError, match="partial rotary embeddings"):
        load_source(path, get_quantization("q0f32"))
