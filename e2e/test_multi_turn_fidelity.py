"""A three-turn chat with KV reuse through each compiled SmolLM2 bundle's library in Chromium (the ABI, as
e2e/test_bundle_fidelity.py drives it), teacher-forced on the numpy reference's tokens (tests/multi_turn.py): the
default bundle on WebGPU and on the CPU (wasm32), the float32 bundle on the CPU (on WebGPU its 540 MB take
minutes per turn on SwiftShader, and the attention kernels under test do not depend on the weights). Prefills go in
chunks of 8 tokens, so every turn's prefill spans KV pages (16 tokens) and runs over a non-empty cache: the path a
wrong attention-state merge kernel broke on WebGPU (compile/llama/merge_state.py). On the CPU also a long prompt
and a turn after it (compile/llama/cpu_attention.py over many pages and chunks)."""
import numpy as np
import pytest

from e2e.test_bundle_fidelity import open_runner
from models.reference import NumpyLlama
from tests.multi_turn import (CPU_LOGITS_ATOL, EXACT_QUANTIZATIONS, LONG_USER_TURNS, MIN_MARGIN, USER_TURNS,
                              WEBGPU_LOGITS_ATOL, compare, float_reference_weights, reference_conversation)

CHUNK_SIZE = 8  # below the bundles' prefill_chunk_size: the runner splits each prefill as a small-chunk bundle would


@pytest.fixture(scope="module")
def q0_bundle_site(serve_site, smollm2_q0_bundle) -> str:
    url, _ = serve_site(smollm2_q0_bundle.path.parent)
    return url


# Three short turns in chunks of 8 tokens; on the CPU also a prompt of about 400 tokens in chunks of 128 (25 KV
# pages) and a second turn over it (on SwiftShader its prefill alone would take minutes).
CONVERSATIONS = {"short turns": (USER_TURNS, CHUNK_SIZE), "long prompt": (LONG_USER_TURNS, 128)}


@pytest.mark.parametrize("bundle_kind, device, conversation", [
    ("q4", "webgpu", "short turns"), ("q4", "cpu", "short turns"), ("q0", "cpu", "short turns"),
    ("q4", "cpu-relaxed", "long prompt"), ("q0", "cpu", "long prompt")])
def test_each_turn_of_a_chat_with_kv_reuse_matches_the_reference(
        bundle_kind, device, conversation, request, webgpu_browser, no_webgpu_browser, smollm2_config,
        smollm2_weights, smollm2_tokenizer, smollm2_tokenizer_config):
    user_turns, chunk_size = CONVERSATIONS[conversation]
    if bundle_kind == "q0":
        bundle, url = request.getfixturevalue("smollm2_q0_bundle"), request.getfixturevalue("q0_bundle_site")
    else:
        bundle, url = request.getfixturevalue("smollm2_q4_bundle"), request.getfixturevalue("site")[0]
    browser = webgpu_browser if device == "webgpu" else no_webgpu_browser
    context, page, opened = open_runner(browser, url, bundle, device)
    try:
        quantization = opened["metadata"]["quantization"]
        reference = NumpyLlama(smollm2_config, float_reference_weights(quantization, smollm2_weights))
        turns = reference_conversation(reference, smollm2_tokenizer, smollm2_tokenizer_config, user_turns)
        assert len(turns[0].new_ids) > 2 * chunk_size
        logits = page.evaluate("spec => window.conversation(spec)", {
            "turns": [{"newIds": t.new_ids, "fedIds": t.fed_answer_ids} for t in turns], "chunkSize": chunk_size})
    finally:
        context.close()

    divergence = compare(turns, [[np.asarray(step, np.float32) for step in turn] for turn in logits], MIN_MARGIN)
    print(f"{device} {quantization}, {conversation}: {divergence.summary()}; answers "
          f"{[smollm2_tokenizer.decode(ids) for ids in divergence.ids]}")
    assert divergence.max_logit_error < (WEBGPU_LOGITS_ATOL if device == "webgpu" else CPU_LOGITS_ATOL)
    if quantization in EXACT_QUANTIZATIONS and device == "cpu":
        assert divergence.first_id_difference is None
    assert divergence.first_clear_id_difference is None
