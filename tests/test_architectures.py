"""Every architecture against transformers: a tiny seeded checkpoint of each (tests/tiny_checkpoints.py), read as
`python -m compile DIR` reads it and built for this CPU in float32 (q0f32), gives transformers' greedy ids exactly
and its logits within 1e-4 (recorded by tests/fixtures/record_transformers.py), with the prompt prefilled in chunks
over several KV pages. Also: the prompt is tokenized as transformers does, a quantized build with biases computes
what its quantized weights say, and `python -m compile DIR` writes a bundle."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import Tokenizer
from tvm.relax.frontend.nn.llm.kv_cache import RopeMode

from compile.build import native_cpu_target
from compile.bundle import verify_bundle
from compile.layers import CausalLM, sliding_window
from compile.llama.merge_state import merge_state_inplace
from compile.llama.soft_cap import soft_capped
from compile.native import build_native_model
from compile.options import CompileOptions
from compile.pipeline import compile_bundle, load_hf_source
from compile.toolchain.targets import webgpu_target
from models.errors import UnsupportedModelError
from models.quantization import round_trip
from models.tokenizer import chat_prompt_ids, hf_tokenizer_files
from tests.teacher_forced import LOGITS_ATOL, assert_gives_recorded_logits
from tests.tiny_checkpoints import CHECKPOINTS, recorded, write_checkpoint

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)  # the 89-token prompt: 6 chunks, 6 pages


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Factory: the checkpoint `name` as the recording saw it, written once per module."""
    written = {}

    def get(name: str):
        if name not in written:
            written[name] = write_checkpoint(name, tmp_path_factory.mktemp(name), recorded(name)["seed"])
        return written[name]

    return get


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_the_prompt_is_tokenized_as_transformers_does(name, checkpoints):
    case = recorded(name)
    tokenizer_json, tokenizer_config = hf_tokenizer_files(checkpoints(name))
    tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
    assert chat_prompt_ids(tokenizer, tokenizer_config, case["messages"]) == case["prompt_ids"]
    assert tokenizer_config["eos_token_id"] == tokenizer.token_to_id("<|im_end|>")


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_native_float32_build_gives_transformers_greedy_ids_and_logits(name, checkpoints):
    case = recorded(name)
    config, weights = load_hf_source(checkpoints(name))
    model = build_native_model(config, weights, "q0f32", OPTIONS)
    prompt, greedy = case["prompt_ids"], case["greedy_ids"]
    assert len(prompt) > 4 * OPTIONS.prefill_chunk_size
    assert_gives_recorded_logits(model, case, name)
    # Free-running greedy decoding gives the same tokens.
    assert model.generate_greedy(prompt, len(greedy)) == greedy


def test_a_quantized_build_with_biases_computes_its_quantized_weights(checkpoints):
    """Qwen2's q/k/v biases stay float32 beside the 4-bit matrix; the kernels apply both."""
    config, weights = load_hf_source(checkpoints("qwen2"))
    assert config.attention_bias
    prompt = recorded("qwen2")["prompt_ids"][:40]
    quantized = build_native_model(config, weights, "q4f32_asym", OPTIONS).prefill(prompt)
    expected = build_native_model(config, round_trip(weights, "q4f32_asym"), "q0f32", OPTIONS).prefill(prompt)
    np.testing.assert_allclose(quantized, expected, rtol=0, atol=LOGITS_ATOL)


def test_config_features_the_layers_do_not_compute_are_refused(checkpoints, tmp_path):
    directory = write_checkpoint("qwen2", tmp_path / "qwen2-sliding")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "use_sliding_window": True, "sliding_window": 32}))
    with pytest.raises(UnsupportedModelError, match="sliding-window attention"):
        load_hf_source(directory)
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "gpt_neox"}))
    with pytest.raises(UnsupportedModelError, match="model_type 'gpt_neox' is not supported.*qwen3"):
        load_hf_source(directory)


