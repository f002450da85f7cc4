"""A model of half a billion parameters in the tab: Qwen2.5-0.5B's shape with random weights (models/synthetic.py,
one GGUF; the bundle compiled from its blocks), served by the real server and loaded in Chromium by the engine on
the CPU library. Its greedy answer to a short prompt is the numpy reference's, computed from the same GGUF
dequantized by the gguf package (not by tabllm's block reader), token for token."""
import json

from tokenizers import Tokenizer

from e2e.test_bundle_fidelity import MIN_MARGIN, reference_greedy
from harness.browser import open_engine_page
from models.llama import read_llama
from models.reference import NumpyLlama
from models.synthetic import SIZES
from models.tokenizer import chat_prompt_ids

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
STEPS = 8


def test_a_half_billion_parameter_model_answers_as_the_reference(webgpu_browser, serve_site,
                                                                 synthetic_half_billion):
    gguf, bundle = synthetic_half_billion
    assert SIZES["0.5b"].parameters >= 0.49e9
    assert [f["path"] for f in bundle.manifest["files"] if f["path"].endswith(".wasm")] == [
        "synthetic-0.5b-gguf-wasm32-relaxed.wasm"]  # compile's --libraries: only the library named
    tokenizer = Tokenizer.from_file(str(bundle.path / "tokenizer.json"))
    tokenizer_config = json.loads((bundle.path / "tokenizer_config.json").read_text(encoding="utf-8"))
    prompt_ids = chat_prompt_ids(tokenizer, tokenizer_config, MESSAGES)
    want, margin = reference_greedy(NumpyLlama(*read_llama(gguf, keep_blocks=False)), prompt_ids, STEPS)
    assert margin > MIN_MARGIN, f"reference margin {margin:.3f} is too small to compare tokens"
    assert tokenizer_config["eos_token_id"] not in want  # the answer runs all STEPS tokens

    url, _ = serve_site(bundle.path.parent)
    context = webgpu_browser.new_context()
    try:
        page = open_engine_page(context, url)
        info = page.evaluate("(url) => window.engine.load(url, {device: 'wasm'})", f"/bundles/{bundle.bundle_id}/")
        assert (info["library"], info["vocabSize"]) == ("wasm32-relaxed", SIZES["0.5b"].vocab)
        assert page.evaluate("(m) => window.engine.promptIds(m)", MESSAGES) == prompt_ids
        completion = page.evaluate("(m) => window.engine.chat.completions.create({messages: m, temperature: 0, "
                                   f"max_tokens: {STEPS}}})", MESSAGES)
    finally:
        context.close()
    extra = completion["usage"]["extra"]
    print(f"\n0.5B on the CPU: loaded in {info['loadTimeS']:.1f} s, time to first token "
          f"{extra['time_to_first_token_s']:.2f} s, decode {extra['decode_tokens_per_s']:.1f} tok/s "
          f"(reference margin >= {margin:.3f})")
    assert completion["choices"][0]["message"]["content"] == tokenizer.decode(want)
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == STEPS
