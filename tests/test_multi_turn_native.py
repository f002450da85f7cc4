"""A three-turn chat with KV reuse on the native CPU build, every quantization, against the numpy reference on the
same tokens. Prefill chunks of 8 tokens split each turn's prefill across KV pages (16 tokens each), and the first
prompt (37 tokens) already fills more than two pages."""
import numpy as np
import pytest

from compile.build import build, export_model, native_cpu_target
from compile.llama import CompileOptions, llama_params
from compile.native import NativeModel
from compile.quantization import QUANTIZATIONS, get_quantization
from models.reference import NumpyLlama
from tests.multi_turn import (CPU_LOGITS_ATOL, MIN_MARGIN, compare, float_reference_weights,
                              reference_conversation)

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=8)


@pytest.mark.parametrize("quantization", sorted(QUANTIZATIONS))
def test_each_turn_of_a_chat_with_kv_reuse_matches_the_reference(quantization, smollm2_config, smollm2_weights,
                                                                smollm2_tokenizer, smollm2_tokenizer_config):
    reference = NumpyLlama(smollm2_config, float_reference_weights(quantization, smollm2_weights))
    turns = reference_conversation(reference, smollm2_tokenizer, smollm2_tokenizer_config)
    assert len(turns[0].new_ids) > 2 * 16 and all(len(t.new_ids) > OPTIONS.prefill_chunk_size for t in turns)

    quant = get_quantization(quantization)
    exported = export_model(smollm2_config, OPTIONS, quant, native_cpu_target())
    model = NativeModel(build(exported), dict(quant.quantize_params(llama_params(smollm2_config, smollm2_weights),
                                                                    exported.model)))
    logits = [[model.prefill(t.new_ids)] + [model.decode_one_token(i) for i in t.fed_answer_ids] for t in turns]

    divergence = compare(turns, logits, MIN_MARGIN)
    print(f"native {quantization}: {divergence.summary()}")
    assert divergence.max_logit_error < CPU_LOGITS_ATOL
    if quantization == "q0f32":
        assert divergence.first_id_difference is None
    assert divergence.first_clear_id_difference is None
