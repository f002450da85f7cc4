"""python -m serve against the official openai client: the real default bundle's CPU library in a wasmtime
sandbox, served by uvicorn over HTTP. Greedy answers are the numpy reference's (tests/fixtures/smollm2_greedy.json,
and a three-turn chat played by the reference: tests/multi_turn.py);
one worker with a queue of one shows the queue, the 429 and a disconnect freeing the worker."""
import os
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from harness.server import BackgroundServer, free_port
from serve.app import create_app
from serve.workers import SandboxSettings, ServedModel
from tests.multi_turn import MAX_NEW_TOKENS, USER_TURNS, reference_conversation

ANSWER_TIMEOUT_S = 120
# A long answer: the end-of-turn token (id 2, "<|im_end|>") forbidden, so only max_tokens or an abort ends it.
ENDLESS = {"messages": [{"role": "user", "content": "Count to 500."}], "temperature": 0, "max_tokens": 400,
           "logit_bias": {"2": -100}, "stream": True}


@pytest.fixture(scope="module")
def served(default_compile, tmp_path_factory):
    model = ServedModel(default_compile.bundle, workers=1, max_queue=1,
                        settings=SandboxSettings(cache_dir=tmp_path_factory.mktemp("compiled-modules")))
    with BackgroundServer(create_app(model)) as server:
        yield model, server.url


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=f"{served[1]}/v1", api_key="unused", max_retries=0, timeout=ANSWER_TIMEOUT_S)


@pytest.fixture
def model_id(served):
    return served[0].id


def wait_until(condition, what: str, timeout_s: float = ANSWER_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def reference_answer(case) -> str:
    assert case["greedy_ids"][-1] in case["stop_ids"]  # the reference finished its answer
    return case["greedy_text"].removesuffix("<|im_end|>")


def test_models_lists_the_served_bundle(client, model_id):
    assert [m.id for m in client.models.list().data] == [model_id]


def test_the_greedy_answer_is_the_numpy_references(client, model_id, smollm2_greedy_case):
    completion = client.chat.completions.create(model=model_id, messages=smollm2_greedy_case["messages"],
                                                temperature=0, max_tokens=32)
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == (reference_answer(smollm2_greedy_case), "stop")
    assert completion.usage.prompt_tokens == len(smollm2_greedy_case["prompt_ids"])
    assert completion.usage.completion_tokens == len(smollm2_greedy_case["greedy_ids"])
    assert completion.usage.model_extra["extra"]["decode_tokens_per_s"] > 0


def test_streaming_gives_the_same_answer_in_pieces(client, model_id, smollm2_greedy_case):
    stream = client.chat.completions.create(model=model_id, messages=smollm2_greedy_case["messages"], temperature=0,
                                            max_tokens=32, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3 and "".join(pieces) == reference_answer(smollm2_greedy_case)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == len(smollm2_greedy_case["greedy_ids"])


def test_a_raw_completion_of_the_same_prompt_gives_the_same_answer(client, model_id, smollm2_greedy_case):
    completion = client.completions.create(model=model_id, prompt=smollm2_greedy_case["prompt"], temperature=0,
                                           max_tokens=32)
    assert completion.choices[0].text == reference_answer(smollm2_greedy_case)
    assert completion.usage.prompt_tokens == len(smollm2_greedy_case["prompt_ids"])


def test_a_stop_string_ends_the_answer_before_it(client, model_id, smollm2_greedy_case):
    completion = client.chat.completions.create(model=model_id, messages=smollm2_greedy_case["messages"],
                                                temperature=0, max_tokens=32, stop=[" Paris"])
    answer = reference_answer(smollm2_greedy_case)
    assert completion.choices[0].message.content == answer[:answer.index(" Paris")]
    assert completion.choices[0].finish_reason == "stop"


def test_max_tokens_cuts_the_answer(client, model_id, smollm2_greedy_case):
    completion = client.chat.completions.create(model=model_id, messages=smollm2_greedy_case["messages"],
                                                temperature=0, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    assert reference_answer(smollm2_greedy_case).startswith(completion.choices[0].message.content)


def test_a_seed_reproduces_a_sampled_answer(client, model_id):
    def sample(seed):
        return client.chat.completions.create(
            model=model_id, messages=[{"role": "user", "content": "Write a line about the sea."}], temperature=1,
            top_p=1, seed=seed, max_tokens=12, n=2).choices

    first, again, other = sample(7), sample(7), sample(8)
    texts = lambda choices: [c.message.content for c in choices]  # noqa: E731
    assert texts(first) == texts(again)
    assert texts(first)[0] != texts(first)[1]  # the two choices are two draws
    assert texts(first) != texts(other)


def test_each_turn_of_a_chat_is_the_references_and_prefills_only_its_new_tokens(
        client, model_id, smollm2_reference, smollm2_tokenizer, smollm2_tokenizer_config):
    turns = reference_conversation(smollm2_reference, smollm2_tokenizer, smollm2_tokenizer_config, USER_TURNS)
    eos = smollm2_tokenizer_config["eos_token_id"]
    messages = []
    for number, (content, turn) in enumerate(zip(USER_TURNS, turns)):
        messages.append({"role": "user", "content": content})
        reply = client.chat.completions.create(model=model_id, messages=messages, temperature=0,
                                               max_tokens=MAX_NEW_TOKENS)
        answer = smollm2_tokenizer.decode([i for i in turn.greedy_ids if i != eos])
        assert reply.choices[0].message.content == answer
        assert reply.usage.completion_tokens == len(turn.greedy_ids)
        if number > 0:  # the cache holds the conversation so far: only this turn's new tokens are prefilled
            assert reply.usage.prompt_tokens - reply.usage.prompt_tokens_details.cached_tokens == len(turn.new_ids)
        messages.append({"role": "assistant", "content": answer})


@pytest.mark.parametrize("arguments, param", [
    ({"temperature": 3}, "temperature"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"extra_body": {"best_of": 2}}, "best_of"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
])
def test_bad_arguments_are_400s_that_name_the_parameter(client, model_id, arguments, param):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}], **arguments)
    assert raised.value.status_code == 400 and raised.value.param == param


