"""Gemma 3 270M's SentencePiece tokenizer, converted from its GGUF into tokenizer.json, tokenizes and detokenizes
as transformers' own conversion of the same file does (tests/fixtures/record_gemma3_tokenizer.py recorded it):
spaces, newlines, tabs, digits, unicode, characters outside the vocabulary (byte fallback) and control tokens; and
a Gemma-style turn template renders and tokenizes as transformers' apply_chat_template."""
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from models.fetch import fetch_gguf
from models.registry import get_model
from models.tokenizer import build_tokenizer_files, chat_prompt_ids, render_chat_template, token_postproc_method

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "gemma3_270m_tokenizer.json").read_text(encoding="utf-8"))
BYTE_TOKENS = range(238, 238 + 256)  # <0x00> .. <0xFF>


@pytest.fixture(scope="module")
def gemma3_tokenizer_files() -> tuple[dict, dict]:
    return build_tokenizer_files(fetch_gguf(get_model("gemma3-270m")))


@pytest.fixture(scope="module")
def gemma3_tokenizer(gemma3_tokenizer_files) -> Tokenizer:
    return Tokenizer.from_str(json.dumps(gemma3_tokenizer_files[0]))


@pytest.mark.parametrize("case", RECORDED["cases"], ids=lambda case: case["text"][:24])
def test_encodes_and_decodes_as_transformers(gemma3_tokenizer, gemma3_tokenizer_files, case):
    config = gemma3_tokenizer_files[1]
    ids = gemma3_tokenizer.encode(case["text"], add_special_tokens=False).ids
    assert [config["bos_token_id"], *ids] == case["ids"]  # the BOS token is the engine's to add (add_bos_token)
    assert gemma3_tokenizer.decode(ids, skip_special_tokens=False) == case["decoded"] == case["text"]


def test_characters_outside_the_vocabulary_fall_back_to_their_bytes(gemma3_tokenizer):
    text = next(case["text"] for case in RECORDED["cases"] if "\U0010fffd" in case["text"])
    ids = gemma3_tokenizer.encode(text, add_special_tokens=False).ids
    assert [gemma3_tokenizer.id_to_token(i) for i in ids if i in BYTE_TOKENS][-4:] == ["<0xF4>", "<0x8F>", "<0xBF>",
                                                                                      "<0xBD>"]


def test_config_says_bos_first_and_has_no_chat_template(gemma3_tokenizer_files):
    tokenizer_json, config = gemma3_tokenizer_files
    assert (config["add_bos_token"], config["bos_token"], config["bos_token_id"]) == (True, "<bos>", 2)
    assert (config["eos_token"], config["eos_token_id"], config["chat_template"]) == ("<eos>", 1, None)
    assert token_postproc_method(tokenizer_json) == "byte_fallback"
    assert tokenizer_json["post_processor"] is None  # encode adds nothing: a chat template writes <bos> itself


@pytest.mark.parametrize("chat", RECORDED["chats"], ids=["one turn", "system and three turns"])
def test_a_turn_template_renders_and_tokenizes_as_apply_chat_template(gemma3_tokenizer, gemma3_tokenizer_files, chat):
    config = dict(gemma3_tokenizer_files[1], chat_template=RECORDED["chat_template"])
    assert render_chat_template(config, chat["messages"], add_generation_prompt=True) == chat["prompt"]
    assert chat_prompt_ids(gemma3_tokenizer, config, chat["messages"]) == chat["ids"]
