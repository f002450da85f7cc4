"""Llama 3.1+/3.2 GGUFs keep their RoPE scaling in a rope_freqs tensor (what each frequency is divided by, as
llama.cpp's converter computes it from config.json's rope_scaling). The tiny seeded Llama 3 checkpoint written so
(tests/tiny_ggufs.py; its original context of 64 tokens puts the 89-token prompt in the scaled range): the numpy
reference applies the factors and gives transformers' greedy ids and logits (tests/fixtures/llama3_transformers.json),
which it is far from without them; a build of the file's Q8_0 blocks gives transformers' greedy ids and its own
weights' logits (tests/test_architecture_ggufs.py checks the float32 build against transformers); `python -m
compile FILE.gguf`'s pipeline writes a bundle of it. The factors a Hugging Face config's rope_scaling gives are the
converter's; a malformed rope_freqs is refused."""
import dataclasses
import json

import gguf
import numpy as np
import pytest

from compile.native import build_native_model
from compile.options import CompileOptions
from compile.bundle import verify_bundle
from compile.pipeline import compile_bundle, load_hf_source, load_source
from compile.quantization import get_quantization
from models.errors import UnsupportedModelError
from models.llama import dequantize_llama, llama3_rope_freq_factors
from models.reference import NumpyLlama
from tests.bpe_ggufs import recorded_tokenizer
from tests.teacher_forced import LOGITS_ATOL, assert_gives_recorded_logits, recorded_turns
from tests.tiny_checkpoints import CHECKPOINTS, recorded, write_checkpoint
from tests.tiny_ggufs import llama_cpp_rope_freqs, write_llama3_gguf

CASE = recorded("llama3")
OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


@dataclasses.dataclass
class ReferenceSteps:
    """The numpy reference stepped as a native model is: the last position's logits of each call."""
    reference: NumpyLlama

    def prefill(self, ids) -> np.ndarray:
        return self.reference.prefill(ids)[-1]

    def decode_one_token(self, token: int) -> np.ndarray:
        return self.reference.decode(token)

    def reset(self) -> None:
        self.reference.reset()


@pytest.fixture(scope="module")
def llama3_gguf(tmp_path_factory):
    """(the float32 GGUF's path, its config and float32 weights as read)."""
    path, _, _ = write_llama3_gguf(tmp_path_factory.mktemp("llama3"), CASE["seed"])
    return path, *dequantize_llama(path)


def test_the_reference_applies_the_rope_freqs_and_gives_transformers_greedy_ids_and_logits(llama3_gguf):
    _, config, weights = llama3_gguf
    assert config.rope_freq_factors[0] == 1.0 and config.rope_freq_factors[-1] == 8.0
    assert_gives_recorded_logits(ReferenceSteps(NumpyLlama(config, weights)), CASE, "numpy reference, llama3 GGUF")


def test_the_fixture_depends_on_the_rope_freqs(llama3_gguf):
    """Without its factors the same model is 3.0 off transformers' first logits (measured), so the 1e-4 of the test
    above and of the native builds holds only where the factors are applied."""
    _, config, weights = llama3_gguf
    plain = NumpyLlama(dataclasses.replace(config, rope_freq_factors=None), weights)
    assert np.max(np.abs(plain.prefill(CASE["prompt_ids"])[-1] - np.array(CASE["logits"]["0"]))) > 1e4 * LOGITS_ATOL


def test_a_build_of_its_q8_0_blocks_gives_transformers_greedy_ids_and_its_weights_logits(tmp_path):
    """The file's own blocks (quantization "gguf", as `python -m compile --gguf` builds by default): transformers'
    greedy ids over both turns of its chat, teacher-forced, and the logits of the numpy reference of the dequantized blocks (0.16 from
    transformers' float32 ones, measured)."""
    path, _, _ = write_llama3_gguf(tmp_path, CASE["seed"], gguf.GGMLQuantizationType.Q8_0)
    config, blocks = load_source(path, get_quantization("gguf"))
    assert config.rope_freq_factors == llama_cpp_rope_freqs(CHECKPOINTS["llama3"][0]).tolist()
    model = build_native_model(config, blocks, "gguf", OPTIONS)
    reference = ReferenceSteps(NumpyLlama(*dequantize_llama(path)))
    error = 0.0
    for turn in recorded_turns(CASE):  # both turns on one KV cache
        steps = [(model.prefill(turn["newIds"]), reference.prefill(turn["newIds"]))]
        steps += [(model.decode_one_token(t), reference.decode_one_token(t)) for t in turn["fedIds"]]
        assert [int(np.argmax(native)) for native, _ in steps] == turn["greedy"]
        error = max([error] + [float(np.max(np.abs(native - expected))) for native, expected in steps])
    print(f"llama3 GGUF, Q8_0 blocks: max |logit - the dequantized reference's| {error:.1e}")
    assert error < LOGITS_ATOL