def test_an_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.code == "model_not_found"


def test_a_request_past_the_context_window_is_refused(client, model_id, served):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=served[0].context_window_size)
    assert raised.value.code == "context_length_exceeded"


def test_bodies_over_the_limit_and_bad_json_are_refused(served):
    url = f"{served[1]}/v1/chat/completions"
    too_large = httpx.post(url, content=b'{"messages": "' + b"x" * (2 << 20) + b'"}')
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "request_too_large"
    not_json = httpx.post(url, content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"


def test_a_full_queue_answers_429_with_retry_after(client, model_id, served):
    model = served[0]
    holding = client.chat.completions.create(model=model_id, **ENDLESS)
    next(iter(holding))  # the only worker is generating
    queued = {}
    waiter = threading.Thread(target=lambda: queued.update(answer=client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "hi"}], temperature=0, max_tokens=2)))
    waiter.start()
    wait_until(lambda: model.waiting == 1, "the second request waits in the queue")
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert raised.value.response.headers["retry-after"] == "1"
    holding.close()
    waiter.join(ANSWER_TIMEOUT_S)
    assert queued["answer"].choices[0].finish_reason in ("stop", "length")


def test_a_client_that_disconnects_mid_stream_frees_the_worker(client, model_id, served):
    worker = served[0].workers[0]
    stream = client.chat.completions.create(model=model_id, **ENDLESS)
    chunks = iter(stream)
    next(chunks), next(chunks)
    assert worker.busy
    stream.close()
    wait_until(lambda: not worker.busy, "the worker is released")
    generated = len(worker.model.tokens) - len(served[0].tokenizer.chat_prompt_ids(ENDLESS["messages"]))
    again = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}],
                                           temperature=0, max_tokens=2)
    assert again.choices[0].finish_reason in ("stop", "length")
    assert generated < ENDLESS["max_tokens"] // 2  # the few steps made before the abort was seen


def test_the_command_serves_the_bundle_behind_an_api_key(default_compile):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "serve", "--bundles", str(default_compile.bundle.path.parent),
                               "--port", str(port), "--api-key", "secret"], env={**os.environ, "TABLLM_API_KEY": ""},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1/models"

        def answered():
            try:
                return httpx.get(url).status_code == 401
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read()
                return False

        wait_until(answered, "python -m serve answers")
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).json()["error"]["code"] == "invalid_api_key"
        listed = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="secret").models.list()
        assert [m.id for m in listed.data] == [f"smollm2-135m-instruct-{default_compile.bundle.manifest['quantization']}"]
    finally:
        server.terminate()
        server.wait(10)


def test_a_call_past_its_deadline_is_a_500_and_the_worker_gets_a_fresh_sandbox(default_compile, tmp_path_factory,
                                                                                  smollm2_greedy_case):
    # A 5 s deadline per call into the library: a 1,024-token prefill chunk takes ~18 s, a short prompt's < 1 s.
    model = ServedModel(default_compile.bundle, settings=SandboxSettings(
        call_timeout_s=5, cache_dir=tmp_path_factory.mktemp("compiled-modules")))
    first_sandbox = model.workers[0].model
    with BackgroundServer(create_app(model)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0,
                               timeout=ANSWER_TIMEOUT_S)
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model=model.id, max_tokens=1, messages=[
                {"role": "user", "content": "Repeat: " + "the quick brown fox " * 300}])
        assert "deadline" in raised.value.message
        wait_until(lambda: not model.workers[0].busy, "the worker is released")
        assert model.workers[0].model is not first_sandbox
        reply = client.chat.completions.create(model=model.id, messages=smollm2_greedy_case["messages"],
                                               temperature=0, max_tokens=32)
        assert reply.choices[0].message.content == reference_answer(smollm2_greedy_case)
