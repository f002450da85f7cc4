"""The engine's tokenizer (web/src/engine/bundle-tokenizer.js: Hugging Face's tokenizers.js, under Node) gives the
Rust `tokenizers` library's ids, texts and token strings for the tokenizer.json of each kind the compiler writes:
SmolLM2's and the small Qwen2 and Llama 3 byte-level BPE vocabularies (tests/bpe_ggufs.py), Phi-3's SentencePiece
BPE with byte fallback, and Gemma 3's real 262k one. The texts: every recorded tokenizer case of every family
(spaces, tabs, newline runs, digits, contractions, unicode, emoji, CJK, code, special tokens typed in text) and a
long paragraph, each encoded with special tokens read as such and as plain text, decoded (every prefix of its ids)
and streamed token by token through the engine's detokenizer."""
import json
import subprocess
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from models.fetch import fetch_gguf
from models.registry import get_model
from models.tokenizer import build_tokenizer_files, token_postproc_method
from tests.bpe_ggufs import FAMILIES, PHI3, recorded_tokenizer, write_tokenizer_gguf

WEB = Path(__file__).resolve().parents[1] / "web"
GGUF_FAMILIES = {**FAMILIES, "phi3": PHI3}
RECORDED = {name: recorded_tokenizer(name) for name in GGUF_FAMILIES}
GEMMA3 = json.loads((Path(__file__).parent / "fixtures" / "gemma3_270m_tokenizer.json").read_text(encoding="utf-8"))
PARAGRAPH = ("Tokenizers split text into pieces; the engine must split it exactly as the model was trained to see it. "
             "Numbers like 1,234.56 and dates like 2026-11-30, URLs like https://example.com/a?b=c&d=e, and words "
             "in other scripts (naïve, Привет, 日本語) all count. ") * 8
TEXTS = list(dict.fromkeys([case["text"] for record in [*RECORDED.values(), GEMMA3] for case in record["cases"]]
                           + [PARAGRAPH, "", " ", "\n"]))


def tokenizer_json_of(name: str, directory: Path) -> dict:
    """The tokenizer.json the compiler writes for a recorded family's GGUF, or for a registry model's."""
    if name in GGUF_FAMILIES:
        family = GGUF_FAMILIES[name]["architecture"]
        gguf = write_tokenizer_gguf(directory / f"{name}.gguf", RECORDED[name]["gguf"], family)
    else:
        gguf = fetch_gguf(get_model(name))
    return build_tokenizer_files(gguf)[0]


def engine_tokenizer(tokenizer_json: dict, texts: list[str], decode: list[list[int]], stream: list[list[int]],
                     vocab_size: int) -> dict:
    job = {"tokenizer": tokenizer_json, "texts": texts, "decode": decode, "stream": stream, "vocabSize": vocab_size,
           "postprocessing": token_postproc_method(tokenizer_json)}
    run = subprocess.run(["node", "test/bundle-tokenizer-check.mjs"], input=json.dumps(job).encode(), cwd=WEB,
                         check=True, capture_output=True)
    return json.loads(run.stdout)


@pytest.mark.parametrize("name", [*GGUF_FAMILIES, "smollm2-135m-instruct", "gemma3-270m"])
def test_the_engine_tokenizes_as_the_rust_library(name, tmp_path):
    tokenizer_json = tokenizer_json_of(name, tmp_path)
    rust = Tokenizer.from_str(json.dumps(tokenizer_json))
    plain_json = {**tokenizer_json, "added_tokens": [t for t in tokenizer_json["added_tokens"] if not t["special"]]}
    rust_plain = Tokenizer.from_str(json.dumps(plain_json))
    ids = [rust.encode(text, add_special_tokens=False).ids for text in TEXTS]
    special = sorted(t["id"] for t in tokenizer_json["added_tokens"] if t["special"])
    assert special and any(set(special) & set(i) for i in ids)  # special tokens typed in text are read as such
    vocab_size = rust.get_vocab_size() + 3  # a model's vocabulary padded past its tokenizer's, as Qwen's is
    beyond = [vocab_size - 1, 0]  # an id the tokenizer has no token for, then a real one
    # every prefix too: a streamed answer is decoded token by token, often in the middle of a character's bytes
    decode = [i[:k] for i in ids for k in range(1, len(i) + 1)] + [beyond]
    engine = engine_tokenizer(tokenizer_json, TEXTS, decode, ids, vocab_size)

    for text, expected, got in zip(TEXTS, ids, engine["ids"]):
        assert got == expected, f"{text!r}"
    for text, got in zip(TEXTS, engine["plainIds"]):
        expected = rust_plain.encode(text, add_special_tokens=False).ids
        assert got == expected, f"as plain text: {text!r}"
        assert not set(got) & set(special)
    for expected_ids, got in zip(decode, engine["decoded"]):
        expected = rust.decode(expected_ids, skip_special_tokens=False)
        # Where the ids end inside a character, both give U+FFFD but not always as many: Rust's ByteFallback
        # decoder makes a run of byte tokens that is not whole UTF-8 one U+FFFD per byte ("٣" + a lone byte: three),
        # tokenizers.js only the lone byte one ("٣\ufffd"). The streamed text below is what a user sees of it.
        if "\ufffd" not in expected:
            assert got == expected, f"{expected_ids}"
    for text_ids, got in zip(ids, engine["streamed"]):
        assert got == rust.decode(text_ids, skip_special_tokens=False)
    assert engine["tokens"] == [rust.id_to_token(i) or "" for i in range(vocab_size)]
    assert sorted(engine["special"]) == special
