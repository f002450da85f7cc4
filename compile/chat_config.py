"""mlc-chat-config.json: what a WebLLM-style runtime needs to chat with a bundle."""
import re

from models.llama import LlamaConfig
from models.tokenizer import render_chat_template

# ChatML in MLC-LLM's conversation-template schema, for runtimes that do not render the Jinja template (WebLLM
# builds its prompt from it). The system message is replaced by the Jinja template's own default (chatml_conv_template).
CHATML = {
    "name": "chatml",
    "system_template": "<|im_start|>system\n{system_message}<|im_end|>\n",
    "system_message": "You are a helpful AI assistant.",
    "roles": {"user": "<|im_start|>user", "assistant": "<|im_start|>assistant"},
    "role_templates": {},
    "messages": [],
    "seps": ["<|im_end|>\n"],
    "role_content_sep": "\n",
    "role_empty_sep": "\n",
    "stop_str": ["<|im_end|>"],
    "system_prefix_token_ids": None,
    "add_role_after_system_message": True,
}

# SmolLM2's recommended sampling (its model card); the engine lets every request override them.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9


def is_chatml(tokenizer_config: dict) -> bool:
    """ChatML is recognised from the chat template itself, so a local GGUF needs no registry entry."""
    return "<|im_start|>" in (tokenizer_config.get("chat_template") or "")


def chatml_conv_template(tokenizer_config: dict) -> dict:
    """CHATML with the system message the Jinja template uses when the conversation has none, so that a runtime
    building its prompt from conv_template feeds the model the same tokens as one rendering the Jinja template
    (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"). A template without a
    default system block gets an empty one."""
    rendered = render_chat_template(tokenizer_config, [{"role": "user", "content": "-"}], add_generation_prompt=False)
    default = re.match(r"<\|im_start\|>system\n(.*?)<\|im_end\|>\n", rendered, re.DOTALL)
    return dict(CHATML, system_message=default.group(1) if default else "")


def chat_config(config: LlamaConfig, metadata: dict, tokenizer_config: dict, tokenizer_files: list[str],
                stop_token_ids: list[int], token_postproc_method: str) -> dict:
    """`stop_token_ids`: every token that ends a generation (the tokenizer's eos first). conv_template is there for
    ChatML models only (WebLLM-style runtimes build their prompt from it); tabllm's engine renders the Jinja chat
    template of any model, and serves a model without one (a base model) plain completions.
    `token_postproc_method`: how token strings map to bytes (models.tokenizer.token_postproc_method)."""
    conv_template = None
    if is_chatml(tokenizer_config):
        conv_template = dict(chatml_conv_template(tokenizer_config), stop_token_ids=stop_token_ids)
    return {
        "version": "0.1.0",
        "model_type": config.model_type,
        "quantization": metadata["quantization"],
        "weight_formats": metadata["weight_formats"],
        "model_config": config.to_dict(),
        "vocab_size": config.vocab_size,
        "context_window_size": metadata["context_window_size"],
        "sliding_window_size": -1,
        "prefill_chunk_size": metadata["prefill_chunk_size"],
        "attention_sink_size": -1,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "temperature": DEFAULT_TEMPERATURE,
        "top_p": DEFAULT_TOP_P,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "conv_template": conv_template,
        "pad_token_id": tokenizer_config.get("pad_token_id", 0),
        "bos_token_id": tokenizer_config.get("bos_token_id"),  # Qwen has none
        "eos_token_id": stop_token_ids,
        "tokenizer_files": tokenizer_files,
        "tokenizer_info": {"token_postproc_method": token_postproc_method, "prepend_space_in_encode": False,
                           "strip_space_in_decode": False},
    }
