"""Every architecture in Chromium against transformers: the tiny seeded checkpoint of each (tests/tiny_checkpoints.py)
compiled by `python -m compile DIR`'s pipeline in float32 (q0f32), served by the real server and run through the
model library's ABI (e2e/pages/bundle_runner.html) on the CPU (the wasm32 library) and on WebGPU, gives
transformers' greedy ids (tests/fixtures/<name>_transformers.json) at every step of a two-turn chat, teacher-forced,
and its logits within 1e-4 (tests/teacher_forced.py): the 89-token prompt prefilled in chunks of 16 over six KV
pages, 24 answer tokens decoded, then the second turn's 45 ids prefilled on the same KV cache and its 24 tokens
decoded (181 positions, past the sliding windows of Gemma, Mistral and Phi-3: 32-48 tokens). Logits are about ±2.5
to ±7; measured at most 8.5e-6 from transformers' on the CPU library and 8.0e-6 on WebGPU (SwiftShader), both turns,
every architecture. On WebGPU
Gemma 3 was 0.3-0.6 off before the runtime's page-table fix (compile/toolchain/runtime_fixes.py), Gemma 2 1.0-1.9
before its soft cap (compile/llama/soft_cap.py); Phi-3 1.1e-4 while WGSL got float constants rounded to 7 digits,
and every model up to 1.5e-3 with WGSL's own sin and cos (compile/webgpu_math.py)."""
import pytest

from compile.options import CompileOptions
from compile.pipeline import compile_bundle
from compile.registry import architecture_for_hf
from e2e.test_bundle_fidelity import open_runner
from tests.teacher_forced import assert_turns_match, recorded_turns
from tests.tiny_checkpoints import CHECKPOINTS, recorded, write_checkpoint

OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


@pytest.fixture(scope="module")
def architecture_site(serve_site, tmp_path_factory):
    """(base URL, {checkpoint name: q0f32 bundle}): each tiny checkpoint compiled (about 10 s each) and served."""
    bundles = tmp_path_factory.mktemp("architecture-bundles")
    built = {}
    for name in CHECKPOINTS:
        checkpoint = write_checkpoint(name, tmp_path_factory.mktemp("checkpoints") / f"tiny-{name}",
                                      recorded(name)["seed"])
        built[name] = compile_bundle(str(checkpoint), quantization="q0f32", output=bundles / f"tiny-{name}-q0f32",
                                     options=OPTIONS, opt_level="fast", libraries=("webgpu", "wasm32")).bundle
    url, _ = serve_site(bundles)
    return url, built


@pytest.mark.parametrize("device", ["cpu", "webgpu"])
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_bundle_gives_transformers_greedy_ids_and_logits(name, device, webgpu_browser, no_webgpu_browser,
                                                          architecture_site):
    case = recorded(name)
    url, bundles = architecture_site
    browser = webgpu_browser if device == "webgpu" else no_webgpu_browser
    context, page, opened = open_runner(browser, url, bundles[name], device)
    try:
        assert opened["metadata"]["model_type"] == architecture_for_hf(CHECKPOINTS[name][0]["model_type"]).name
        assert (opened["adapter"] is None) == (device == "cpu")
        turns = [{"newIds": turn["newIds"], "fedIds": turn["fedIds"]} for turn in recorded_turns(case)]
        turn_logits = page.evaluate("r => window.conversation(r)",
                                    {"turns": turns, "chunkSize": OPTIONS.prefill_chunk_size})
    finally:
        context.close()
    assert_turns_match(turn_logits, case, f"{name} on {device}")
