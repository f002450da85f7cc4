"""The compiled model (native CPU build of the same module the browser gets) against the numpy reference."""
import pytest

from compile.options import CompileOptions
from compile.native import build_native_model
from models.quantization import round_trip
from models.reference import NumpyLlama
from models.tokenizer import chat_prompt_ids
from tests.numeric import assert_close_to_scale

STEPS = 16
# A prompt whose greedy answer runs past 16 tokens (the capital question ends after 8).
STORY = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
# Small chunks so that the 42-token prompt is prefilled in three calls, as the browser does for long ones.
OPTIONS = CompileOptions(context_window_size=512, prefill_chunk_size=16)


@pytest.fixture(scope="module")
def story_prompt_ids(smollm2_tokenizer, smollm2_tokenizer_config):
    return chat_prompt_ids(smollm2_tokenizer, smollm2_tokenizer_config, STORY)


@pytest.mark.parametrize("quantization", ["q0f32", "gguf", "q4f32_1", "q4f32_asym"])
def test_native_build_matches_the_numpy_reference(quantization, smollm2_config, smollm2_weights, smollm2_blocks,
                                                  story_prompt_ids):
    """q0f32 and gguf (the GGUF's own blocks) against the float32 reference itself; the float quantizers
    against the reference running their dequantized weights."""
    exact = quantization in ("q0f32", "gguf")
    reference = NumpyLlama(smollm2_config, smollm2_weights if exact else round_trip(smollm2_weights, quantization))
    expected_tokens = reference.generate_greedy(story_prompt_ids, STEPS, stop_ids=())
    assert len(expected_tokens) == STEPS
    # Logits after the prompt and after each greedy token (teacher forcing: both see the same tokens).
    reference.reset()
    expected = [reference.prefill(story_prompt_ids)[-1]] + [reference.decode(t) for t in expected_tokens[:-1]]

    weights = smollm2_blocks if quantization == "gguf" else smollm2_weights
    model = build_native_model(smollm2_config, weights, quantization, OPTIONS)
    assert len(story_prompt_ids) > 2 * OPTIONS.prefill_chunk_size
    actual = [model.prefill(story_prompt_ids)] + [model.decode_one_token(t) for t in expected_tokens[:-1]]

    for step, (a, e) in enumerate(zip(actual, expected)):
        # other kernels through 30 layers: 5e-5 of the scale (1e-3 on logits up to 20)
        assert_close_to_scale(a, e, 5e-5, err_msg=f"logits differ at step {step}")
    # Free-running greedy decoding picks the same tokens.
    assert model.generate_greedy(story_prompt_ids, STEPS) == expected_tokens


def test_native_greedy_chat_answer_is_the_recorded_one(smollm2_config, smollm2_weights, smollm2_greedy_case):
    model = build_native_model(smollm2_config, smollm2_weights, "q0f32", OPTIONS)
    case = smollm2_greedy_case
    assert model.generate_greedy(case["prompt_ids"], case["max_new_tokens"], case["stop_ids"]) == case["greedy_ids"]


def test_prompt_longer_than_the_context_window_is_refused(smollm2_config, smollm2_blocks):
    model = build_native_model(smollm2_config, smollm2_blocks, "gguf", CompileOptions(32, 16))
    with pytest.raises(ValueError, match="33 tokens exceed the context window of 32"):
        model.prefill([1] * 33)
    assert model.seq_len == 0  # refused before anything was cached
    model.prefill([1] * 32)
    with pytest.raises(ValueError, match="33 tokens exceed"):
        model.decode_one_token(1)
