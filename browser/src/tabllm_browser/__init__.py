"""tabllm's in-browser engine from Python in Pyodide, in the shapes of the OpenAI Python SDK.

    import tabllm_browser as tabllm
    client = await tabllm.connect()                    # the engine of this page (globalThis.tabllmEngine)
    reply = await client.chat.completions.create(messages=[{"role": "user", "content": "Hi"}])
    reply.choices[0].message.content
    async for chunk in await client.chat.completions.create(messages=..., stream=True):
        chunk.choices[0].delta.content

`TabLLM(client.engine)` is the blocking client (JSPI). With the `openai` package installed,
`openai.AsyncOpenAI(base_url=tabllm.ENGINE_BASE_URL, api_key="local", http_client=tabllm.http_client(client.engine))`
runs the official SDK on the engine.
"""
from typing import Any

from .client import AsyncStream, AsyncTabLLM, Stream, TabLLM, connect
from .errors import (ENGINE_URL, APIError, APIStatusError, APIUserAbortError, BadRequestError, InternalServerError,
                     NotFoundError, OpenAIError)
from .objects import ChatCompletion, ChatCompletionChunk

ENGINE_BASE_URL = ENGINE_URL.removesuffix("/chat/completions")

__all__ = [
    "ENGINE_BASE_URL", "APIError", "APIStatusError", "APIUserAbortError", "AsyncStream", "AsyncTabLLM",
    "BadRequestError", "ChatCompletion", "ChatCompletionChunk", "InternalServerError", "NotFoundError",
    "OpenAIError", "Stream", "TabLLM", "connect", "http_client",
]


def http_client(engine: Any) -> Any:
    """An HTTP client for `openai.AsyncOpenAI(http_client=...)` that answers from `engine` (needs `openai`)."""
    from .openai_adapter import http_client as engine_http_client

    return engine_http_client(engine)
