"""Every architecture in Chromium against transformers: the tiny seeded checkpoint of each (tests/tiny_checkpoints.py)
compiled by `python -m compile DIR`'s pipeline in float32 (q0f32), served by the real server and run through the
model library's ABI (e2e/pages/bundle_runner.html) on the CPU (the wasm32 library) and on WebGPU, gives
transformers' greedy ids (tests/fixtures/<name>_transformers.json) at every step, teacher-forced, and its logits
within 1e-4, with the 89-token prompt prefilled in chunks of 16 over six KV pages."""
import numpy as np
import pytest

from compile.options import CompileOptions
from compile.pipeline import compile_bundle
from compile.registry import architecture_for_hf
from e2e.test_bundle_fidelity import open_runner
from tests.tiny_checkpoints import CHECKPOINTS, recorded, write_checkpoint

# Logits of about ±2.5 to ±7. Measured at most 1.1e-5 apart on the CPU library and 8.0e-6 on WebGPU (SwiftShader;
# 5.5e-5, Phi-3's 1.1e-4, while WGSL got the sin/cos reduction's and the rotary frequencies' float constants rounded
# to 7 digits; 1.5e-3 with WGSL's own sin and cos in the rotary embedding: compile/webgpu_math.py).
LOGITS_ATOL = 1e-4
OPTIONS = CompileOptions(context_window_size=256, prefill_chunk_size=16)


@pytest.fixture(scope="module")
def architecture_site(serve_site, tmp_path_factory):
    """(base URL, {checkpoint name: q0f32 bundle}, {checkpoint name: what compiling it reported}): each tiny
    checkpoint compiled (about 10 s each) and served."""
    bundles = tmp_path_factory.mktemp("architecture-bundles")
    built, reports = {}, {}
    for name in CHECKPOINTS:
        checkpoint = write_checkpoint(name, tmp_path_factory.mktemp("checkpoints") / f"tiny-{name}",
                                      recorded(name)["seed"])
        built[name] = compile_bundle(str(checkpoint), quantization="q0f32", output=bundles / f"tiny-{name}-q0f32",
                                     options=OPTIONS, opt_level="fast", libraries=("webgpu", "wasm32"),
                                     report=reports.setdefault(name, []).append).bundle
    url, _ = serve_site(bundles)
    return url, built, reports


# TVM 0.27's paged KV cache keeps the page table of the sliding-window layers in the same device buffers as the
# full layers' one on WebGPU (PlainPagedKVCacheAuxDataManager hands out views of one buffer per depth; the CPU's
# manager packs them apart), so Gemma 3's global layers attend to the window only once the context outgrows it:
# logits 0.3-0.6 off (measured; the greedy ids still agree). Strict: this reports when a TVM fixes it.
WINDOW_ON_WEBGPU = pytest.mark.xfail(strict=True, reason="TVM 0.27's WebGPU page table for per-layer sliding windows")
# Gemma 2's attention scores are soft-capped (cap * tanh(scores / cap)): TVM 0.27's paged-KV-cache attention kernels
# have no soft cap (TIRPagedKVCache takes none; its WebGPU prefill, ragged-prefill and decode kernels compute the scores
# as q.k * sm_scale * log2(e) and go straight to the online softmax), and compile/llama/cpu_attention.py replaces them
# on the CPU only. Without it transformers' logits for the tiny model are 0.22 off and its ids differ
# (tests/test_architectures.py); its global layers also meet the page-table bug above. Measured on WebGPU: logits
# 1.0-1.9 off, ids apart from the fifth step. Strict: this reports when both are fixed.
SOFTCAP_ON_WEBGPU = pytest.mark.xfail(strict=True, reason="TVM 0.27's WebGPU attention kernels have no soft cap")


@pytest.mark.parametrize("device", ["cpu", "webgpu"])
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_bundle_gives_transformers_greedy_ids_and_logits(name, device, webgpu_browser, no_webgpu_browser,
                                                          architecture_site, request):
    if name == "gemma3" and device == "webgpu":
        request.applymarker(WINDOW_ON_WEBGPU)
    if name == "gemma2" and device == "webgpu":
        request.applymarker(SOFTCAP_ON_WEBGPU)
    case = recorded(name)
    url, bundles, _ = architecture_site
    browser = webgpu_browser if device == "webgpu" else no_webgpu_browser
    context, page, opened = open_runner(browser, url, bundles[name], device)
    try:
        assert opened["metadata"]["model_type"] == architecture_for_hf(CHECKPOINTS[name][0]["model_type"]).name
        assert (opened["adapter"] is None) == (device == "cpu")
        prompt, greedy = case["prompt_ids"], case["greedy_ids"]
        turns = [{"newIds": prompt, "fedIds": greedy[:-1]}]
        [logits] = page.evaluate("r => window.conversation(r)",
                                 {"turns": turns, "chunkSize": OPTIONS.prefill_chunk_size})
    finally:
        context.close()
    logits = [np.asarray(row, np.float32) for row in logits]
    assert [int(np.argmax(row)) for row in logits] == greedy
    errors = {int(step): float(np.max(np.abs(logits[int(step)] - np.array(row))))
              for step, row in case["logits"].items()}
    print(f"{name} on {device}: max |logit - transformers'| per step {errors}")
    assert max(errors.values()) < LOGITS_ATOL


def test_compiling_says_which_webgpu_library_lacks_a_soft_cap(architecture_site):
    _, _, reports = architecture_site
    warned = {name for name, messages in reports.items() if any("soft cap" in message for message in messages)}
    assert warned == {"gemma2"}
