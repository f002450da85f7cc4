"""Clients over the page's engine (the JS Engine of web/src/engine, reached through Pyodide's FFI), shaped as the
OpenAI Python SDK's: `AsyncTabLLM` awaits the engine's promises; `TabLLM` blocks on them through JSPI
(`pyodide.ffi.run_sync`), where the browser has it."""
from __future__ import annotations

from typing import Any

from .errors import api_error, error_body
from .objects import ChatCompletion, ChatCompletionChunk

# The global the /python page (or any page) sets to its engine: `globalThis.tabllmEngine = await createEngine()`.
ENGINE_GLOBAL = "tabllmEngine"


async def connect(engine: Any = None) -> AsyncTabLLM:
    """An AsyncTabLLM over `engine` (default: the page's, globalThis.tabllmEngine) once it has a model loaded."""
    if engine is None:
        import js

        engine = getattr(js.globalThis, ENGINE_GLOBAL, None)
        if engine is None:
            raise RuntimeError(f"this page has no tabllm engine (globalThis.{ENGINE_GLOBAL}): open /python on the "
                               "tabllm server, or pass connect(engine=...)")
    if hasattr(engine, "then"):  # a page may publish a promise of the engine
        engine = await engine
    if not engine.device:  # JS null (jsnull): nothing loaded
        raise api_error({"message": "No model is loaded: pick one and press Load (or call engine.load(bundleUrl))",
                         "type": "invalid_request_error", "param": None, "code": "model_not_loaded"})
    return AsyncTabLLM(engine)


def _to_js(value: Any) -> Any:
    from js import Object
    from pyodide.ffi import to_js

    return to_js(value, dict_converter=Object.fromEntries)


async def _create(engine: Any, messages: list, params: dict[str, Any]) -> Any:
    """engine.chat.completions.create: the JS ChatCompletion, or the JS async iterable of chunks."""
    from pyodide.ffi import JsException

    request = {"messages": list(messages), **{key: value for key, value in params.items() if value is not None}}
    try:
        return await engine.chat.completions.create(_to_js(request))
    except JsException as error:
        raise api_error(error_body(error)) from None


class AsyncStream:
    """The chunks of a streamed completion (`async for`); leaving early (`aclose()`, `async with`) stops it."""

    def __init__(self, js_chunks: Any):
        self._chunks = js_chunks.__aiter__()
        self._done = False

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        from pyodide.ffi import JsException

        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._done = True
            raise
        except JsException as error:
            self._done = True
            raise api_error(error_body(error)) from None
        return ChatCompletionChunk(chunk.to_py())

    async def aclose(self) -> None:
        """Ends the generation: the engine's iterator, returned early, aborts it."""
        if not self._done:
            self._done = True
            await self._chunks.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


class AsyncCompletions:
    def __init__(self, engine: Any):
        self._engine = engine

    async def create(self, *, messages: list, stream: bool = False, **params: Any) -> ChatCompletion | AsyncStream:
        """OpenAI's parameters (model, max_tokens, temperature, seed, stop, response_format, tools, ...)."""
        result = await _create(self._engine, messages, {**params, "stream": stream or None})
        return AsyncStream(result) if stream else ChatCompletion(result.to_py())


class AsyncChat:
    def __init__(self, engine: Any):
        self.completions = AsyncCompletions(engine)


class AsyncTabLLM:
    """`await client.chat.completions.create(messages=..., stream=...)` on the engine, as openai.AsyncOpenAI."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.chat = AsyncChat(engine)


class Stream:
    """The chunks of a streamed completion, each waited for through JSPI; `close()` stops the generation."""

    def __init__(self, stream: AsyncStream):
        self._stream = stream

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            return _run_sync(self._stream.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        _run_sync(self._stream.aclose())

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class Completions:
    def __init__(self, engine: Any):
        self._async = AsyncCompletions(engine)

    def create(self, *, messages: list, stream: bool = False, **params: Any) -> ChatCompletion | Stream:
        result = _run_sync(self._async.create(messages=messages, stream=stream, **params))
        return Stream(result) if stream else result


class Chat:
    def __init__(self, engine: Any):
        self.completions = Completions(engine)


class TabLLM:
    """`client.chat.completions.create(...)` that blocks, as openai.OpenAI. It needs JSPI (Chrome 137+), and code
    run by Pyodide's runPythonAsync (the /python page's cells are)."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.chat = Chat(engine)


def _run_sync(awaitable: Any) -> Any:
    from pyodide.ffi import can_run_sync, run_sync

    if not can_run_sync():
        raise RuntimeError("the blocking client needs JSPI (WebAssembly stack switching), which this browser or call "
                           "path lacks: use AsyncTabLLM with await")
    return run_sync(awaitable)
