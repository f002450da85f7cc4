"""tokenizer.json + tokenizer_config.json built from the GGUF metadata, read back with the `tokenizers` library,
and the chat template rendered as transformers would."""
import json

import pytest

from models.errors import ModelError, UnsupportedModelError
from models.tokenizer import build_tokenizer_files, render_chat_template

ROUND_TRIP_TEXTS = [
    "Hello, world!",
    "The year 2024 had 366 days; π ≈ 3.14159 and 1,000,000 dollars.",
    "  leading spaces\tand tabs\n\nnewlines   trailing  ",
    "Unicode: naïve café, Привет мир, 日本語のテキスト, العربية, zero\u200bwidth, \u00a0nbsp",
    "emoji 🤖🚀👍🏽 and a family 👨‍👩‍👧 and flags 🇫🇷",
    "def f(x):\n    return {'y': x ** 2}  # code\n\tif x != 0: pass\n",
    "Windows line\r\nendings\r\n\r\nand a lone \r carriage return",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><repo_name>tabllm<file_sep>README.md",
    "don't I'll we've they're it's",
]


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip(smollm2_tokenizer, text):
    ids = smollm2_tokenizer.encode(text, add_special_tokens=False).ids
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=False) == text


def test_special_tokens_are_single_ids(smollm2_tokenizer):
    ids = smollm2_tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n", add_special_tokens=False).ids
    assert ids[0] == 1 and ids[-2:] == [2, 198]
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=True) == "user\nHi\n"
    assert [smollm2_tokenizer.token_to_id(t) for t in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]] == [0, 1, 2]


def test_digits_are_split_one_by_one(smollm2_tokenizer):
    assert smollm2_tokenizer.encode("In 2024", add_special_tokens=False).tokens == ["In", "Ġ", "2", "0", "2", "4"]


def test_no_special_tokens_are_added_by_encode(smollm2_tokenizer):
    assert smollm2_tokenizer.encode("hi").ids == smollm2_tokenizer.encode("hi", add_special_tokens=False).ids


def test_tokenizer_json_layout(smollm2_tokenizer_dir, smollm2_tokenizer):
    tokenizer_json = json.loads((smollm2_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    merges = tokenizer_json["model"]["merges"]
    assert len(merges) == 48900 and merges[0] == "Ġ t"
    assert all(isinstance(m, str) and len(m.split(" ")) == 2 for m in merges)  # legacy form: WebLLM's web-tokenizers
    added = tokenizer_json["added_tokens"]
    assert len(added) == 17 and all(t["special"] for t in added) and added[2]["content"] == "<|im_end|>"
    assert smollm2_tokenizer.get_vocab_size() == 49152


def test_tokenizer_config(smollm2_tokenizer_config):
    config = {k: v for k, v in smollm2_tokenizer_config.items() if k != "chat_template"}
    assert config == {
        "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False, "model_max_length": 8192,
        "bos_token": "<|im_start|>", "bos_token_id": 1, "eos_token": "<|im_end|>", "eos_token_id": 2,
        "pad_token": "<|im_end|>", "pad_token_id": 2, "unk_token": "<|endoftext|>", "unk_token_id": 0,
    }


DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"


def test_chat_template_renders_a_multi_turn_conversation(smollm2_tokenizer_config):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert render_chat_template(smollm2_tokenizer_config, messages, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_chat_template_adds_the_default_system_prompt(smollm2_tokenizer_config):
    messages = [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}]
    assert render_chat_template(smollm2_tokenizer_config, messages, add_generation_prompt=False) == (
        DEFAULT_SYSTEM + "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"
    )


def test_chat_template_is_required_to_render(smollm2_tokenizer_config):
    config = {**smollm2_tokenizer_config, "chat_template": None}
    with pytest.raises(ModelError, match="no chat template"):
        render_chat_template(config, [{"role": "user", "content": "Hi!"}], add_generation_prompt=True)


def test_unsupported_tokenizer_is_refused(tiny_llama_gguf):
    """WordPiece (llama.cpp's "bert")."""
    path, _, _ = tiny_llama_gguf(tokenizer_model="bert")
    with pytest.raises(UnsupportedModelError, match="tokenizer 'bert' with pre-tokenizer 'default' is not supported"):
        build_tokenizer_files(path)
