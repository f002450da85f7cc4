"""Gemma 2 from a GGUF in llama.cpp's layout (general.architecture gemma2): the tiny checkpoint's weights and config
written as llama.cpp's converter writes them (its tensor names, each RMSNorm as 1 + w, the soft caps and the window
as keys; no RoPE base, layer pattern or query scalar, which llama.cpp fixes) read back through the compile pipeline as
the same model, whose native float32 build gives transformers' greedy ids and logits (the recorded fixture)."""
import re

import gguf
import numpy as np
import pytest

from compile.gemma2.gguf import LAYERS_27B, gemma2_config_from_gguf
from compile.gemma3.gguf import GGUF_BLOCK_TO_HF, GGUF_TO_HF
from compile.native import build_native_model
from compile.options import CompileOptions
from compile.pipeline import load_hf_source, load_source
from compile.quantization import get_quantization
from models.gguf_file import open_gguf
from models.llama import gguf_name
from tests.teacher_forced import assert_gives_recorded_logits
from tests.tiny_checkpoints import recorded, write_checkpoint

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


def write_gemma2_gguf(path, config, weights: dict) -> None:
    """The keys and tensors llama.cpp's converter (Gemma2Model) writes, in float32."""
    writer = gguf.GGUFWriter(path, "gemma2")
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_attn_logit_softcapping(config.attn_logit_softcapping)
    writer.add_final_logit_softcapping(config.final_logit_softcapping)
    writer.add_sliding_window(config.sliding_window)
    for name, w in weights.items():
        writer.add_tensor(gguf_name(name, GGUF_TO_HF, GGUF_BLOCK_TO_HF),
                          np.float32(1) + w if name.endswith("norm.weight") else w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def tiny_gemma2(tmp_path_factory):
    """(GGUF path, the checkpoint's config, its float32 weights)."""
    directory = write_checkpoint("gemma2", tmp_path_factory.mktemp("gemma2"), recorded("gemma2")["seed"])
    config, weights = load_hf_source(directory)
    path = directory / "tiny-gemma2.gguf"
    write_gemma2_gguf(path, config, weights)
    return path, config, weights


def test_the_gguf_has_llama_cpps_gemma2_tensors(tiny_gemma2):
    """Every tensor llama.cpp's gemma2 has (the `gguf` package's list; no output.weight: tied), and no other."""
    path, _, _ = tiny_gemma2
    expected = {gguf.TENSOR_NAMES[tensor] for tensor in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.GEMMA2]}
    written = {re.sub(r"^blk\.\d+\.", "blk.{bid}.", t.name.removesuffix(".weight")) for t in open_gguf(path).tensors}
    assert written == expected


def test_the_gguf_reads_as_the_checkpoint_it_was_written_from(tiny_gemma2):
    path, config, weights = tiny_gemma2
    read_config, read_weights = load_source(path, get_quantization("q0f32"))
    assert read_config == config and read_config.model_type == "gemma2"
    assert read_weights.keys() == weights.keys()
    for name, w in weights.items():
        if name.endswith("norm.weight"):  # 1 + w in the file, and back
            np.testing.assert_allclose(read_weights[name], w, rtol=0, atol=2**-24, err_msg=name)
        else:
            np.testing.assert_array_equal(read_weights[name], w, err_msg=name)


def test_its_native_float32_build_gives_transformers_greedy_ids_and_logits(tiny_gemma2):
    path, _, _ = tiny_gemma2
    config, weights = load_source(path, get_quantization("q0f32"))
    model = build_native_model(config, weights, "q0f32", OPTIONS)
    assert_gives_recorded_logits(model, recorded("gemma2"), "gemma2 from GGUF")


def test_the_27b_scales_scores_by_hidden_size_over_heads_as_llama_cpp_does(tmp_path):
    """llama.cpp's rule, as Gemma 2 27B's query_pre_attn_scalar (144 = 4608 / 32, not its head_dim 128)."""
    hidden, heads, head_dim = 4608, 32, 128
    scalars = {}
    for layers in (LAYERS_27B, 26):
        path = tmp_path / f"gemma2-{layers}.gguf"
        writer = gguf.GGUFWriter(path, "gemma2")
        for key, value in {"context_length": 8192, "embedding_length": hidden, "block_count": layers,
                           "feed_forward_length": 36864, "attention.head_count": heads,
                           "attention.head_count_kv": 16, "attention.key_length": head_dim,
                           "attention.value_length": head_dim}.items():
            writer.add_uint32(f"gemma2.{key}", value)
        writer.add_layer_norm_rms_eps(1e-6)
        writer.add_tensor("token_embd.weight", np.zeros((8, hidden), np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        scalars[layers] = gemma2_config_from_gguf(open_gguf(path)).query_pre_attn_scalar
    assert scalars == {LAYERS_27B: hidden / heads, 26: head_dim}