@pytest.mark.parametrize("name", ["gemma3", "mistral", "phi3"])
def test_sliding_layers_attend_only_to_their_window(name, checkpoints):
    """The fixture's context (89 + 23 tokens) is longer than the window (32 or 48: Gemma 3's sliding layers, every
    layer of Mistral and Phi-3), so transformers' logits depend on it: the same model with a window holding the
    whole context (Gemma's sliding layers then attend to everything, with their own RoPE base still) is far from
    them, while the compiled one is within 1e-4 (the test above)."""
    case = recorded(name)
    config, weights = load_hf_source(checkpoints(name))
    assert config.sliding_window < len(case["prompt_ids"])
    unwindowed = dataclasses.replace(config, sliding_window=OPTIONS.context_window_size)
    logits = build_native_model(unwindowed, weights, "q0f32", OPTIONS).prefill(case["prompt_ids"])
    assert np.max(np.abs(logits - np.array(case["logits"]["0"]))) > 100 * LOGITS_ATOL


def test_the_gemma2_fixture_depends_on_its_soft_caps(checkpoints):
    """The fixture depends on both soft caps (5.0 each): transformers without the attention scores' cap (which only
    the CPU kernels apply) gives logits 0.22 off and other greedy ids, without the final one 0.13 off (measured when
    recording it), so the 1e-4 above holds only where both are computed. The final cap bends the logits (within
    3.2 of 0) far beyond the tolerance."""
    case = recorded("gemma2")
    config, _ = load_hf_source(checkpoints("gemma2"))
    assert config.attn_logit_softcapping == config.final_logit_softcapping == 5.0
    assert config.layer_types == ("sliding_attention", "full_attention") * 2 and config.sliding_window == 32
    cap, capped = config.final_logit_softcapping, np.array(case["logits"]["0"])
    assert np.max(np.abs(cap * np.arctanh(capped / cap) - capped)) > 100 * LOGITS_ATOL


@pytest.mark.parametrize("name", ["gemma3", "mistral"])
def test_prefill_chunks_must_fit_in_the_window(name, checkpoints):
    """The model itself refuses; compile_bundle lowers the chunk first (the test below)."""
    config, weights = load_hf_source(checkpoints(name))
    with pytest.raises(UnsupportedModelError, match="prefill chunk of 64 tokens is longer than the sliding window "
                                                    r"\(32\).*at most 32 tokens"):
        build_native_model(config, weights, "q0f32", CompileOptions(context_window_size=256, prefill_chunk_size=64))


def test_a_window_that_holds_the_whole_context_changes_nothing(checkpoints):
    """Mistral's window as long as the context window: the layers attend as global ones, and the cache applies RoPE,
    as for Llama (prefill chunks longer than the window are fine)."""
    config, _ = load_hf_source(checkpoints("mistral"))
    wide = dataclasses.replace(config, sliding_window=OPTIONS.context_window_size)
    options = CompileOptions(context_window_size=OPTIONS.context_window_size, prefill_chunk_size=64)
    assert sliding_window(wide, options) is None and sliding_window(config, options) == 32
    module = CausalLM(wide, options, native_cpu_target())
    assert module.kv_cache_attention() == {"attn_kind": "mha", "rope_mode": RopeMode.NORMAL}


def test_compile_bundle_fits_the_prefill_chunk_to_the_sliding_window(checkpoints, tmp_path):
    messages = []
    bundle = compile_bundle(str(checkpoints("gemma3")), output=tmp_path / "bundle", opt_level="fast",
                            options=CompileOptions(context_window_size=256, prefill_chunk_size=64),
                            libraries=("wasm32",), report=messages.append).bundle
    chat = json.loads((bundle.path / "mlc-chat-config.json").read_text())
    assert chat["prefill_chunk_size"] == 32 and chat["context_window_size"] == 256
    assert any("prefill chunk: 64 -> 32 tokens" in message for message in messages)


