"""The engine's errors as the OpenAI Python SDK's exceptions. With `openai` installed they are its own classes
(`except openai.BadRequestError` works); without it, classes of the same names and attributes (message, body,
code, param, type, status_code) defined here.

The engine's error (a JS EngineError) carries OpenAI's error body {message, type, param, code}; the HTTP status
it stands for is the one web/src/engine/openai-fetch.js answers with: 404 when no model is loaded, 400 for a bad
request, 500 for the engine's own failures."""
from __future__ import annotations

import sys
from typing import Any

# Where the SDK's exceptions say the request went: nowhere on the network, the engine in this tab.
ENGINE_URL = "http://tabllm.engine/v1/chat/completions"


class OpenAIError(Exception):
    pass


class APIError(OpenAIError):
    def __init__(self, message: str, request: Any = None, *, body: object | None):
        super().__init__(message)
        self.message, self.request, self.body = message, request, body
        fields = body if isinstance(body, dict) else {}
        self.code, self.param, self.type = fields.get("code"), fields.get("param"), fields.get("type")


class APIStatusError(APIError):
    status_code: int

    def __init__(self, message: str, *, response: Any = None, body: object | None):
        super().__init__(message, getattr(response, "request", None), body=body)
        self.response = response
        self.request_id = None


class BadRequestError(APIStatusError):
    status_code = 400


class NotFoundError(APIStatusError):
    status_code = 404


class InternalServerError(APIStatusError):
    status_code = 500


class APIUserAbortError(APIError):
    def __init__(self, *, request: Any = None):
        super().__init__("Request was aborted.", request, body=None)


def http_status(body: dict) -> int:
    if body.get("code") == "model_not_loaded":
        return 404
    return 400 if body.get("type") == "invalid_request_error" else 500


def error_body(js_error: Any) -> dict:
    """OpenAI's error body of a JS error (a JsException): the engine's own, or one naming an unexpected error."""
    body = getattr(js_error, "body", None)
    if body is not None and hasattr(body, "to_py"):
        return body.to_py()
    return {"message": str(js_error), "type": "server_error", "param": None, "code": "internal_error"}


EXCEPTION_NAMES = ("OpenAIError", "APIError", "APIStatusError", "APIUserAbortError", "BadRequestError",
                   "NotFoundError", "InternalServerError")


def exception_classes() -> Any:
    """Where the exceptions come from: the `openai` package when installed, else this module."""
    try:
        import openai
    except ImportError:
        return sys.modules[__name__]
    return openai


def api_error(body: dict) -> Exception:
    """The SDK's exception for an engine error body."""
    classes = exception_classes()
    with_http = classes is not sys.modules[__name__]
    # openai's exceptions hold the request and the HTTP response they came with: the ones engineFetch would answer.
    request = http_module().Request("POST", ENGINE_URL) if with_http else None
    if body.get("code") == "request_aborted":
        return classes.APIUserAbortError(request=request)
    status = http_status(body)
    response = http_module().Response(status, request=request, json={"error": body}) if with_http else None
    cls = {400: classes.BadRequestError, 404: classes.NotFoundError}.get(status, classes.InternalServerError)
    return cls(body["message"], response=response, body=body)


def http_module() -> Any:
    """The HTTP library the installed `openai` is built on: httpx2 (openai 3), or httpx before it."""
    try:
        import httpx2
    except ImportError:
        import httpx as httpx2
    return httpx2
