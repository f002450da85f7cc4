"""A three-turn chat with KV reuse on the native CPU build, float32 and the default (the GGUF's own blocks), against
the numpy reference on the same tokens. Prefill chunks of 8 tokens split each turn's prefill across KV pages (16 tokens each), and the first
prompt (37 tokens) already fills more than two pages."""
import pytest

from compile.llama import CompileOptions
from compile.native import build_native_model
from models.reference import NumpyLlama
from tests.multi_turn import (CPU_LOGITS_ATOL, EXACT_QUANTIZATIONS, MIN_MARGIN, compare, float_reference_weights,
                              reference_conversation)

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=8)


@pytest.mark.parametrize("quantization", ["q0f32", "gguf"])
def test_each_turn_of_a_chat_with_kv_reuse_matches_the_reference(quantization, smollm2_config, smollm2_weights,
                                                                smollm2_blocks, smollm2_tokenizer,
                                                                smollm2_tokenizer_config):
    reference = NumpyLlama(smollm2_config, float_reference_weights(quantization, smollm2_weights))
    turns = reference_conversation(reference, smollm2_tokenizer, smollm2_tokenizer_config)
    assert len(turns[0].new_ids) > 2 * 16 and all(len(t.new_ids) > OPTIONS.prefill_chunk_size for t in turns)

    weights = smollm2_blocks if quantization == "gguf" else smollm2_weights
    model = build_native_model(smollm2_config, weights, quantization, OPTIONS)
    logits = [[model.prefill(t.new_ids)] + [model.decode_one_token(i) for i in t.fed_answer_ids] for t in turns]

    divergence = compare(turns, logits, MIN_MARGIN)
    print(f"native {quantization}: {divergence.summary()}")
    assert divergence.max_logit_error < CPU_LOGITS_ATOL
    if quantization in EXACT_QUANTIZATIONS:
        assert divergence.first_id_difference is None
    assert divergence.first_clear_id_difference is None