def test_gemma3_features_it_does_not_compute_are_refused(tmp_path):
    directory = write_checkpoint("gemma3", tmp_path / "gemma3")
    config = json.loads((directory / "config.json").read_text())
    for change, message in [({"use_bidirectional_attention": True}, "bidirectional attention"),
                            ({"hidden_activation": "silu"}, "activation 'silu'"),
                            ({"rope_parameters": {**config["rope_parameters"],
                                                  "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                                     "rope_theta": 1e6}}},
                             "global RoPE scaling 'linear'")]:
        (directory / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(UnsupportedModelError, match=message):
            load_hf_source(directory)


def test_phi3_longrope_within_its_original_context_rotates_by_the_short_factors(checkpoints):
    """test_native_float32_build_gives_transformers_greedy_ids_and_logits[phi3] compiles a context window past
    LongRoPE's original context (64 tokens): the long factors, as transformers takes for the 89-token prompt (its
    logits are 4 apart with the short ones). Compiled for a window within it, the short factors: transformers'
    choice for a sequence that fits it."""
    case = recorded("phi3")["within_original_context"]
    config, weights = load_hf_source(checkpoints("phi3"))
    assert config.rope_scaling["original_max_position_embeddings"] == case["context_window"]
    options = CompileOptions(context_window_size=case["context_window"], prefill_chunk_size=16)
    model = build_native_model(config, weights, "q0f32", options)
    prompt, greedy = case["prompt_ids"], case["greedy_ids"]
    assert len(prompt) + len(greedy) == options.context_window_size
    error = float(np.max(np.abs(model.prefill(prompt) - np.array(case["logits"]))))
    print(f"phi3 within the original context: max |logit - transformers'| {error:.1e}")
    assert error < LOGITS_ATOL
    assert model.generate_greedy(prompt, len(greedy)) == greedy


def test_phi3_without_rope_scaling_reads_and_what_it_does_not_compute_is_refused(tmp_path):
    directory = write_checkpoint("phi3", tmp_path / "phi3")
    config = json.loads((directory / "config.json").read_text())
    # the 4k models: no RoPE scaling (the cache's RoPE, as Llama's)
    (directory / "config.json").write_text(json.dumps({**config, "rope_scaling": None}))
    assert load_hf_source(directory)[0].rope_scaling is None
    for change, message in [({"partial_rotary_factor": 0.75}, "partial rotary embedding.*Phi-4-mini"),
                            ({"rope_scaling": {**config["rope_scaling"], "type": "yarn"}}, "RoPE scaling 'yarn'"),
                            ({"rope_scaling": {**config["rope_scaling"], "attention_factor": 1.2}},
                             "LongRoPE attention_factor"),
                            ({"rope_scaling": {**config["rope_scaling"], "long_factor": [1.0] * 4}},
                             "4 LongRoPE long_factors for a head of 16")]:
        (directory / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(UnsupportedModelError, match=message):
            load_hf_source(directory)


def test_cli_compiles_a_checkpoint_directory(tmp_path):
    directory = write_checkpoint("qwen3", tmp_path / "Tiny-Qwen3")
    output = tmp_path / "bundle"
    result = subprocess.run([sys.executable, "-m", "compile", str(directory), "--output", str(output),
                             "--opt-level", "fast", "--context-window", "256", "--prefill-chunk", "32"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    bundle = verify_bundle(output)
    chat = json.loads((output / "mlc-chat-config.json").read_text())
    assert chat["model_type"] == "qwen3" and chat["quantization"] == "q4f32_1"  # the default for float weights
    assert chat["model_config"]["head_dim"] == 32 and chat["bos_token_id"] is None
    assert chat["conv_template"]["system_message"] == "You are a tiny test model."
    # the tokenizer's eos (<|im_end|>), then generation_config.json's other one (<|endoftext|>)
    assert chat["eos_token_id"] == chat["conv_template"]["stop_token_ids"] == [258, 256]
    names = {f["path"] for f in bundle.manifest["files"]}
    assert {"tiny-qwen3-q4f32_1-webgpu.wasm", "tiny-qwen3-q4f32_1-wasm32.wasm", "tokenizer.json"} <= names
    config = json.loads((output / "tokenizer_config.json").read_text())
    assert config["chat_template"] == (directory / "chat_template.jinja").read_text()


def test_a_gpu_attention_kernel_without_a_known_score_store_is_refused():
    """TVM's merge kernel stores no scores: a TVM whose attention kernels changed stops the compile, rather than
    building a WebGPU library without the model's soft cap."""
    kernel = merge_state_inplace(4, 64, "float32", webgpu_target())
    with pytest.raises(RuntimeError, match="tabllm's soft cap cannot be put into it"):
        soft_capped(kernel, "tir_attention_merge_state", 50.0)
