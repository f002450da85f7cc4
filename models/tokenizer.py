"""Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json with the chat template) from GGUF metadata
or from a Hugging Face checkpoint, and chat template rendering.

From a GGUF: tokenizer.ggml.model "gpt2" (byte-level BPE) with the "smollm" pre-tokenizer (digits split one by
one), which reproduces SmolLM2's own tokenizer.json, or with Qwen2/2.5/3's "qwen2" or Llama 3's "llama-bpe", converted
to the tokenizer.json transformers makes of the file; or "llama" (a SentencePiece BPE model: scores instead of
merges, byte-fallback tokens <0xNN>, "▁" for a space), as Gemma 3's (without a space prefix) and Phi-3's (with one),
converted to the tokenizer.json transformers makes of it. From a checkpoint: any tokenizer.json the `tokenizers`
library reads, as it is.
"""
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from models.errors import ModelError, UnsupportedModelError
from models.gguf_file import gguf_value, open_gguf

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED = 1, 2, 3, 4
SPACE = "\u2581"  # SentencePiece's "▁": a space, in its pieces

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
# The text pieces BPE merges within, as the model's own tokenizer cuts them (transformers' GGUF conversion splits
# with these; llama.cpp with the same patterns): contractions, letters with one leading non-letter, digits (Llama 3:
# runs of up to three; Qwen: one by one), punctuation runs, newline runs, other whitespace.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")


def _split_then_bytes(pattern: str) -> dict:
    """Cut the text with `pattern`, then spell each piece in GPT-2's byte-level alphabet (no regex of its own)."""
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
    ]}


# tokenizer.ggml.pre -> the pre-tokenizer (others are refused: llama.cpp writes dozens, each its own pattern)
PRE_TOKENIZERS = {
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
    "qwen2": _split_then_bytes(QWEN2_SPLIT),  # Qwen2, Qwen2.5, Qwen3
    "llama-bpe": _split_then_bytes(LLAMA3_SPLIT),  # Llama 3, 3.1, 3.2, 3.3
}
# tokenizer_config.json "<name>_token" / "<name>_token_id" <- GGUF tokenizer.ggml.<key>
SPECIAL_TOKENS = {"bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id", "unk": "unknown_token_id"}


def build_tokenizer_files(gguf_path: Path) -> tuple[dict, dict]:
    """The contents of (tokenizer.json, tokenizer_config.json) for a GGUF file."""
    reader = open_gguf(gguf_path)

    def value(key, *default):
        return gguf_value(reader, f"tokenizer.{key}", *default)

    model, pre = value("ggml.model"), value("ggml.pre", "default")
    if value("ggml.add_eos_token", False):
        raise UnsupportedModelError(f"{gguf_path.name}: tokenizers that add an EOS token are not supported yet")
    byte_level = model == "gpt2" and pre in PRE_TOKENIZERS
    if not byte_level and model != "llama":
        raise UnsupportedModelError(
            f"{gguf_path.name}: tokenizer {model!r} with pre-tokenizer {pre!r} is not supported (supported: 'gpt2' "
            f"with {', '.join(map(repr, PRE_TOKENIZERS))}; 'llama' (SentencePiece))"
        )
    tokens, types = value("ggml.tokens"), value("ggml.token_type")
    special_ids = {name: value(f"ggml.{key}", None) for name, key in SPECIAL_TOKENS.items()}
    unk = None if special_ids["unk"] is None else tokens[special_ids["unk"]]
    if byte_level:
        tokenizer_json = _byte_level_bpe(tokens, types, unk, value("ggml.merges"), PRE_TOKENIZERS[pre])
    else:
        # SentencePiece's dummy prefix; llama.cpp's default where the file does not say (Phi-3's converter does not)
        tokenizer_json = _sentencepiece_bpe(tokens, types, unk, space_prefix=value("ggml.add_space_prefix", True))
    if len(tokenizer_json["model"]["vocab"]) != len(tokens):
        raise ModelError(f"{gguf_path.name}: the tokenizer's vocabulary has duplicate tokens")
    arch = gguf_value(reader, "general.architecture")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        # tokenizer.json adds no special tokens itself: the engine puts the BOS token first where this says so
        "add_bos_token": value("ggml.add_bos_token", False),
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": gguf_value(reader, f"{arch}.context_length"),
        "chat_template": value("chat_template", None),
    }
    for name, token_id in special_ids.items():
        if token_id is not None:
            config[f"{name}_token"], config[f"{name}_token_id"] = tokens[token_id], token_id
    return tokenizer_json, config


def _added_tokens(tokens: list[str], types: list[int]) -> list[dict]:
    """Control tokens and the unknown token (special) and user-defined ones (plain text matched whole, as llama.cpp
    matches them), as transformers adds them; a byte-level vocabulary's are spelled in its alphabet (ASCII ones, in
    the families read here)."""
    return [
        {"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": kind != USER_DEFINED}
        for i, (token, kind) in enumerate(zip(tokens, types)) if kind in (UNKNOWN, CONTROL, USER_DEFINED)
    ]


def _byte_level_bpe(tokens: list[str], types: list[int], unk: str | None, merges: list[str],
                    pre_tokenizer: dict) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tokens, types),
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": unk,  # as in SmolLM2's own tokenizer.json; byte-level BPE never produces it
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {token: i for i, token in enumerate(tokens)},
            "merges": merges,  # "a b" strings: the legacy form, which WebLLM's web-tokenizers reads
        },
    }


