"""python -m serve with a base model (a tokenizer without a chat template): the tiny seeded Llama 3 checkpoint of
tests/tiny_checkpoints.py, its template removed, compiled (q0f32, the wasm32 library) and served over HTTP in a
wasmtime sandbox. POST /v1/completions continues the recorded prompt with transformers' greedy tokens
(tests/fixtures/llama3_transformers.json); POST /v1/chat/completions is refused with code model_not_chat."""
import json

import openai
import pytest

from compile.options import CompileOptions
from compile.pipeline import compile_bundle
from harness.server import BackgroundServer
from serve.app import create_app
from serve.workers import SandboxSettings, ServedModel
from tests.tiny_checkpoints import byte_level_tokenizer, recorded, write_checkpoint

CHECKPOINT = "llama3"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    checkpoint = write_checkpoint(CHECKPOINT, tmp_path_factory.mktemp("base-model"), recorded(CHECKPOINT)["seed"])
    config_path = checkpoint / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    del config["chat_template"]
    config_path.write_text(json.dumps(config), encoding="utf-8")
    bundle = compile_bundle(str(checkpoint), quantization="q0f32", output=tmp_path_factory.mktemp("bundles") / "base",
                            options=CompileOptions(context_window_size=256, prefill_chunk_size=16), opt_level="fast",
                            libraries=("wasm32",), report=lambda message: None).bundle
    model = ServedModel(bundle, workers=1, max_queue=1,
                        settings=SandboxSettings(cache_dir=tmp_path_factory.mktemp("compiled-modules")))
    with BackgroundServer(create_app(model)) as server:
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def served_model(client) -> str:
    return client.models.list().data[0].id


def test_a_completion_continues_the_text_with_transformers_greedy_tokens(client):
    case = recorded(CHECKPOINT)
    completion = client.completions.create(model=served_model(client), prompt=case["prompt"], temperature=0,
                                           max_tokens=len(case["greedy_ids"]))
    assert completion.usage.prompt_tokens == len(case["prompt_ids"])
    assert completion.usage.completion_tokens == len(case["greedy_ids"])
    # decoded as the server decodes (bytes that are not UTF-8 become U+FFFD on both sides)
    assert completion.choices[0].text == byte_level_tokenizer().decode(case["greedy_ids"])
    assert completion.choices[0].finish_reason == "length"


def test_chat_is_refused_with_model_not_chat(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=served_model(client), messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.code == "model_not_chat"
    assert refused.value.body["param"] == "messages" and "/v1/completions" in refused.value.body["message"]
