"""python -m compile end to end on the real model: the bundle it writes verifies, covers every parameter the
library asks for, holds the right weights, and an interrupted compile leaves no bundle."""
import json
import subprocess
import sys

import numpy as np
import pytest

from compile.build import build, export_model, native_cpu_target
from compile.bundle import SHARD_CAP_BYTES, read_params, verify_bundle
from compile.options import CompileOptions
from compile.native import NativeModel
from compile.pipeline import STAGES, compile_bundle, gguf_turn_end_ids
from compile.quantization import QuantizedParams, get_quantization
from compile.toolchain import webgpu_target
from compile.weights import decoder_params
from tests.bpe_ggufs import recorded_tokenizer, write_tokenizer_gguf

MODEL = "smollm2-135m-instruct"


def test_bundle_files_verify_and_stages_are_timed(default_compile):
    bundle = verify_bundle(default_compile.bundle.path)
    names = {f["path"] for f in bundle.manifest["files"]}
    assert {"mlc-chat-config.json", "tensor-cache.json", "tokenizer.json", "tokenizer_config.json",
            f"{MODEL}-gguf-webgpu.wasm", f"{MODEL}-gguf-wasm32.wasm", f"{MODEL}-gguf-wasm32-relaxed.wasm"} <= names
    assert bundle.manifest["build"]["quantization"] == "gguf"
    # SmolLM2's GGUF: Q4_1 matrices (fused q/k/v and gate/up: 4 per layer), a Q8_0 embedding
    assert bundle.manifest["build"]["weight_formats"] == {"q4g32": 120, "q8g32z128": 1}
    assert set(bundle.manifest["build"]["targets"]) == {"webgpu", "wasm32", "wasm32-relaxed"}
    assert "+simd128" in bundle.manifest["build"]["targets"]["wasm32"]
    assert "+relaxed-simd" not in bundle.manifest["build"]["targets"]["wasm32"]
    assert "+relaxed-simd" in bundle.manifest["build"]["targets"]["wasm32-relaxed"]
    assert bundle.manifest["build"]["apache-tvm"] == "0.27.0.post1"
    assert set(default_compile.stage_seconds) == set(STAGES)


@pytest.mark.parametrize("device", ["webgpu", "wasm32", "wasm32-relaxed"])
def test_libraries_are_wasm_modules(default_compile, device):
    assert (default_compile.bundle.path / f"{MODEL}-gguf-{device}.wasm").read_bytes()[:4] == b"\0asm"


@pytest.fixture(scope="module")
def quantized(smollm2_config, smollm2_blocks) -> QuantizedParams:
    """What the default compile quantizes SmolLM2's GGUF into: its own blocks, packed."""
    return get_quantization("gguf").quantize(decoder_params(smollm2_config, smollm2_blocks))


def test_tensor_cache_covers_every_parameter_of_the_library(default_compile, smollm2_config, quantized):
    metadata = export_model(smollm2_config, CompileOptions(), "gguf", quantized.formats, webgpu_target()).metadata
    cache = json.loads((default_compile.bundle.path / "tensor-cache.json").read_text())
    records = {r["name"]: (r["shape"], r["dtype"]) for shard in cache["records"] for r in shard["records"]}
    assert records == {p["name"]: (p["shape"], p["dtype"]) for p in metadata["params"]}
    for shard in cache["records"]:
        assert shard["nbytes"] <= SHARD_CAP_BYTES or len(shard["records"]) == 1


def test_chat_config_describes_the_model(default_compile, smollm2_config):
    chat = json.loads((default_compile.bundle.path / "mlc-chat-config.json").read_text())
    assert chat["model_type"] == "llama" and chat["quantization"] == "gguf"
    assert chat["weight_formats"] == {"q4g32": 120, "q8g32z128": 1}
    assert chat["context_window_size"] == 4096 and chat["prefill_chunk_size"] == 1024
    assert chat["vocab_size"] == smollm2_config.vocab_size
    # <|im_end|>, and <|endoftext|>, which llama.cpp also ends a generation at (compile.pipeline.END_OF_TURN_TEXTS)
    assert chat["conv_template"]["name"] == "chatml" and chat["eos_token_id"] == [2, 0]


def test_bundle_weights_drive_the_native_build_to_the_same_logits(default_compile, smollm2_config, quantized,
                                                                   smollm2_greedy_case):
    exported = export_model(smollm2_config, CompileOptions(), "gguf", quantized.formats, native_cpu_target())
    executable = build(exported)
    direct = dict(quantized.arrays)
    from_bundle = read_params(default_compile.bundle.path)
    assert from_bundle.keys() == direct.keys()
    for name, array in direct.items():
        np.testing.assert_array_equal(from_bundle[name], array, err_msg=name)
    model = NativeModel(executable, from_bundle)
    prompt = smollm2_greedy_case["prompt_ids"]
    assert model.generate_greedy(prompt, 8, smollm2_greedy_case["stop_ids"]) == smollm2_greedy_case["greedy_ids"]


def test_interrupted_compile_leaves_no_bundle(tmp_path):
    def interrupt_while_writing(message: str):
        if " MB (" in message:  # the first progress line of the write stage
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compile_bundle(MODEL, output=tmp_path / "bundle", opt_level="fast", report=interrupt_while_writing)
    assert list(tmp_path.iterdir()) == []


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "compile", *args], capture_output=True, text=True, timeout=120)


def test_cli_help_explains_the_options():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--quantization", "--output", "--context-window", "--opt-level", "--gguf", "q0f32", "--libraries"):
        assert option in result.stdout


def test_cli_unknown_model_is_one_clear_line(tmp_path):
    result = run_cli("no-such-model", "--output", str(tmp_path / "b"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-such-model" in errors[0] and MODEL in errors[0]
    assert not (tmp_path / "b").exists()


def test_cli_rejects_a_chunk_larger_than_the_context(tmp_path):
    result = run_cli(MODEL, "--context-window", "256", "--prefill-chunk", "512", "--output", str(tmp_path / "b"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "prefill chunk size 512" in result.stderr


def test_cli_rejects_an_unknown_library_before_building(tmp_path):
    result = run_cli(MODEL, "--libraries", "wasm32,tpu", "--output", str(tmp_path / "b"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "libraries must be some of webgpu, wasm32, wasm32-relaxed (got wasm32, tpu)" in result.stderr
    assert not (tmp_path / "b").exists()


def test_a_gguf_that_names_no_end_of_turn_token_ends_turns_where_llama_cpp_does(tmp_path):
    """llama.cpp's converter writes Phi-3's tokenizer without an end-of-turn key; its turns end with <|end|>, which
    llama.cpp recognises by its text, as it does <|endoftext|> (the file's eos)."""
    tokenizer = recorded_tokenizer("phi3")["gguf"]
    path = write_tokenizer_gguf(tmp_path / "phi3.gguf", tokenizer, "phi3")
    assert [tokenizer["tokens"][i] for i in gguf_turn_end_ids(path)] == ["<|endoftext|>", "<|end|>"]
    named = dict(tokenizer, special_ids=dict(tokenizer["special_ids"], eot=tokenizer["tokens"].index("<|end|>")))
    path = write_tokenizer_gguf(tmp_path / "phi3-eot.gguf", named, "phi3")
    assert [tokenizer["tokens"][i] for i in gguf_turn_end_ids(path)] == ["<|end|>", "<|endoftext|>"]
