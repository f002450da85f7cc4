"""models/synthetic.py: a GGUF of a real model's shape with random weights. The same seed gives the same bytes
(another seed or tensor other bytes); the blocks dequantize (by the gguf package) to weights of the intended
scale; the file reads back as the shape, with SmolLM2's tokenizer padded to the vocabulary size, which encodes
text to SmolLM2's own ids."""
import subprocess
import sys

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
from tokenizers import Tokenizer

from models.gguf_file import gguf_value, open_gguf
from models.llama import LlamaConfig
from models.synthetic import SIZES, random_blocks, tensor_data, write_synthetic_gguf
from models.tokenizer import write_tokenizer_files


def test_a_tensor_depends_on_its_seed_and_name_only():
    shape = (64, 896)
    first = tensor_data("blk.3.ffn_up.weight", shape, 896, seed=0)
    assert np.array_equal(first, tensor_data("blk.3.ffn_up.weight", shape, 896, seed=0))
    assert not np.array_equal(first, tensor_data("blk.3.ffn_up.weight", shape, 896, seed=1))
    assert not np.array_equal(first, tensor_data("blk.4.ffn_up.weight", shape, 896, seed=0))


@pytest.mark.parametrize("ggml_type", [T.Q4_1, T.Q8_0])
def test_blocks_hold_centred_weights_of_the_intended_scale(ggml_type):
    rms = 1 / np.sqrt(896)
    weights = dequantize(random_blocks(np.random.default_rng(0), ggml_type, (512, 896), rms), ggml_type)
    assert weights.shape == (512, 896) and np.isfinite(weights).all()
    assert abs(np.sqrt(np.mean(weights ** 2)) / rms - 1) < 0.05
    assert abs(weights.mean()) < 0.02 * rms


def test_the_file_reads_back_as_the_shape_with_smollm2s_tokenizer_padded(tmp_path, smollm2_gguf,
                                                                         smollm2_tokenizer):
    shape = SIZES["0.5b"]
    path = write_synthetic_gguf("0.5b", tmp_path / "synthetic-0.5b.gguf", tokenizer_gguf=smollm2_gguf)
    reader = open_gguf(path)
    config = LlamaConfig.from_gguf(reader)
    assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.num_attention_heads,
            config.num_key_value_heads, config.head_dim, config.vocab_size, config.rope_theta) == (
        896, 4864, 24, 14, 2, 64, 151936, 1e6)
    assert config.tie_word_embeddings and "output.weight" not in {t.name for t in reader.tensors}
    assert sum(int(t.n_elements) for t in reader.tensors) == shape.parameters
    assert {t.tensor_type for t in reader.tensors if len(t.shape) == 2} == {T.Q4_1, T.Q8_0}
    tokens = gguf_value(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == shape.vocab and tokens[:49152] == gguf_value(open_gguf(smollm2_gguf), "tokenizer.ggml.tokens")
    write_tokenizer_files(path, tmp_path)
    padded = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = "The capital of France is Paris. <|im_start|>user"
    assert padded.encode(text).ids == smollm2_tokenizer.encode(text).ids
    assert padded.get_vocab_size() == shape.vocab


def test_cli_rejects_an_unknown_size(tmp_path):
    result = subprocess.run([sys.executable, "-m", "models.synthetic", "0.5b,7b", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown size '7b'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # not even the known size is written
