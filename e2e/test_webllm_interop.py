"""npm @mlc-ai/web-llm (pinned dev dependency) on a page of another origin loads the q4 SmolLM2 bundle from
tabllm's own server, started with cors_origin = that page's origin (`python -m static_server --cors ORIGIN`), at
the URL WebLLM derives (<bundle>/resolve/main/<file>), and answers one and then two turns with the numpy
reference's greedy answers (its prompt comes from mlc-chat-config.json's conv_template)."""
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from harness.browser import STEP_TIMEOUT_MS
from models.reference import NumpyLlama
from static_server import create_app
from tests.multi_turn import float_reference_weights, reference_conversation

ROOT = Path(__file__).resolve().parent.parent
WEBLLM_DIR = ROOT / "web/node_modules/@mlc-ai/web-llm/lib"
USER_TURNS = ["What is the capital of France?", "And of Italy?"]
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def page_origin(serve):
    assert (WEBLLM_DIR / "index.js").is_file(), "npm packages missing: run `npm ci --prefix web`"
    return serve(Starlette(routes=[
        Mount("/webllm", StaticFiles(directory=WEBLLM_DIR)),
        Mount("/", StaticFiles(directory=Path(__file__).parent / "pages")),
    ]))


def test_webllm_answers_two_turns_as_the_reference_does(page, page_origin, serve, bundles_dir, web_dist,
                                                         smollm2_q4_bundle, smollm2_config, smollm2_weights,
                                                         smollm2_tokenizer, smollm2_tokenizer_config):
    bundles_url = serve(create_app(bundles_dir, web_dist, cors_origin=page_origin))
    quantization = smollm2_q4_bundle.manifest["quantization"]
    reference = NumpyLlama(smollm2_config, float_reference_weights(quantization, smollm2_weights))
    turns = reference_conversation(reference, smollm2_tokenizer, smollm2_tokenizer_config, USER_TURNS, MAX_TOKENS)
    eos = smollm2_tokenizer_config["eos_token_id"]
    assert all(t.greedy_ids[-1] == eos for t in turns), "the reference answers must end within MAX_TOKENS"
    expected = [smollm2_tokenizer.decode(t.greedy_ids[:-1]) for t in turns]

    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.goto(page_origin + "/webllm_chat.html")
    page.wait_for_function("window.ready === true")
    base = f"{bundles_url}/bundles/{smollm2_q4_bundle.bundle_id}/"
    answers = page.evaluate("spec => window.chat(spec)", {
        "modelUrl": base, "modelLib": base + f"{smollm2_q4_bundle.path.name}-webgpu.wasm",
        "turns": USER_TURNS, "maxTokens": MAX_TOKENS})
    print(f"WebLLM: {answers}; reference: {expected}")
    assert answers == expected  # WebLLM returns text only: the greedy ids' text, turn by turn
