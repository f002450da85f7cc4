"""Python in the tab: the /python page boots Pyodide from this server with every request outside 127.0.0.1
refused, installs the tabllm-browser wheel from its lock, and Python's chat completions (tabllm_browser's async
and blocking clients, and the official `openai` package over the adapter) give the JS engine's own greedy answer
on the real SmolLM2 bundle (on the CPU). Errors arrive as the OpenAI SDK's exceptions; the page's CSP holds.
One page (Pyodide booted, bundle loaded) is shared by the tests of this module, in order."""
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest

from harness.browser import STEP_TIMEOUT_MS, print_page_problems

ROOT = Path(__file__).resolve().parent.parent
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"messages": QUESTION, "temperature": 0, "max_tokens": 12}

# Recorded before any script of the page runs (an init script is not subject to the page's CSP).
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
"""


@pytest.fixture(scope="module")
def pyodide_dist(web_dist) -> Path:
    """web/dist/pyodide as `make setup` builds it (browser/build.py; the openai wheels are downloaded once)."""
    subprocess.run([sys.executable, str(ROOT / "browser" / "build.py")], check=True, capture_output=True)
    return web_dist / "pyodide"


@pytest.fixture(scope="module")
def python_page(webgpu_browser, site, pyodide_dist):
    """/python with Pyodide started and the default bundle loaded through the page's own picker (the CPU:
    SwiftShader is a software adapter); `page.refused` lists the requests refused for leaving 127.0.0.1."""
    url, _ = site
    context = webgpu_browser.new_context()
    refused = []

    def offline(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    print_page_problems(page)
    page.requested = []
    page.on("request", lambda request: page.requested.append(urlparse(request.url).path))
    page.refused = refused
    page.goto(f"{url}/python")
    page.evaluate("async () => { await window.tabllmPython; }")
    page.click("#load-button")
    page.wait_for_selector("#status:has-text('Ready:')")
    yield page
    context.close()


def python(page, code: str):
    """Runs `code` in the page's Python (top-level await) and returns its last expression, a JSON string, parsed."""
    return json.loads(page.evaluate("""async (code) => {
        const pyodide = await window.tabllmPython;
        await pyodide.loadPackagesFromImports(code);
        return await pyodide.runPythonAsync(code);
    }""", code))


@pytest.fixture(scope="module")
def js_greedy(python_page) -> dict:
    """The JS engine's own greedy completion of the question (no Python involved)."""
    return python_page.evaluate("(request) => window.tabllmEngine.chat.completions.create(request)", GREEDY)


def test_pyodide_boots_from_this_server_and_installs_the_wheel(python_page, pyodide_dist):
    lock = json.loads((pyodide_dist / "pyodide-lock.json").read_text())
    version = tomllib.loads((ROOT / "browser" / "pyproject.toml").read_text())["project"]["version"]
    installed = python(python_page, """
import importlib.metadata, json, sys, tabllm_browser
json.dumps([sys.platform, importlib.metadata.version("tabllm-browser"), tabllm_browser.__file__])""")
    assert installed[0] == "emscripten"
    assert installed[1] == version == lock["packages"]["tabllm-browser"]["version"]
    assert "site-packages/tabllm_browser/" in installed[2]
    assert "Pyodide 314.0.7" in python_page.text_content("#python-status")
    wheel = lock["packages"]["tabllm-browser"]["file_name"]
    for path in ("/pyodide/pyodide.mjs", "/pyodide/pyodide.asm.wasm", "/pyodide/python_stdlib.zip",
                 "/pyodide/pyodide-lock.json", f"/pyodide/{wheel}"):
        assert path in python_page.requested
    assert python_page.refused == []


def test_python_completion_is_the_js_engines_greedy_answer_streaming_and_not(python_page, js_greedy):
    answer = python(python_page, f"""
import json, tabllm_browser as tabllm
client = await tabllm.connect()
request = {GREEDY!r}
completion = await client.chat.completions.create(**request)
pieces, finish = [], None
async for chunk in await client.chat.completions.create(**request, stream=True):
    pieces.append(chunk.choices[0].delta.content or "")
    finish = chunk.choices[0].finish_reason or finish
json.dumps({{"type": type(completion).__name__, "content": completion.choices[0].message.content,
            "finish": completion.choices[0].finish_reason, "usage": completion.usage.model_dump(),
            "chunk": type(chunk).__name__, "streamed": "".join(pieces), "stream_finish": finish}})""")
    expected = js_greedy["choices"][0]["message"]["content"]
    assert expected  # the model answers something: an empty answer would make the comparisons vacuous
    assert answer["type"] == "ChatCompletion" and answer["chunk"] == "ChatCompletionChunk"
    assert answer["content"] == answer["streamed"] == expected
    assert answer["finish"] == answer["stream_finish"] == js_greedy["choices"][0]["finish_reason"]
    assert answer["usage"]["completion_tokens"] == js_greedy["usage"]["completion_tokens"]
    assert answer["usage"]["prompt_tokens"] == js_greedy["usage"]["prompt_tokens"]


