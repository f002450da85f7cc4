"""Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json with the chat template) from GGUF metadata
or from a Hugging Face checkpoint, and chat template rendering.

From a GGUF: tokenizer.ggml.model "gpt2" (byte-level BPE) with the "smollm" pre-tokenizer (digits split one by
one), which reproduces SmolLM2's own tokenizer.json. From a checkpoint: any tokenizer.json the `tokenizers` library
reads, as it is.
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
CONTROL, USER_DEFINED = 3, 4

BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
PRE_TOKENIZERS = {
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL]},
}
# tokenizer_config.json "<name>_token" / "<name>_token_id" <- GGUF tokenizer.ggml.<key>
SPECIAL_TOKENS = {"bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id", "unk": "unknown_token_id"}


def build_tokenizer_files(gguf_path: Path) -> tuple[dict, dict]:
    """The contents of (tokenizer.json, tokenizer_config.json) for a GGUF file."""
    reader = open_gguf(gguf_path)

    def value(key, *default):
        return gguf_value(reader, f"tokenizer.{key}", *default)

    model, pre = value("ggml.model"), value("ggml.pre", "default")
    if model != "gpt2" or pre not in PRE_TOKENIZERS:
        raise UnsupportedModelError(
            f"{gguf_path.name}: tokenizer {model!r} with pre-tokenizer {pre!r} is not supported "
            f"(supported: 'gpt2' with {', '.join(map(repr, PRE_TOKENIZERS))})"
        )
    if value("ggml.add_bos_token", False) or value("ggml.add_eos_token", False):
        raise UnsupportedModelError(f"{gguf_path.name}: tokenizers that add BOS/EOS tokens are not supported yet")
    tokens, types, merges = value("ggml.tokens"), value("ggml.token_type"), value("ggml.merges")
    special_ids = {name: value(f"ggml.{key}", None) for name, key in SPECIAL_TOKENS.items()}
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": kind == CONTROL}
            for i, (token, kind) in enumerate(zip(tokens, types)) if kind in (CONTROL, USER_DEFINED)
        ],
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            # as in SmolLM2's own tokenizer.json; byte-level BPE never produces it
            "unk_token": None if special_ids["unk"] is None else tokens[special_ids["unk"]],
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {token: i for i, token in enumerate(tokens)},
            "merges": merges,  # "a b" strings: the legacy form that @mlc-ai/web-tokenizers' parser accepts
        },
    }
    if len(tokenizer_json["model"]["vocab"]) != len(tokens):
        raise ModelError(f"{gguf_path.name}: the tokenizer's vocabulary has duplicate tokens")
    arch = gguf_value(reader, "general.architecture")
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": gguf_value(reader, f"{arch}.context_length"),
        "chat_template": value("chat_template", None),
    }
    for name, token_id in special_ids.items():
        if token_id is not None:
            config[f"{name}_token"], config[f"{name}_token_id"] = tokens[token_id], token_id
    return tokenizer_json, config


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
