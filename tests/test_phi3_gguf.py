"""Phi-3 from a GGUF in llama.cpp's layout (general.architecture phi3): the tiny LongRoPE checkpoint's weights and
config written as llama.cpp's converter writes them (the `gguf` package's own names for Phi-3's tensors: q/k/v fused
as attn_qkv, gate and up as ffn_up; LongRoPE's factors as the rope_factors_short/long tensors, its original context
and attention factor as keys; float32) read back as the same model, and its native float32 build gives
transformers' greedy ids and logits (the recorded fixture)."""
import json
import math

import gguf
import numpy as np
import pytest

from compile.native import build_native_model
from compile.options import CompileOptions
from compile.pipeline import load_hf_source, load_source
from compile.quantization import get_quantization
from models.errors import UnsupportedModelError
from models.synthetic import add_decoder_metadata
from tests.tiny_checkpoints import recorded, write_checkpoint

LOGITS_ATOL = 1e-4
OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)
FACTOR_TENSORS = {key: gguf.TENSOR_NAMES[tensor] + ".weight" for key, tensor in (
    ("short_factor", gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT), ("long_factor", gguf.MODEL_TENSOR.ROPE_FACTORS_LONG))}


def write_phi3_gguf(path, directory, rope_dimension_count=None):
    """The checkpoint in `directory` as llama.cpp's converter (Phi3MiniModel) writes it."""
    hf = json.loads((directory / "config.json").read_text())
    config, weights = load_hf_source(directory)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.PHI3, config.num_hidden_layers)
    writer = gguf.GGUFWriter(path, "phi3")
    add_decoder_metadata(writer, config)
    writer.add_rope_dimension_count(rope_dimension_count or config.head_dim)
    original = hf["original_max_position_embeddings"]
    writer.add_rope_scaling_orig_ctx_len(original)
    writer.add_sliding_window(hf["sliding_window"])
    scale = hf["max_position_embeddings"] / original
    writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(original)))
    for name, w in weights.items():
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), w)
    for key, tensor in FACTOR_TENSORS.items():
        writer.add_tensor(tensor, np.array(hf["rope_scaling"][key], np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_phi3(tmp_path_factory):
    """(GGUF path, the checkpoint's config, its float32 weights)."""
    directory = write_checkpoint("phi3", tmp_path_factory.mktemp("phi3"), recorded("phi3")["seed"])
    config, weights = load_hf_source(directory)
    return write_phi3_gguf(directory / "tiny-phi3.gguf", directory), config, weights


def test_the_gguf_reads_as_the_checkpoint_it_was_written_from(tiny_phi3):
    path, config, weights = tiny_phi3
    assert {t.name for t in gguf.GGUFReader(path).tensors} >= {"blk.0.attn_qkv.weight", "blk.1.ffn_up.weight",
                                                               *FACTOR_TENSORS.values()}
    read_config, read_weights = load_source(path, get_quantization("q0f32"))
    assert read_config == config and read_config.model_type == "phi3"
    assert read_config.rope_scaling["long_factor"][-1] == 44.0 and read_config.sliding_window == 262144
    assert read_weights.keys() == weights.keys()
    for name, w in weights.items():
        np.testing.assert_array_equal(read_weights[name], w, err_msg=name)


def test_its_native_float32_build_gives_transformers_greedy_ids_and_logits(tiny_phi3):
    path, _, _ = tiny_phi3
    case = recorded("phi3")
    config, weights = load_source(path, get_quantization("q0f32"))
    model = build_native_model(config, weights, "q0f32", OPTIONS)
    prompt, greedy = case["prompt_ids"], case["greedy_ids"]
    logits = [model.prefill(prompt)] + [model.decode_one_token(t) for t in greedy[:-1]]
    assert [int(np.argmax(row)) for row in logits] == greedy
    errors = [float(np.max(np.abs(logits[int(step)] - np.array(row)))) for step, row in case["logits"].items()]
    print(f"phi3 from GGUF: max |logit - transformers'| {max(errors):.1e}")
    assert max(errors) < LOGITS_ATOL


def test_a_partial_rotary_embedding_is_refused(tiny_phi3, tmp_path):
    """Phi-4-mini is a phi3 GGUF too, its RoPE over 3/4 of each head."""
    path, _, _ = tiny_phi3
    partial = write_phi3_gguf(tmp_path / "partial.gguf", path.parent, rope_dimension_count=12)
    with pytest.raises(UnsupportedModelError, match="partial rotary embeddings"):
        load_source(partial, get_quantization("q0f32"))