def _sentencepiece_bpe(tokens: list[str], types: list[int], unk: str | None, space_prefix: bool) -> dict:
    """SentencePiece's BPE as a `tokenizers` BPE: spaces become "▁" before merging, and with `space_prefix` (its dummy
    prefix) a "▁" goes before each text between special tokens, stripped again from the decoded text, as
    transformers converts it and llama.cpp tokenizes it; a merge exists for every split of a piece into two pieces,
    ranked by the merged piece's id (SentencePiece merges the best-scored pair first, and lists its pieces best
    first: Gemma 3's normal pieces score minus their id), the splits of one piece longest left part first
    (transformers' order, exactly, for Gemma 3); characters outside the vocabulary fall back to their UTF-8 bytes
    <0xNN>. The whitespace runs that llama.cpp stored spelled with spaces are spelled with "▁", as the normalized
    text reaching them is."""
    tokens = [token.replace(" ", SPACE) if kind == USER_DEFINED else token for token, kind in zip(tokens, types)]
    spaces = {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}
    ids = {token: i for i, token in enumerate(tokens)}
    ranked = []
    for merged_id, (piece, kind) in enumerate(zip(tokens, types)):
        if kind not in (NORMAL, USER_DEFINED):
            continue
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in ids and right in ids:
                ranked.append(((merged_id, -cut), [left, right]))
    ranked.sort(key=lambda item: item[0])
    # whitespace pieces are matched through merges, not whole (the space was already "▁" when they are reached)
    added = [t for t in _added_tokens(tokens, types) if SPACE not in t["content"]]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": ({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": SPACE}, spaces]}
                       if space_prefix else spaces),
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            *([{"type": "Strip", "content": " ", "start": 1, "stop": 0}] if space_prefix else []),
        ]},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": unk,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": ids,
            "merges": [pair for _, pair in ranked],
        },
    }


def token_postproc_method(tokenizer_json: Mapping) -> str:
    """How tokenizer.json's token strings map to bytes, in mlc-chat-config's terms (tokenizer_info): SentencePiece's
    "▁" and <0xNN> where the model falls back to bytes, GPT-2's byte-level characters otherwise."""
    return "byte_fallback" if tokenizer_json["model"].get("byte_fallback") else "byte_level"


def write_tokenizer_files(gguf_path: Path, out_dir: Path) -> None:
    """Write out_dir/tokenizer.json and out_dir/tokenizer_config.json."""
    tokenizer_json, config = build_tokenizer_files(gguf_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")


def hf_tokenizer_files(directory: Path) -> tuple[bytes, dict]:
    """The contents of (tokenizer.json, tokenizer_config.json) for a Hugging Face checkpoint: its tokenizer.json
    unchanged, and its tokenizer_config.json with the chat template (from chat_template.jinja where transformers
    wrote it there) and the special tokens as plain strings with their ids."""
    tokenizer_path, config_path = directory / "tokenizer.json", directory / "tokenizer_config.json"
    try:
        tokenizer_json = tokenizer_path.read_bytes()
        tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"{directory}: {Path(e.filename).name} is missing") from None
    except Exception as e:  # bad UTF-8 or JSON; tokenizers raises a bare Exception for a model it cannot read
        raise ModelError(f"{directory}: cannot read the tokenizer: {e}") from None
    template_file = directory / "chat_template.jinja"
    template = template_file.read_text(encoding="utf-8") if template_file.is_file() else config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one is the chat template
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    config["chat_template"] = template
    for name in SPECIAL_TOKENS:
        token = config.get(f"{name}_token")
        if isinstance(token, dict):  # a serialised AddedToken
            token = config[f"{name}_token"] = token["content"]
        if token is not None:
            token_id = tokenizer.token_to_id(token)
            if token_id is None:
                raise ModelError(f"{directory}: the {name} token {token!r} is not in tokenizer.json")
            config[f"{name}_token_id"] = token_id
    return tokenizer_json, config


def write_hf_tokenizer_files(directory: Path, out_dir: Path) -> None:
    """Write out_dir/tokenizer.json and out_dir/tokenizer_config.json for a Hugging Face checkpoint."""
    tokenizer_json, config = hf_tokenizer_files(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_bytes(tokenizer_json)
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")


def chat_prompt_ids(tokenizer, tokenizer_config: Mapping, messages: Sequence[Mapping[str, str]]) -> list[int]:
    """The token ids a chat model is fed for `messages`: the template with the generation prompt, tokenized
    (`tokenizer`: a `tokenizers.Tokenizer` of the same model; the template already holds the special tokens)."""
    prompt = render_chat_template(tokenizer_config, messages, add_generation_prompt=True)
    return tokenizer.encode(prompt, add_special_tokens=False).ids


def render_chat_template(
    tokenizer_config: Mapping, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool
) -> str:
    """Render the chat template as transformers' apply_chat_template does (same Jinja settings and variables)."""
    template = tokenizer_config.get("chat_template")
    if not template:
        raise ModelError("this tokenizer has no chat template")

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    special = {f"{name}_token": tokenizer_config.get(f"{name}_token", "") for name in SPECIAL_TOKENS}
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt, **special)
