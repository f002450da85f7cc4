"""Qwen's and Llama 3's byte-level BPE tokenizers and Phi-3's SentencePiece one from a GGUF, end to end: a tiny Qwen2
GGUF carrying each family's recorded tokenizer (tests/bpe_ggufs.py; the tokenizer is read from the tokenizer.* keys
whatever the architecture) compiled by `python -m compile FILE.gguf`'s pipeline, served by the real server and loaded
by the engine on the CPU (wasm32) in Chromium, whose tokenizer gives transformers' ids for every recorded text (the
BOS token first where the file adds one) and for every recorded chat prompt
(tests/fixtures/record_bpe_gguf_tokenizers.py)."""
import json

import pytest

from compile.options import CompileOptions
from compile.pipeline import compile_bundle
from harness.browser import open_engine_page
from tests.bpe_ggufs import FAMILIES, PHI3, recorded_tokenizer
from tests.tiny_ggufs import write_qwen_gguf

TOKENIZER_FAMILIES = {**FAMILIES, "phi3": PHI3}
RECORDED = {name: recorded_tokenizer(name) for name in TOKENIZER_FAMILIES}
OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


@pytest.fixture(scope="module")
def bpe_gguf_site(serve_site, tmp_path_factory):
    """(base URL, {family: bundle}): each family's tiny GGUF compiled in float32 with the wasm32 library only
    (about 10 s each) and served."""
    bundles = tmp_path_factory.mktemp("bpe-gguf-bundles")
    built = {}
    for name, record in RECORDED.items():
        gguf, _, _ = write_qwen_gguf("qwen2", tmp_path_factory.mktemp(name), 0, tokenizer=record["gguf"])
        built[name] = compile_bundle(str(gguf), quantization="q0f32", output=bundles / f"tiny-{name}-q0f32",
                                     options=OPTIONS, opt_level="fast", libraries=("wasm32",),
                                     report=lambda message: None).bundle
    url, _ = serve_site(bundles)
    return url, built


# The file's eos, then the tokens llama.cpp also ends a generation at by their text (Phi-3's file names no
# end-of-turn token; its turns end with <|end|>)
STOPS = {"qwen2": ["<|im_end|>", "<|endoftext|>"], "llama3": ["<|eot_id|>"], "phi3": ["<|endoftext|>", "<|end|>"]}


def test_the_bundles_stop_at_the_files_end_of_turn_tokens(bpe_gguf_site):
    _, bundles = bpe_gguf_site
    assert bundles.keys() == STOPS.keys()
    for name, bundle in bundles.items():
        chat_config = json.loads((bundle.path / "mlc-chat-config.json").read_text(encoding="utf-8"))
        tokens, special = RECORDED[name]["gguf"]["tokens"], RECORDED[name]["gguf"]["special_ids"]
        assert TOKENIZER_FAMILIES[name]["special"]["eos"] == STOPS[name][0]
        assert [tokens[i] for i in chat_config["eos_token_id"]] == STOPS[name]
        assert chat_config["bos_token_id"] == special["bos"] and chat_config["vocab_size"] == len(tokens)
        assert (chat_config["conv_template"] is not None) == (name == "qwen2")  # ChatML's only


def test_the_engine_tokenizes_texts_and_chats_as_transformers(no_webgpu_browser, bpe_gguf_site):
    url, bundles = bpe_gguf_site
    context = no_webgpu_browser.new_context()
    try:
        page = open_engine_page(context, url)
        for name, bundle in bundles.items():
            record = RECORDED[name]
            got = page.evaluate("""async ([url, texts, chats]) => {
                await window.engine.load(url, {device: "wasm"});
                const ids = {texts: [], chats: []};
                for (const text of texts) ids.texts.push(await window.engine.promptIds(text));
                for (const messages of chats) ids.chats.push(await window.engine.promptIds(messages));
                return ids;
            }""", [f"/bundles/{bundle.bundle_id}/", [case["text"] for case in record["cases"]],
                   [chat["messages"] for chat in record["chats"]]])
            assert got["texts"] == [case["ids"] for case in record["cases"]], name
            assert got["chats"] == [chat["ids"] for chat in record["chats"]], name
    finally:
        context.close()
