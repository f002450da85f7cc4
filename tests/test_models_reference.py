"""The numpy reference: the KV cache path agrees with a full prefill, and greedy decoding answers a chat prompt
with the recorded ids (checked by reading them: "The capital of France is Paris.")."""
import numpy as np
import pytest

from models.llama import dequantize_llama
from models.reference import NumpyLlama
from models.tokenizer import chat_prompt_ids, render_chat_template
from tests.numeric import assert_close_to_scale


def test_prompt_renders_and_tokenizes_to_the_recorded_ids(smollm2_greedy_case, smollm2_tokenizer,
                                                           smollm2_tokenizer_config):
    case = smollm2_greedy_case
    prompt = render_chat_template(smollm2_tokenizer_config, case["messages"], add_generation_prompt=True)
    assert prompt == case["prompt"]
    assert smollm2_tokenizer.encode(prompt, add_special_tokens=False).ids == case["prompt_ids"]
    assert chat_prompt_ids(smollm2_tokenizer, smollm2_tokenizer_config, case["messages"]) == case["prompt_ids"]


def test_prefill_logits_equal_step_by_step_decode_logits(smollm2_reference, smollm2_greedy_case):
    ids = smollm2_greedy_case["prompt_ids"]
    prefill = smollm2_reference.prefill(ids)
    assert prefill.shape == (len(ids), 49152) and prefill.dtype == np.float32
    smollm2_reference.reset()
    decode = np.stack([smollm2_reference.decode(token) for token in ids])
    assert smollm2_reference.seq_len == len(ids)
    # float32 matrix-matrix and matrix-vector products sum in different orders: ≈1e-4 apart on logits up to 38
    assert_close_to_scale(decode, prefill)


def test_chunked_prefill_continues_the_cache(smollm2_reference, smollm2_greedy_case):
    ids = smollm2_greedy_case["prompt_ids"]
    whole = smollm2_reference.prefill(ids)
    smollm2_reference.reset()
    chunks = np.concatenate([smollm2_reference.prefill(ids[:16]), smollm2_reference.prefill(ids[16:])])
    assert_close_to_scale(chunks, whole)


def test_greedy_generation_answers_paris(smollm2_reference, smollm2_greedy_case, smollm2_tokenizer):
    case = smollm2_greedy_case
    ids = smollm2_reference.generate_greedy(case["prompt_ids"], case["max_new_tokens"], stop_ids=case["stop_ids"])
    assert ids == case["greedy_ids"]
    assert smollm2_tokenizer.decode(ids, skip_special_tokens=False) == "The capital of France is Paris.<|im_end|>"


def test_greedy_generation_stops_at_max_new_tokens(smollm2_reference, smollm2_greedy_case):
    case = smollm2_greedy_case
    assert smollm2_reference.generate_greedy(case["prompt_ids"], 3, stop_ids=case["stop_ids"]) == case["greedy_ids"][:3]
    assert smollm2_reference.seq_len == len(case["prompt_ids"]) + 2  # the last token is not decoded


def test_tiny_model_caches_and_refuses_to_exceed_its_context(tiny_llama_gguf):
    path, config, _ = tiny_llama_gguf(tied=False)
    model = NumpyLlama(*dequantize_llama(path))
    ids = np.arange(config.context_length) % config.vocab_size
    prefill = model.prefill(ids)
    model.reset()
    assert_close_to_scale(np.stack([model.decode(t) for t in ids]), prefill)
    with pytest.raises(ValueError, match="16 cached \\+ 1 new tokens exceed the context of 16"):
        model.decode(0)
