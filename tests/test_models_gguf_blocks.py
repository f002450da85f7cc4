"""A GGUF's own blocks held as BlockWeights (models.gguf_blocks) read back exactly what the `gguf` package's own
dequantize gives: on SmolLM2's real Q4_1 and Q8_0 tensors, on real weights quantized by the `gguf` package to the
types it can write, and on random blocks of the K-quant types it can only read (no K-quant file is on PyPI)."""
import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from models.gguf_blocks import BLOCK_TYPES, unpack_blocks
from models.gguf_file import open_gguf
from models.llama import dequantize_llama, read_llama
from models.quantization import BlockWeight

# Byte offsets of each type's f16 fields: random bytes there could be NaN or inf, which no real file holds.
F16_FIELDS = {T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q4_K: [0, 2],
              T.Q5_K: [0, 2], T.Q6_K: [208]}


def shape_of(tensor) -> tuple[int, int]:
    return tuple(int(n) for n in reversed(tensor.shape))


def test_every_block_type_is_covered():
    assert set(F16_FIELDS) == set(BLOCK_TYPES)


def test_real_q4_1_and_q8_0_tensors_read_back_exactly(smollm2_gguf):
    reader = open_gguf(smollm2_gguf)
    tensors = {t.name: t for t in reader.tensors}
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.7.ffn_down.weight", "blk.29.ffn_up.weight"]:
        tensor = tensors[name]
        assert tensor.tensor_type in (T.Q4_1, T.Q8_0)
        blocks = unpack_blocks(tensor.data, tensor.tensor_type, shape_of(tensor))
        assert blocks.format.name == {T.Q4_1: "q4g32", T.Q8_0: "q8g32z128"}[tensor.tensor_type]
        assert (blocks.dequantize() == gguf.quants.dequantize(tensor.data, tensor.tensor_type)).all(), name


@pytest.mark.parametrize("ggml_type", [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0])
def test_real_weights_quantized_by_gguf_read_back_exactly(ggml_type, smollm2_weights):
    w = smollm2_weights["model.layers.3.mlp.down_proj.weight"]
    data = gguf.quants.quantize(w, ggml_type)
    blocks = unpack_blocks(data, ggml_type, w.shape)
    assert (blocks.dequantize() == gguf.quants.dequantize(data, ggml_type)).all()


@pytest.mark.parametrize("ggml_type", [T.Q4_K, T.Q5_K, T.Q6_K])
def test_random_k_quant_blocks_read_back_exactly(ggml_type):
    block_bytes, block_weights, fmt, _ = BLOCK_TYPES[ggml_type]
    rows, cols = 6, 3 * block_weights
    rng = np.random.default_rng(int(ggml_type))
    data = rng.integers(0, 256, size=(rows, cols // block_weights * block_bytes), dtype=np.uint8)
    for start in F16_FIELDS[ggml_type]:
        data.reshape(-1, block_bytes)[:, start:start + 2] = (
            rng.uniform(-0.1, 0.1, (rows * cols // block_weights, 1)).astype(np.float16).view(np.uint8))
    blocks = unpack_blocks(data, ggml_type, (rows, cols))
    assert blocks.format == fmt and blocks.codes.max() < 1 << {T.Q4_K: 4, T.Q5_K: 5, T.Q6_K: 6}[ggml_type]
    assert (blocks.dequantize() == gguf.quants.dequantize(data, ggml_type)).all()


def test_a_truncated_tensor_is_refused():
    data = gguf.quants.quantize(np.ones((4, 64), np.float32), T.Q4_1)
    with pytest.raises(ValueError, match=r"Q4_1 data of 60 bytes does not hold a \[4, 64\] matrix"):
        unpack_blocks(data.reshape(-1)[:60], T.Q4_1, (4, 64))


def test_the_model_read_as_blocks_holds_exactly_its_float32_weights(smollm2_gguf, smollm2_weights):
    """Q/K rows unpermuted with their blocks, every matrix kept as blocks, norms as float32."""
    config, blocks = read_llama(smollm2_gguf, keep_blocks=True)
    assert blocks.keys() == smollm2_weights.keys()
    for name, w in blocks.items():
        assert isinstance(w, BlockWeight) == (len(w.shape) == 2), name
        restored = w.dequantize() if isinstance(w, BlockWeight) else w
        assert (restored == smollm2_weights[name]).all(), name


def test_tiny_q4_0_model_read_as_blocks(tiny_llama_gguf):
    path, _, _ = tiny_llama_gguf(matrix_type=T.Q4_0)
    _, blocks = read_llama(path, keep_blocks=True)
    _, floats = dequantize_llama(path)
    q = blocks["model.layers.1.self_attn.q_proj.weight"]
    assert q.format.name == "q4g32z8" and (q.dequantize() == floats["model.layers.1.self_attn.q_proj.weight"]).all()
