"""The official `openai` package on the engine: an HTTP client whose transport answers OpenAI's
POST /v1/chat/completions from the engine in this tab, as web/src/engine/openai-fetch.js does for the npm SDK.
Imported only when asked for (it needs the HTTP library that openai is built on):

    client = openai.AsyncOpenAI(base_url=tabllm.ENGINE_BASE_URL, api_key="local", http_client=tabllm.http_client())

A completion is JSON; with stream=True, server-sent events ("data: <chunk>", then "data: [DONE]"). Errors are
OpenAI's JSON with its HTTP status, which the SDK raises as its own exceptions (BadRequestError, ...); an error
after streaming began is an event {"error": ...}, which the SDK raises as APIError. Nothing goes over the network.
"""
from __future__ import annotations

import json
from typing import Any

from js import JSON, Object
from pyodide.ffi import JsException, to_js

from .errors import error_body, http_module, http_status

httpx = http_module()


class EngineTransport(httpx.AsyncBaseTransport):
    def __init__(self, engine: Any):
        self.engine = engine

    async def handle_async_request(self, request: Any) -> Any:
        path = request.url.path
        if request.method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            return _error(404, {"message": f"Unknown route {request.method} {path}: this engine serves POST "
                                "/v1/chat/completions", "type": "invalid_request_error", "param": None,
                                "code": "unknown_url"})
        body = json.loads(await request.aread())
        try:
            result = await self.engine.chat.completions.create(to_js(body, dict_converter=Object.fromEntries))
        except JsException as js_error:
            error = error_body(js_error)
            return _error(http_status(error), error)
        if not body.get("stream"):
            return httpx.Response(200, headers={"content-type": "application/json"}, content=JSON.stringify(result))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=EventStream(result))


class EventStream(httpx.AsyncByteStream):
    """The chunks as server-sent events; closing the response (the SDK's break or close) ends the generation."""

    def __init__(self, js_chunks: Any):
        self._chunks = js_chunks.__aiter__()

    async def __aiter__(self):
        try:
            async for chunk in self._chunks:
                yield _event(JSON.stringify(chunk))
        except JsException as js_error:
            yield _event(json.dumps({"error": error_body(js_error)}))
            return
        yield _event("[DONE]")

    async def aclose(self) -> None:
        await self._chunks.aclose()


def http_client(engine: Any) -> Any:
    """An httpx2.AsyncClient (httpx for openai < 3) for `openai.AsyncOpenAI(http_client=...)`."""
    return httpx.AsyncClient(transport=EngineTransport(engine))


def _event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def _error(status: int, body: dict) -> Any:
    return httpx.Response(status, json={"error": body})