def test_the_compile_pipeline_writes_a_bundle_of_it(tmp_path):
    """As `python -m compile FILE.gguf` does (its default, the file's own blocks; the wasm32 library only), with
    Llama 3's tokenizer in the file (tests/bpe_ggufs.py): the bundle's config carries the factors, and a generation
    ends at <|eot_id|>."""
    tokenizer = recorded_tokenizer("llama3")["gguf"]
    path, config, _ = write_llama3_gguf(tmp_path, CASE["seed"], gguf.GGMLQuantizationType.Q8_0, tokenizer=tokenizer)
    bundle = compile_bundle(str(path), output=tmp_path / "bundle", options=OPTIONS, opt_level="fast",
                            libraries=("wasm32",), report=lambda message: None).bundle
    verify_bundle(bundle.path)
    chat = json.loads((bundle.path / "mlc-chat-config.json").read_text(encoding="utf-8"))
    assert chat["quantization"] == "gguf" and chat["model_config"]["rope_freq_factors"] == config.rope_freq_factors
    assert [tokenizer["tokens"][i] for i in chat["eos_token_id"]] == ["<|eot_id|>"]


# config.json's keys that decide the factors, of Meta's Llama 3.1 8B, 3.2 1B and 3.2 3B
REAL_CONFIGS = {
    name: {"hidden_size": hidden, "num_attention_heads": heads, "rope_theta": 500000.0,
           "rope_scaling": {"rope_type": "llama3", "factor": factor, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 8192}}
    for name, hidden, heads, factor in [("3.1-8B", 4096, 32, 8.0), ("3.2-1B", 2048, 32, 32.0),
                                        ("3.2-3B", 3072, 24, 32.0)]
}


@pytest.mark.parametrize("name", REAL_CONFIGS)
def test_a_checkpoints_rope_scaling_gives_the_factors_llama_cpp_writes(name):
    """A Hugging Face Llama 3 checkpoint and its GGUF are the same model, RoPE included."""
    hf = REAL_CONFIGS[name]
    head_dim = hf["hidden_size"] // hf["num_attention_heads"]
    factors = llama3_rope_freq_factors(hf["rope_scaling"], hf["rope_theta"], head_dim)
    assert factors == llama_cpp_rope_freqs(hf).tolist()
    assert len(factors) == head_dim // 2 and factors[0] == 1.0 and factors[-1] == hf["rope_scaling"]["factor"]


def test_a_checkpoint_whose_llama3_rope_scaling_lacks_a_key_is_refused(tmp_path):
    rope_scaling = {**CHECKPOINTS["llama3"][0]["rope_scaling"]}
    del rope_scaling["low_freq_factor"]
    directory = write_checkpoint("llama3", tmp_path / "llama3", changes={"rope_scaling": rope_scaling})
    with pytest.raises(UnsupportedModelError, match="Llama 3 RoPE scaling .* needs factor, low_freq_factor"):
        load_hf_source(directory)


@pytest.mark.parametrize("rope_freqs, message", [
    pytest.param(np.ones(4, np.float32), r"has shape \[4\]", id="too few"),
    pytest.param(np.ones((2, 4), np.float32), r"has shape \[4, 2\]", id="a matrix"),
    pytest.param(np.array([1, 1, 1, 0, 8, 8, 8, 8], np.float32), "holds 0.0", id="zero"),
    pytest.param(np.array([1, 1, 1, 2, 8, 8, 8, -8], np.float32), "holds -8.0", id="negative"),
    pytest.param(np.array([1, 1, 1, 2, 8, 8, 8, np.nan], np.float32), "holds nan", id="nan"),
])
def test_a_malformed_rope_freqs_is_refused(tmp_path, rope_freqs, message):
    path, _, _ = write_llama3_gguf(tmp_path, CASE["seed"], rope_freqs=rope_freqs)
    with pytest.raises(UnsupportedModelError, match=rf"rope_freqs.weight {message}; expected 8 positive floats"):
        load_source(path, get_quantization("gguf"))