def test_after_leaving_a_stream_early_the_blocking_client_answers_through_jspi(python_page, js_greedy):
    answer = python(python_page, f"""
import json, tabllm_browser as tabllm
client = await tabllm.connect()
stream = await client.chat.completions.create(messages={QUESTION!r}, temperature=0, max_tokens=200, stream=True)
async for chunk in stream:
    break
await stream.aclose()
blocking = tabllm.TabLLM(client.engine)
completion = blocking.chat.completions.create(**{GREEDY!r})
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in
                   blocking.chat.completions.create(**{GREEDY!r}, stream=True))
json.dumps([completion.choices[0].message.content, streamed])""")
    expected = js_greedy["choices"][0]["message"]["content"]
    assert answer == [expected, expected]


def test_engine_errors_are_the_sdks_exceptions_without_openai_installed(python_page):
    python_page.evaluate("""async () => {
        window.engineWithoutModel = await (await import("/static/engine.js")).createEngine();
    }""")
    errors = python(python_page, """
import js, json, sys, tabllm_browser as tabllm
client = await tabllm.connect()
assert "openai" not in sys.modules
caught = []
for bad in ({"temperature": 5}, {"max_tokens": 0}):
    try:
        await client.chat.completions.create(messages=[{"role": "user", "content": "Hi"}], **bad)
    except tabllm.BadRequestError as error:
        caught.append([type(error).__module__, error.status_code, error.code, error.param, error.message])
try:
    await tabllm.connect(js.engineWithoutModel)
except tabllm.NotFoundError as error:
    caught.append([type(error).__module__, error.status_code, error.code, error.param, error.message])
json.dumps(caught)""")
    assert [error[:4] for error in errors] == [["tabllm_browser.errors", 400, "invalid_value", "temperature"],
                                               ["tabllm_browser.errors", 400, "invalid_value", "max_tokens"],
                                               ["tabllm_browser.errors", 404, "model_not_loaded", None]]
    assert "temperature" in errors[0][4] and "max_tokens" in errors[1][4] and "press Load" in errors[2][4]


def test_the_openai_sdk_over_the_adapter_returns_a_chat_completion(python_page, js_greedy):
    answer = python(python_page, f"""
import json, openai, tabllm_browser as tabllm
client = await tabllm.connect()
sdk = openai.AsyncOpenAI(base_url=tabllm.ENGINE_BASE_URL, api_key="local", max_retries=0,
                         http_client=tabllm.http_client(client.engine))
request = {{"model": "smollm2-135m-instruct", **{GREEDY!r}}}
completion = await sdk.chat.completions.create(**request)
pieces = []
async for chunk in await sdk.chat.completions.create(**request, stream=True):
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
json.dumps({{"completion": isinstance(completion, openai.types.chat.ChatCompletion),
            "chunk": isinstance(chunk, openai.types.chat.ChatCompletionChunk), "version": openai.__version__,
            "content": completion.choices[0].message.content, "streamed": "".join(pieces),
            "completion_tokens": completion.usage.completion_tokens}})""")
    expected = js_greedy["choices"][0]["message"]["content"]
    assert answer["completion"] and answer["chunk"]
    assert answer["version"] == "3.57.0"  # the pinned wheel of browser/openai-wheels.txt
    assert answer["content"] == answer["streamed"] == expected
    assert answer["completion_tokens"] == js_greedy["usage"]["completion_tokens"]


def test_an_engine_error_surfaces_as_openais_bad_request_error(python_page):
    errors = python(python_page, """
import json, openai, tabllm_browser as tabllm
client = await tabllm.connect()
sdk = openai.AsyncOpenAI(base_url=tabllm.ENGINE_BASE_URL, api_key="local", max_retries=0,
                         http_client=tabllm.http_client(client.engine))
caught = []
for create in (sdk.chat.completions.create, client.chat.completions.create):
    try:
        await create(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}], temperature=5)
    except openai.BadRequestError as error:
        caught.append([error.status_code, error.code, error.param, error.response.json()["error"]["code"]])
json.dumps(caught)""")
    assert errors == [[400, "invalid_value", "temperature", "invalid_value"]] * 2


def test_the_code_cell_runs_python_against_the_loaded_model(python_page, js_greedy):
    python_page.fill("#code", f"""client = await tabllm.connect()
print("asking")
reply = await client.chat.completions.create(**{GREEDY!r})
reply.choices[0].message.content""")
    python_page.click("#run-button")
    python_page.wait_for_selector("#run-button:enabled")
    expected = js_greedy["choices"][0]["message"]["content"]
    assert python_page.text_content("#output").endswith(f"asking\n{expected!r}\n")  # printed, then the repr
    python_page.fill("#code", "1 / 0")
    python_page.click("#run-button")
    python_page.wait_for_selector("#output .output-error")
    traceback = python_page.text_content("#output .output-error")
    # from the cell's own frame on, without Pyodide's code runner
    assert traceback.splitlines()[:2] == ["Traceback (most recent call last):", '  File "<exec>", line 1, in <module>']
    assert traceback.endswith("ZeroDivisionError: division by zero\n")


def test_no_csp_violation_and_no_request_left_the_machine(python_page):
    assert python_page.evaluate("window.cspViolations") == []
    assert python_page.refused == []
