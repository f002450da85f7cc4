"""Gemma 3 from a GGUF in llama.cpp's layout (general.architecture gemma3): the tiny checkpoint's weights written as
llama.cpp's converter writes them (its tensor names, each RMSNorm as 1 + w, matrices in block formats of the Gemma 3
270M file) read back as the same model, and a build that keeps the blocks computes what they hold."""
import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from compile.gemma3.config import SLIDING, pattern_layer_types
from compile.gemma3.gguf import GGUF_BLOCK_TO_HF, GGUF_TO_HF, read_gemma3_gguf
from compile.native import build_native_model
from compile.options import CompileOptions
from compile.pipeline import load_hf_source
from models.errors import UnsupportedModelError
from models.llama import gguf_name
from models.synthetic import add_decoder_metadata
from tests.tiny_checkpoints import recorded, write_checkpoint

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)
# matrix -> block type, as in gemma-3-270m-q4_k_m.gguf except for its K-quants (Q4_K, Q6_K), which the `gguf`
# package cannot write: tests/test_gemma3_270m.py reads the real file's
MATRIX_TYPES = {"q_proj": T.Q5_0, "k_proj": T.Q5_0, "v_proj": T.Q8_0, "o_proj": T.Q8_0, "gate_proj": T.Q5_0,
                "up_proj": T.Q5_0, "down_proj": T.Q5_0, "embed_tokens": T.Q8_0}


@pytest.fixture(scope="module")
def tiny_gemma3(tmp_path_factory):
    """(GGUF path, the checkpoint's config, its float32 weights): six layers, so that llama.cpp's fixed pattern
    (five sliding, one global) is the checkpoint's own too, and a query scalar equal to head_dim (which is what
    llama.cpp assumes)."""
    directory = write_checkpoint("gemma3", tmp_path_factory.mktemp("gemma3"), changes={
        "num_hidden_layers": 6, "query_pre_attn_scalar": 32, "layer_types": list(pattern_layer_types(6))})
    config, weights = load_hf_source(directory)
    path = directory / "tiny-gemma3.gguf"
    writer = gguf.GGUFWriter(path, "gemma3")
    add_decoder_metadata(writer, config)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_sliding_window(config.sliding_window)
    for name, w in weights.items():
        tensor = gguf_name(name, GGUF_TO_HF, GGUF_BLOCK_TO_HF)
        if name.endswith("norm.weight"):
            writer.add_tensor(tensor, np.float32(1) + w)
        else:
            kind = MATRIX_TYPES[name.split(".")[-2]]
            writer.add_tensor(tensor, gguf.quants.quantize(w, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, config, weights


def test_the_gguf_reads_as_the_checkpoint_it_was_written_from(tiny_gemma3):
    path, config, weights = tiny_gemma3
    read_config, read_weights = read_gemma3_gguf(path, keep_blocks=False)
    assert read_config == config
    assert read_config.layer_types.count(SLIDING) == 5
    for name, w in weights.items():
        if name.endswith("norm.weight"):  # float32 in the file: 1 + w, and back
            np.testing.assert_allclose(read_weights[name], w, rtol=0, atol=2**-24)
        else:  # quantized: within half a step of its block's scale
            assert np.max(np.abs(read_weights[name] - w)) < 0.1 * np.max(np.abs(w)), name


def test_a_build_that_keeps_the_blocks_computes_what_they_hold(tiny_gemma3):
    path, _, _ = tiny_gemma3
    prompt = recorded("gemma3")["prompt_ids"]
    config, blocks = read_gemma3_gguf(path, keep_blocks=True)
    _, floats = read_gemma3_gguf(path, keep_blocks=False)
    kept = build_native_model(config, blocks, "gguf", OPTIONS)
    dequantized = build_native_model(config, floats, "q0f32", OPTIONS)
    logits, expected = kept.prefill(prompt), dequantized.prefill(prompt)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    assert np.ptp(expected) > 1  # the logits spread: a real comparison


def test_a_gguf_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "phi3.gguf"
    writer = gguf.GGUFWriter(path, "phi3")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(UnsupportedModelError, match="phi3.gguf is not a gemma3 GGUF"):
        read_gemma3_gguf(path, keep_blocks=False)
