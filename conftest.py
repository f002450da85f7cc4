"""Shared fixtures for tests/ and e2e/: the real SmolLM2-135M-Instruct (fetched through models.fetch, converted once per session) and
tiny GGUF files written on the spot for error paths and exact-conversion checks."""
import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

from compile.pipeline import CompileResult, compile_bundle
from compile.quantization import DEFAULT_QUANTIZATION
from models.convert import load_fp32_model
from models.fetch import fetch_gguf
from models.llama import LlamaConfig, hf_weight_shapes, read_llama
from models.reference import NumpyLlama
from models.registry import get_model
from models.synthetic import add_decoder_metadata
from models.tokenizer import write_tokenizer_files
from tests.tiny_ggufs import llama_cpp_permute

FIXTURES = Path(__file__).parent / "tests" / "fixtures"
SMOLLM2 = "smollm2-135m-instruct"
DEFAULT_BUNDLE = f"{SMOLLM2}-{DEFAULT_QUANTIZATION}"  # the bundle `make run` builds


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """Fetched into the user cache by set-up (`python -m models fetch smollm2-135m-instruct`); verified here."""
    return fetch_gguf(get_model(SMOLLM2))


@pytest.fixture(scope="session")
def smollm2_fp32(smollm2_gguf) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    return load_fp32_model(smollm2_gguf)


@pytest.fixture(scope="session")
def default_compile(tmp_path_factory) -> CompileResult:
    """SmolLM2's default bundle (its GGUF's own blocks, quantization "gguf"), compiled once per session (~25 s)
    into a bundles directory of its own, for tests/ and e2e/ alike."""
    directory = tmp_path_factory.mktemp("bundles")
    return compile_bundle(SMOLLM2, output=directory / DEFAULT_BUNDLE, opt_level="fast", report=lambda message: None)


@pytest.fixture(scope="session")
def smollm2_blocks(smollm2_gguf) -> dict:
    """The GGUF's own blocks (BlockWeights) for matrices, float32 for norms, with Hugging Face names."""
    return read_llama(smollm2_gguf, keep_blocks=True)[1]


@pytest.fixture(scope="session")
def smollm2_config(smollm2_fp32) -> LlamaConfig:
    return smollm2_fp32[0]


@pytest.fixture(scope="session")
def smollm2_weights(smollm2_fp32) -> dict[str, np.ndarray]:
    """Read-only float32 arrays with Hugging Face names."""
    return smollm2_fp32[1]


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(smollm2_gguf, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    write_tokenizer_files(smollm2_gguf, out)
    return out


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_tokenizer_dir) -> Tokenizer:
    return Tokenizer.from_file(str(smollm2_tokenizer_dir / "tokenizer.json"))


@pytest.fixture(scope="session")
def smollm2_tokenizer_config(smollm2_tokenizer_dir) -> dict:
    return json.loads((smollm2_tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))


@pytest.fixture
def smollm2_reference(smollm2_config, smollm2_weights) -> NumpyLlama:
    """A fresh NumpyLlama per test (its KV cache is state); construction is cheap, the weights are shared."""
    return NumpyLlama(smollm2_config, smollm2_weights)


@pytest.fixture(scope="session")
def smollm2_greedy_case() -> dict:
    """A chat prompt and the greedy answer the numpy reference gives (recorded by tests/fixtures/record_greedy.py)."""
    return json.loads((FIXTURES / "smollm2_greedy.json").read_text(encoding="utf-8"))


TINY_CONFIG = LlamaConfig(
    hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    head_dim=16, rope_theta=10000.0, rms_norm_eps=1e-5, vocab_size=40, tie_word_embeddings=True, context_length=16,
)


HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight", "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def gguf_tensor_name(hf: str) -> str:
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, suffix = rest.rsplit(".", 1)
    return f"blk.{layer}.{HF_TO_GGUF[module]}.{suffix}"


@pytest.fixture
def tiny_llama_gguf(tmp_path):
    """Factory: write a tiny random llama GGUF the way llama.cpp's converter does (Q/K permuted, 2-D weights
    in `matrix_type`, norms in F32) and return (path, config, the HF-layout float32 weights it was made from).

    `architecture`, `tokenizer_model` and `extra_tensors` ({name: (raw uint8 blocks, GGML type)}) build
    files this code must refuse."""

    def make(*, matrix_type=gguf.GGMLQuantizationType.F32, tied=True, architecture="llama",
             tokenizer_model="gpt2", extra_tensors=None) -> tuple[Path, LlamaConfig, dict[str, np.ndarray]]:
        config = TINY_CONFIG if tied else LlamaConfig(**{**TINY_CONFIG.to_dict(), "tie_word_embeddings": False})
        rng = np.random.default_rng(0)
        weights = {
            name: rng.standard_normal(shape).astype(np.float32) for name, shape in hf_weight_shapes(config).items()
        }
        path = tmp_path / f"tiny-{architecture}-{matrix_type.name}-{'tied' if tied else 'untied'}.gguf"
        writer = gguf.GGUFWriter(path, architecture)
        add_decoder_metadata(writer, config)
        writer.add_tokenizer_model(tokenizer_model)
        for name, w in weights.items():
            if "q_proj" in name or "k_proj" in name:
                w = llama_cpp_permute(w, config.num_attention_heads if "q_proj" in name else config.num_key_value_heads)
            if w.ndim == 2 and matrix_type != gguf.GGMLQuantizationType.F32:
                writer.add_tensor(gguf_tensor_name(name), gguf.quants.quantize(w, matrix_type), raw_dtype=matrix_type)
            else:
                writer.add_tensor(gguf_tensor_name(name), w)
        for name, (data, ggml_type) in (extra_tensors or {}).items():
            writer.add_tensor(name, data, raw_dtype=ggml_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path, config, weights

    return make
