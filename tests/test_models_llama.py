"""GGUF -> LlamaConfig + float32 HF-layout weights: exact on tiny files written like llama.cpp, the real model's
config and tensor set, clear errors for what is not supported, and the float32 weight cache."""
import gguf
import numpy as np
import pytest

from models.convert import fp32_cache_dir, load_fp32_model
from models.errors import ModelError, UnsupportedModelError
from models.files import sha256_file
from models.gguf_file import open_gguf
from models.llama import LlamaConfig, dequantize_llama, hf_name, hf_weight_shapes

Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize("tied", [True, False])
def test_f32_gguf_converts_back_to_the_exact_hf_weights(tiny_llama_gguf, tied):
    path, config, original = tiny_llama_gguf(tied=tied)
    loaded_config, weights = dequantize_llama(path)
    assert loaded_config == config
    assert ("lm_head.weight" in weights) == (not tied)
    assert weights.keys() == original.keys()
    for name, w in weights.items():
        # exact equality also proves the Q/K un-permutation is the inverse of llama.cpp's permutation
        np.testing.assert_array_equal(w, original[name], err_msg=name)


@pytest.mark.parametrize("matrix_type, levels", [(Q.Q8_0, 127), (Q.Q4_0, 7), (Q.Q4_1, 15), (Q.Q5_0, 15), (Q.Q5_1, 31)])
def test_quantized_gguf_dequantizes_within_its_step(tiny_llama_gguf, matrix_type, levels):
    path, _, original = tiny_llama_gguf(matrix_type=matrix_type)
    _, weights = dequantize_llama(path)
    for name, w in weights.items():
        assert w.dtype == np.float32 and w.shape == original[name].shape
        # one quantization step of a 32-wide block is at most (max - min) / levels <= 2 max|w| / levels
        step = 2 * np.abs(original[name]).max() / levels
        assert np.abs(w - original[name]).max() <= step, name


def test_hf_names_of_gguf_tensors():
    assert hf_name("token_embd.weight") == "model.embed_tokens.weight"
    assert hf_name("output.weight") == "lm_head.weight"
    assert hf_name("blk.12.attn_k.weight") == "model.layers.12.self_attn.k_proj.weight"
    assert hf_name("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
    with pytest.raises(UnsupportedModelError, match="rope_factors_long.weight"):
        hf_name("rope_factors_long.weight")


def test_unsupported_architecture_is_refused(tiny_llama_gguf):
    path, _, _ = tiny_llama_gguf(architecture="gemma3")
    with pytest.raises(UnsupportedModelError, match=r"architecture 'gemma3' is not supported \(supported: llama\)"):
        dequantize_llama(path)


def test_unsupported_quantization_type_is_refused(tiny_llama_gguf):
    q2_k_block = np.zeros((1, 84), np.uint8)  # one 256-element Q2_K block: 2-bit, no exact bundle format
    path, _, _ = tiny_llama_gguf(extra_tensors={"blk.0.extra.weight": (q2_k_block, Q.Q2_K)})
    with pytest.raises(UnsupportedModelError, match=r"unsupported tensor types \{'blk.0.extra.weight': 'Q2_K'\}"):
        dequantize_llama(path)


def test_unexpected_tensor_is_refused(tiny_llama_gguf):
    """Phi-3's LongRoPE factors in a llama file: no llama model computes them."""
    path, _, _ = tiny_llama_gguf(extra_tensors={"rope_factors_long.weight": (np.zeros((1, 34), np.uint8), Q.Q8_0)})
    with pytest.raises(UnsupportedModelError, match="unexpected tensor 'rope_factors_long.weight'"):
        dequantize_llama(path)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 not a gguf file")
    with pytest.raises(ModelError, match="cannot read .* as a GGUF file"):
        dequantize_llama(path)


def test_smollm2_config(smollm2_config):
    assert smollm2_config == LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
        head_dim=64, rope_theta=100000.0, rms_norm_eps=1e-5, vocab_size=49152, tie_word_embeddings=True,
        context_length=8192,
    )


def test_smollm2_weights_have_hf_names_and_shapes(smollm2_config, smollm2_weights):
    assert {name: w.shape for name, w in smollm2_weights.items()} == hf_weight_shapes(smollm2_config)
    assert "lm_head.weight" not in smollm2_weights  # tied to model.embed_tokens.weight
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in smollm2_weights.values())
    assert sum(w.size for w in smollm2_weights.values()) == 134_515_008


def test_smollm2_config_from_gguf_metadata(smollm2_gguf, smollm2_config):
    assert LlamaConfig.from_gguf(open_gguf(smollm2_gguf)) == smollm2_config


def test_fp32_cache_is_reused_and_rebuilt_when_damaged(tiny_llama_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("TABLLM_CACHE_DIR", str(tmp_path / "cache"))
    path, config, original = tiny_llama_gguf()
    first_config, first = load_fp32_model(path)
    cache = fp32_cache_dir(sha256_file(path))
    assert first_config == config and sorted(p.name for p in cache.iterdir()) == sorted(
        ["config.json"] + [f"{name}.npy" for name in original])
    assert not any(w.flags.writeable for w in first.values())  # memory-mapped from the cache
    embedding = cache / "model.embed_tokens.weight.npy"
    embedding.write_bytes(embedding.read_bytes()[:-100])  # truncated: unreadable
    _, second = load_fp32_model(path)
    np.testing.assert_array_equal(second["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
