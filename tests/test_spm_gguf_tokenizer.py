"""Phi-3's SentencePiece tokenizer from a GGUF (tokenizer.ggml.model "llama" without an add_space_prefix key, as
llama.cpp's converter writes it: a "▁" goes before the text, and before the text after each special token),
converted into tokenizer.json, tokenizes and detokenizes as transformers' own conversion of the same file does
(tests/fixtures/record_bpe_gguf_tokenizers.py recorded it on a small SentencePiece-style vocabulary with Phi-3's
added tokens, tests/bpe_ggufs.py): leading and trailing spaces, space runs, tabs and newlines (byte fallback, as in
Phi-3's vocabulary), digits, unicode, emoji and CJK (bytes where the vocabulary lacks them), special tokens typed in
text; Phi-3's chat template renders and tokenizes as apply_chat_template. A file that says add_space_prefix false
(Gemma 3's) gets no prefix."""
import json

import pytest
from tokenizers import Tokenizer

from models.tokenizer import build_tokenizer_files, chat_prompt_ids, render_chat_template, token_postproc_method
from tests.bpe_ggufs import PHI3, recorded_tokenizer, write_tokenizer_gguf

RECORDED = recorded_tokenizer("phi3")
TOKENS = RECORDED["gguf"]["tokens"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[dict, dict, Tokenizer]:
    """(tokenizer.json, tokenizer_config.json, the `tokenizers` library's reading of that tokenizer.json)."""
    path = write_tokenizer_gguf(tmp_path_factory.mktemp("phi3") / "phi3.gguf", RECORDED["gguf"], PHI3["architecture"])
    tokenizer_json, config = build_tokenizer_files(path)
    return tokenizer_json, config, Tokenizer.from_str(json.dumps(tokenizer_json))


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda case: repr(case["text"][:24]))
def test_encodes_and_decodes_as_transformers(converted, case):
    _, config, tokenizer = converted
    assert not config["add_bos_token"]
    assert tokenizer.encode(case["text"], add_special_tokens=False).ids == case["ids"]
    assert tokenizer.decode(case["ids"], skip_special_tokens=False) == case["decoded"]


def test_a_space_goes_before_the_text_and_after_each_special_token(converted):
    """What the recorded ids say, spelled out: "Hi" after <|user|>\\n is "▁", <0x0A>, then "Hi" without a space
    (the prefix is the newline's); " leading space" begins with two "▁"; the prefix is stripped when decoding."""
    _, _, tokenizer = converted
    ids = tokenizer.encode("<|user|>\nHi", add_special_tokens=False).ids
    assert [TOKENS[i] for i in ids][:3] == ["<|user|>", "\u2581", "<0x0A>"]
    assert [TOKENS[i] for i in tokenizer.encode(" x", add_special_tokens=False).ids] == ["\u2581", "\u2581x"]
    assert tokenizer.decode(tokenizer.encode("x y", add_special_tokens=False).ids) == "x y"


def test_characters_outside_the_vocabulary_fall_back_to_their_bytes(converted):
    _, _, tokenizer = converted
    assert [TOKENS[i] for i in tokenizer.encode("\U0010fffd", add_special_tokens=False).ids] == [
        "\u2581", "<0xF4>", "<0x8F>", "<0xBF>", "<0xBD>"]


def test_tokenizer_json_is_transformers(converted):
    tokenizer_json, _, _ = converted
    theirs = RECORDED["transformers_tokenizer"]
    assert tokenizer_json["normalizer"] == theirs["normalizer"]  # Prepend("▁"), then spaces as "▁"
    assert tokenizer_json["pre_tokenizer"] is theirs["pre_tokenizer"] is None
    assert tokenizer_json["decoder"] == theirs["decoder"]  # ... then the prefix's space stripped
    assert [{k: t[k] for k in ("id", "content", "special")} for t in tokenizer_json["added_tokens"]] \
        == theirs["added_tokens"]
    assert token_postproc_method(tokenizer_json) == "byte_fallback"
    assert tokenizer_json["post_processor"] is None  # encode adds nothing: the engine adds the BOS where asked


def test_config_has_the_files_special_tokens_and_chat_template(converted):
    _, config, _ = converted
    record, theirs = RECORDED["gguf"], RECORDED["transformers_tokenizer"]
    assert (config["bos_token"], config["eos_token"]) == (theirs["bos_token"], theirs["eos_token"])
    assert config["add_bos_token"] is theirs["add_bos_token"] is record["add_bos_token"]
    assert {key: config[f"{key}_token_id"] for key in record["special_ids"]} == record["special_ids"]
    assert config["chat_template"] == record["chat_template"]


@pytest.mark.parametrize("chat", RECORDED["chats"], ids=["one turn", "system and three turns"])
def test_chat_template_renders_and_tokenizes_as_apply_chat_template(converted, chat):
    _, config, tokenizer = converted
    assert render_chat_template(config, chat["messages"], add_generation_prompt=True) == chat["prompt"]
    assert chat_prompt_ids(tokenizer, config, chat["messages"]) == chat["ids"]


def test_a_file_that_says_add_space_prefix_gets_it_or_not(converted, tmp_path):
    """true: as without the key (llama.cpp's default); false (Gemma 3's files): the text as it is, spaces as "▁"."""
    def tokenizer_json(add_space_prefix: bool) -> dict:
        keys = {**RECORDED["gguf"], "add_space_prefix": add_space_prefix}
        return build_tokenizer_files(write_tokenizer_gguf(tmp_path / f"{add_space_prefix}.gguf", keys, "phi3"))[0]

    assert tokenizer_json(True) == converted[0]
    tokenizer = Tokenizer.from_str(json.dumps(tokenizer_json(False)))
    assert [TOKENS[i] for i in tokenizer.encode("x y", add_special_tokens=False).ids] == ["x", "\u2581y"]
    assert tokenizer.decode(tokenizer.encode(" x", add_special_tokens=False).ids) == " x"
