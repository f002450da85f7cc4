"""Byte-level BPE tokenizers of the Qwen2/2.5/3 and Llama 3 families, and Phi-3's SentencePiece BPE one, as
llama.cpp writes them into a GGUF, at a small scale: a vocabulary of a few thousand tokens trained by
tests/fixtures/record_bpe_gguf_tokenizers.py with the family's own pre-tokenizer (Phi-3: SentencePiece's pieces,
scored), then the family's own added tokens with llama.cpp's token types, its special token ids, add_bos_token and
a chat template of the family's shape. The recorded vocabulary and what transformers makes of the file are in
tests/fixtures/<family>_gguf_tokenizer.json; add_tokenizer writes such a record's tokenizer into a GGUF (the
recorder's file and the tests' are the same)."""
import json
from pathlib import Path

import gguf

FIXTURES = Path(__file__).parent / "fixtures"
# tokenizer.ggml.token_type values (llama.cpp's llama_token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Qwen2.5's added tokens and Qwen3's four more, in their order; llama.cpp makes the ones that look special
# ("<|...|>") control tokens and the others user-defined ones. Three [PAD] tokens stand for the rows that pad
# Qwen's embedding beyond its tokenizer (llama.cpp writes them as unused).
QWEN_ADDED = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
]
# Llama 3.1's first eleven (of 256) reserved tokens, all control tokens in its GGUFs
LLAMA3_ADDED = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
]
# Qwen2.5's template without its tools branch
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Meta-Llama-3-8B-Instruct's template: the BOS token is the template's, before the first message
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Phi-3.5-mini-instruct's added tokens (ids 32000-32010 after Llama 2's vocabulary), all special: control tokens
PHI3_ADDED = [
    "<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|placeholder2|>", "<|placeholder3|>", "<|placeholder4|>",
    "<|system|>", "<|end|>", "<|placeholder5|>", "<|placeholder6|>", "<|user|>",
]
# Phi-3.5-mini-instruct's template
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# Phi-3: tokenizer.ggml.model "llama" (SentencePiece), as llama.cpp's Phi3MiniModel writes it: no add_space_prefix
# key, so llama.cpp's default, a space prefix
PHI3 = {"architecture": "phi3", "pre": "default", "added": PHI3_ADDED, "unused": 5,
        "special": {"bos": "<s>", "eos": "<|endoftext|>", "unk": "<unk>", "pad": "<|endoftext|>"},
        "add_bos_token": False, "chat_template": PHI3_TEMPLATE}

# name -> general.architecture, tokenizer.ggml.pre, added tokens, unused tokens at the end, special tokens by GGUF
# key, add_bos_token, chat template
FAMILIES = {
    "qwen2": {"architecture": "qwen2", "pre": "qwen2", "added": QWEN_ADDED, "unused": 3,
              "special": {"bos": "<|endoftext|>", "eos": "<|im_end|>", "pad": "<|endoftext|>"},
              "add_bos_token": False, "chat_template": QWEN_TEMPLATE},
    "llama3": {"architecture": "llama", "pre": "llama-bpe", "added": LLAMA3_ADDED, "unused": 0,
               "special": {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>"},
               "add_bos_token": True, "chat_template": LLAMA3_TEMPLATE},
}


def added_token_type(token: str) -> int:
    """llama.cpp's converter: an added token that looks special is a control token, any other one user-defined."""
    return CONTROL if token.startswith("<|") and token.endswith("|>") else USER_DEFINED


def recorded_tokenizer(family: str) -> dict:
    """The recorded fixture of `family` (tests/fixtures/record_bpe_gguf_tokenizers.py wrote it)."""
    return json.loads((FIXTURES / f"{family}_gguf_tokenizer.json").read_text(encoding="utf-8"))


def add_tokenizer(writer: gguf.GGUFWriter, tokenizer: dict) -> None:
    """The tokenizer.* keys of a recorded tokenizer (the fixture's "gguf" entry), as llama.cpp's converter writes
    them for a byte-level BPE vocabulary (merges) or a SentencePiece one (model "llama": scores)."""
    writer.add_tokenizer_model(tokenizer.get("model", "gpt2"))
    writer.add_tokenizer_pre(tokenizer["pre"])
    writer.add_token_list(tokenizer["tokens"])
    writer.add_token_types(tokenizer["token_types"])
    if "scores" in tokenizer:
        writer.add_token_scores(tokenizer["scores"])
    else:
        writer.add_token_merges(tokenizer["merges"])
    if "add_space_prefix" in tokenizer:  # llama.cpp's converters of Phi-3 and Llama 2 write none, of Gemma false
        writer.add_add_space_prefix(tokenizer["add_space_prefix"])
    for key, token_id in tokenizer["special_ids"].items():
        getattr(writer, f"add_{key}_token_id")(token_id)
    writer.add_add_bos_token(tokenizer["add_bos_token"])
    writer.add_chat_template(tokenizer["chat_template"])


def write_tokenizer_gguf(path: Path, tokenizer: dict, architecture: str) -> Path:
    """A GGUF holding the tokenizer and the few architecture keys that readers of its metadata ask for (transformers
    reads a config from any GGUF), no tensors."""
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_block_count(2)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(1e6)
    writer.add_layer_norm_rms_eps(1e-6)
    add_tokenizer(writer, tokenizer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
