"""Byte-level BPE tokenizers of Qwen2/2.5/3 (tokenizer.ggml.pre "qwen2") and Llama 3 ("llama-bpe") GGUFs, converted
into tokenizer.json, tokenize and detokenize as transformers' own conversion of the same file does
(tests/fixtures/record_bpe_gguf_tokenizers.py recorded it on small vocabularies trained with each family's
pre-tokenizer, tests/bpe_ggufs.py): spaces, tabs, newline runs, digit runs, contractions, unicode, emoji, CJK,
code, control and user-defined tokens typed in text; the BOS token where the file adds one; the chat template
renders and tokenizes as apply_chat_template."""
import json

import pytest
from tokenizers import Tokenizer

from models.errors import UnsupportedModelError
from models.tokenizer import build_tokenizer_files, chat_prompt_ids, render_chat_template, token_postproc_method
from tests.bpe_ggufs import FAMILIES, recorded_tokenizer, write_tokenizer_gguf

RECORDED = {name: recorded_tokenizer(name) for name in FAMILIES}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, tuple[dict, dict, Tokenizer]]:
    """family -> (tokenizer.json, tokenizer_config.json, the `tokenizers` library's reading of that tokenizer.json)
    for the GGUF of each family's recorded tokenizer."""
    directory = tmp_path_factory.mktemp("bpe-ggufs")
    files = {}
    for name, record in RECORDED.items():
        path = write_tokenizer_gguf(directory / f"{name}.gguf", record["gguf"], FAMILIES[name]["architecture"])
        tokenizer_json, config = build_tokenizer_files(path)
        files[name] = tokenizer_json, config, Tokenizer.from_str(json.dumps(tokenizer_json))
    return files


CASES = [(name, i) for name, record in RECORDED.items() for i in range(len(record["cases"]))]


@pytest.mark.parametrize(("family", "index"), CASES,
                         ids=[f"{name}-{RECORDED[name]['cases'][i]['text'][:20]}" for name, i in CASES])
def test_encodes_and_decodes_as_transformers(converted, family, index):
    case = RECORDED[family]["cases"][index]
    _, config, tokenizer = converted[family]
    ids = tokenizer.encode(case["text"], add_special_tokens=False).ids
    bos = [config["bos_token_id"]] if config["add_bos_token"] else []  # the BOS token is the engine's to add
    assert bos + ids == case["ids"]
    assert tokenizer.decode(case["ids"], skip_special_tokens=False) == case["decoded"]


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenizer_json_is_transformers(converted, family):
    tokenizer_json, _, _ = converted[family]
    theirs = RECORDED[family]["transformers_tokenizer"]
    assert tokenizer_json["pre_tokenizer"] == theirs["pre_tokenizer"]  # Split by the family's regex + ByteLevel
    assert tokenizer_json["decoder"] == theirs["decoder"]
    assert [{k: t[k] for k in ("id", "content", "special")} for t in tokenizer_json["added_tokens"]] \
        == theirs["added_tokens"]
    assert token_postproc_method(tokenizer_json) == "byte_level"
    assert tokenizer_json["post_processor"]["type"] == "ByteLevel"  # encode adds no BOS: the engine does


def test_llama3_splits_digits_in_threes_and_qwen_one_by_one(converted):
    pieces = {name: [piece for piece, _ in converted[name][2].pre_tokenizer.pre_tokenize_str("x 12345")]
              for name in FAMILIES}
    assert pieces == {"llama3": ["x", "Ġ", "123", "45"], "qwen2": ["x", "Ġ", "1", "2", "3", "4", "5"]}


@pytest.mark.parametrize("family", FAMILIES)
def test_config_has_the_files_special_tokens_bos_and_chat_template(converted, family):
    _, config, _ = converted[family]
    record, theirs = RECORDED[family]["gguf"], RECORDED[family]["transformers_tokenizer"]
    assert (config["bos_token"], config["eos_token"]) == (theirs["bos_token"], theirs["eos_token"])
    assert config["add_bos_token"] is theirs["add_bos_token"] is record["add_bos_token"]
    assert {key: config[f"{key}_token_id"] for key in record["special_ids"]} == record["special_ids"]
    assert config["chat_template"] == record["chat_template"]


CHATS = [(name, i) for name, record in RECORDED.items() for i in range(len(record["chats"]))]


@pytest.mark.parametrize(("family", "index"), CHATS, ids=[f"{name}-{i}" for name, i in CHATS])
def test_chat_template_renders_and_tokenizes_as_apply_chat_template(converted, family, index):
    chat = RECORDED[family]["chats"][index]
    _, config, tokenizer = converted[family]
    assert render_chat_template(config, chat["messages"], add_generation_prompt=True) == chat["prompt"]
    assert chat_prompt_ids(tokenizer, config, chat["messages"]) == chat["ids"]


@pytest.mark.parametrize("pre", ["deepseek-llm", "gpt-2", "default"])
def test_other_pre_tokenizers_are_refused(tmp_path, pre):
    path = write_tokenizer_gguf(tmp_path / "other.gguf", {**RECORDED["qwen2"]["gguf"], "pre": pre}, "qwen2")
    with pytest.raises(UnsupportedModelError,
                       match=f"tokenizer 'gpt2' with pre-tokenizer '{pre}' is not supported .*'qwen2', 'llama-bpe'"):
        build_tokenizer_files(path)
