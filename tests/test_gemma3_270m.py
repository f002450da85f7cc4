"""The real Gemma 3 270M (Q4_K_M GGUF, fetched from its PyPI packages): its K-quant blocks read back exactly as the
`gguf` package dequantizes them, and its build for this CPU, keeping those blocks, continues a prompt greedily as
transformers does in float32 on the same file (tests/fixtures/record_gemma3_270m.py recorded it)."""
import json
from pathlib import Path

import gguf
import pytest
from gguf import GGMLQuantizationType as T

from compile.gemma3.gguf import read_gemma3_gguf
from compile.native import build_native_model
from compile.options import CompileOptions
from models.fetch import fetch_gguf
from models.gguf_blocks import unpack_blocks
from models.gguf_file import open_gguf
from models.registry import get_model

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "gemma3_270m_transformers.json").read_text())
# the window of its sliding layers, so that TVM's window logic and ours agree it holds the whole context here
OPTIONS = CompileOptions(context_window_size=512, prefill_chunk_size=64)


@pytest.fixture(scope="module")
def gemma3_270m_gguf() -> Path:
    return fetch_gguf(get_model("gemma3-270m"))


def test_its_k_quant_and_other_blocks_read_back_exactly(gemma3_270m_gguf):
    tensors = {t.name: t for t in open_gguf(gemma3_270m_gguf).tensors}
    for name, ggml_type in [("blk.0.attn_output.weight", T.Q4_K), ("blk.0.ffn_down.weight", T.Q6_K),
                            ("blk.0.attn_q.weight", T.Q5_0), ("blk.0.attn_v.weight", T.Q8_0)]:
        tensor = tensors[name]
        assert tensor.tensor_type == ggml_type
        shape = tuple(int(n) for n in reversed(tensor.shape))
        blocks = unpack_blocks(tensor.data, ggml_type, shape)
        assert (blocks.dequantize() == gguf.quants.dequantize(tensor.data, ggml_type).reshape(shape)).all(), name


def test_its_build_continues_the_prompt_as_transformers_does(gemma3_270m_gguf):
    config, blocks = read_gemma3_gguf(gemma3_270m_gguf, keep_blocks=True)
    assert (config.num_hidden_layers, config.head_dim, config.sliding_window, config.vocab_size) == (
        18, 256, 512, 262144)
    model = build_native_model(config, blocks, "gguf", OPTIONS)
    prompt, greedy = RECORDED["prompt_ids"], RECORDED["greedy_ids"]
    assert model.generate_greedy(prompt, len(greedy)) == greedy
