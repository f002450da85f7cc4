"""tabllm's in-browser engine from Python in Pyodide, in the shapes of the OpenAI Python SDK.

    import tabllm_browser as tabllm
    client = await tabllm.connect()                    # the engine of this page (globalThis.tabllmEngine)
    reply = await client.chat.completions.create(messages=[{"role": "user", "content": "Hi"}])
    reply.choices[0].message.content
    async for chunk in await client.chat.completions.create(messages=..., stream=True):
        chunk.choices[0].delta.content

`TabLLM(client.engine)` is the blocking client (JSPI). Errors are the OpenAI SDK's exceptions (tabllm.BadRequestError,
...: openai's own classes when it is installed, classes of the same names and attributes when not). With `openai`,
`openai.AsyncOpenAI(base_url=tabllm.ENGINE_BASE_URL, api_key="local", http_client=tabllm.http_client(client.engine))`
runs the official SDK on the engine.
"""
from typing import Any

from .client import AsyncStream, AsyncTabLLM, Stream, TabLLM, connect
from .errors import ENGINE_URL, EXCEPTION_NAMES, exception_classes
from .objects import ChatCompletion, ChatCompletionChunk

ENGINE_BASE_URL = ENGINE_URL.removesuffix("/chat/completions")

__all__ = ["ENGINE_BASE_URL", "AsyncStream", "AsyncTabLLM", "ChatCompletion", "ChatCompletionChunk", "Stream", "TabLLM",
           "connect", "http_client", *EXCEPTION_NAMES]


def __getattr__(name: str) -> Any:
    """tabllm.BadRequestError and the other exceptions: openai's own when it is installed (what the clients
    raise), so `except tabllm.BadRequestError` and `except openai.BadRequestError` catch the same errors."""
    if name in EXCEPTION_NAMES:
        return getattr(exception_classes(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def http_client(engine: Any) -> Any:
    """An HTTP client for `openai.AsyncOpenAI(http_client=...)` that answers from `engine` (needs `openai`)."""
    from .openai_adapter import http_client as engine_http_client

    return engine_http_client(engine)
