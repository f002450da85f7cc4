"""Chats with KV reuse on the native CPU build, float32 and the default (the GGUF's own blocks), against the numpy
reference on the same tokens: three short turns, with prefill chunks of 8 tokens that split each turn's prefill
across KV pages (16 tokens each; the first prompt, 37 tokens, already fills more than two pages); and a prompt of
about 400 tokens (chunks of 128 over 25 pages) followed by a second turn over that history."""
import pytest

from compile.options import CompileOptions
from compile.native import build_native_model
from models.reference import NumpyLlama
from tests.multi_turn import (CPU_LOGITS_ATOL, EXACT_QUANTIZATIONS, LONG_USER_TURNS, MIN_MARGIN, USER_TURNS, compare,
                              float_reference_weights, reference_conversation)

CONVERSATIONS = {
    "short turns": (USER_TURNS, CompileOptions(context_window_size=256, prefill_chunk_size=8)),
    "long prompt": (LONG_USER_TURNS, CompileOptions(context_window_size=1024, prefill_chunk_size=128)),
}


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("quantization", ["q0f32", "gguf"])
def test_each_turn_of_a_chat_with_kv_reuse_matches_the_reference(quantization, conversation, smollm2_config,
                                                                smollm2_weights, smollm2_blocks, smollm2_tokenizer,
                                                                smollm2_tokenizer_config):
    user_turns, options = CONVERSATIONS[conversation]
    reference = NumpyLlama(smollm2_config, float_reference_weights(quantization, smollm2_weights))
    turns = reference_conversation(reference, smollm2_tokenizer, smollm2_tokenizer_config, user_turns)
    assert len(turns[0].new_ids) > max(2 * 16, 2 * options.prefill_chunk_size)  # several pages and chunks

    weights = smollm2_blocks if quantization == "gguf" else smollm2_weights
    model = build_native_model(smollm2_config, weights, quantization, options)
    logits = [[model.prefill(t.new_ids)] + [model.decode_one_token(i) for i in t.fed_answer_ids] for t in turns]

    divergence = compare(turns, logits, MIN_MARGIN)
    print(f"native {quantization}, {conversation}: {divergence.summary()}")
    assert divergence.max_logit_error < CPU_LOGITS_ATOL
    if quantization in EXACT_QUANTIZATIONS:
        assert divergence.first_id_difference is None
    assert divergence.first_clear_id_difference is None
