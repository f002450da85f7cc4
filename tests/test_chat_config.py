"""mlc-chat-config.json's conv_template builds, the way WebLLM builds its prompt from it, exactly the prompt the
bundle's Jinja chat template renders: same system message, separators and stop token, token for token."""
import pytest

from compile.chat_config import chat_config, chatml_conv_template
from models.tokenizer import render_chat_template

ANSWERED = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
            {"role": "user", "content": "And of Italy?"}]
CONVERSATIONS = {
    "one turn": ANSWERED[:1],
    "three turns": ANSWERED,
    "own system message": [{"role": "system", "content": "Answer in French."}] + ANSWERED,
}


def webllm_prompt(conv: dict, messages: list[dict]) -> str:
    """WebLLM 0.2.86's Conversation.getPromptArray (src/conversation.ts) for `messages`, then the assistant's empty
    turn: a system message in the request overrides conv.system_message; each message is role, role_content_sep,
    content and the next separator of seps; the empty assistant turn is role and role_empty_sep."""
    system = conv["system_message"]
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"], messages[1:]
    parts = [conv["system_template"].replace("{system_message}", system)]
    for i, message in enumerate(messages):
        parts.append(conv["roles"][message["role"]] + conv["role_content_sep"] + message["content"]
                     + conv["seps"][i % len(conv["seps"])])
    parts.append(conv["roles"]["assistant"] + conv["role_empty_sep"])
    return "".join(parts)


@pytest.mark.parametrize("name", CONVERSATIONS)
def test_conv_template_prompt_is_the_jinja_templates_token_for_token(name, smollm2_tokenizer,
                                                                     smollm2_tokenizer_config):
    conv = chatml_conv_template(smollm2_tokenizer_config)
    messages = CONVERSATIONS[name]
    jinja = render_chat_template(smollm2_tokenizer_config, messages, add_generation_prompt=True)
    assert webllm_prompt(conv, messages) == jinja
    encode = lambda text: smollm2_tokenizer.encode(text, add_special_tokens=False).ids
    assert encode(webllm_prompt(conv, messages)) == encode(jinja)


def test_conv_template_keeps_smollm2s_default_system_message_and_stops_at_its_end_of_turn(
        smollm2_tokenizer_config):
    conv = chatml_conv_template(smollm2_tokenizer_config)
    assert conv["system_message"] == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    end_of_turn = smollm2_tokenizer_config["eos_token"]
    assert conv["stop_str"] == [end_of_turn] and conv["seps"] == [end_of_turn + "\n"]


METADATA = {"quantization": "gguf", "weight_formats": {}, "context_window_size": 512, "prefill_chunk_size": 512}


def test_only_a_chatml_model_gets_a_conv_template(smollm2_config, smollm2_tokenizer_config):
    files = ["tokenizer.json", "tokenizer_config.json"]
    chatml = chat_config(smollm2_config, METADATA, smollm2_tokenizer_config, files, [2], "byte_level")
    assert chatml["conv_template"]["name"] == "chatml" and chatml["conv_template"]["stop_token_ids"] == [2]
    for template in (None, "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.content }}{% endfor %}"):
        other = chat_config(smollm2_config, METADATA, dict(smollm2_tokenizer_config, chat_template=template), files,
                            [1, 106], "byte_fallback")
        assert other["conv_template"] is None and other["eos_token_id"] == [1, 106]
        assert other["tokenizer_info"]["token_postproc_method"] == "byte_fallback"
