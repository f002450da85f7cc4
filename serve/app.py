"""OpenAI's HTTP API over a bundle's CPU library in wasmtime sandboxes.

Routes
  POST /v1/chat/completions   chat (JSON, or server-sent events with stream: true)
  POST /v1/completions        raw text completion (the prompt is tokenized as given, special tokens included,
                              after the BOS token where the model wants one); the only route of a base model
                              (no chat template), whose chat requests get 400 model_not_chat
  GET  /v1/models             the served model
Errors are OpenAI's JSON ({"error": {message, type, param, code}}) with its status: 400 bad arguments or context
exceeded, 401 wrong API key, 404 unknown model or route, 413 body too large, 429 queue full (with Retry-After),
500 the library failed. An error after a stream began is an event {"error": ...}, which the SDK raises.
A client that disconnects aborts its generation; the worker is free again after the current step.
"""
import asyncio
import json
import logging
import secrets
import threading
import time
import uuid

import jinja2
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .generation import Job, generate
from .sampling import seeded_random
from .validation import (APIError, ContextLengthExceededError, InvalidRequestError, NormalizedRequest,
                         validate_chat_request, validate_completion_request)
from .workers import QueueFull, ServedModel

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
RETRY_AFTER_S = 1
DONE = object()


def create_app(model: ServedModel, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Starlette:
    async def chat_completions(request: Request) -> Response:
        return await handle(request, "chat")

    async def completions(request: Request) -> Response:
        return await handle(request, "text")

    async def models(request: Request) -> Response:
        refused = check_key(request)
        if refused:
            return refused
        return JSONResponse({"object": "list", "data": [
            {"id": model.id, "object": "model", "created": model.created, "owned_by": "tabllm"}]})

    def check_key(request: Request) -> Response | None:
        if api_key is None:
            return None
        given = request.headers.get("authorization", "")
        if secrets.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return None
        return error_response(APIError(401, "Incorrect API key provided (send Authorization: Bearer <key>)",
                                       "invalid_request_error", None, "invalid_api_key"))

    async def handle(request: Request, kind: str) -> Response:
        refused = check_key(request)
        if refused:
            return refused
        try:
            body = await read_json(request, max_body_bytes)
            normalized = (validate_chat_request if kind == "chat" else validate_completion_request)(body, model.defaults)
            if normalized.model is not None and normalized.model != model.id:
                raise APIError(404, f"The model '{normalized.model}' does not exist; this server serves '{model.id}'",
                               "invalid_request_error", "model", "model_not_found")
            prompt_ids = (chat_prompt_ids(model, normalized.messages) if kind == "chat"
                          else model.tokenizer.encode_text(normalized.prompt))
            room = model.context_window_size - len(prompt_ids)
            if room < 1 or (normalized.max_tokens is not None and normalized.max_tokens > room):
                asked = "" if normalized.max_tokens is None else f" and max_tokens asks for {normalized.max_tokens} more"
                raise ContextLengthExceededError(
                    f"This model's context window is {model.context_window_size} tokens; the "
                    f"{'messages take' if kind == 'chat' else 'prompt takes'} {len(prompt_ids)}{asked}. "
                    f"Shorten the {'messages' if kind == 'chat' else 'prompt'} or lower max_tokens.",
                    "messages" if kind == "chat" else "prompt")
            worker = await model.acquire(prompt_ids)
        except APIError as error:
            return error_response(error)
        except QueueFull:
            response = error_response(APIError(429, "The server is busy: every worker is generating and the queue "
                                               "is full; retry later", "rate_limit_error", None, "queue_full"))
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        run = Run(model, worker, normalized, prompt_ids, room, kind)
        run.start()
        if normalized.stream:
            return StreamingResponse(run.events(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        watcher = asyncio.create_task(abort_on_disconnect(request, run))
        try:
            return await run.collect()
        finally:
            watcher.cancel()

    async def not_found(request: Request, exc) -> Response:
        return error_response(APIError(404, f"Unknown route {request.method} {request.url.path}", "invalid_request_error",
                                       None, "unknown_url"))

    async def method_not_allowed(request: Request, exc) -> Response:
        return error_response(APIError(405, f"{request.method} {request.url.path}: method not allowed",
                                       "invalid_request_error", None, "method_not_allowed"))

    return Starlette(routes=[
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ], exception_handlers={404: not_found, 405: method_not_allowed})


def chat_prompt_ids(model: ServedModel, messages: list[dict]) -> list[int]:
    if not model.tokenizer.has_chat_template:
        raise InvalidRequestError(f"{model.id} has no chat template (it is a base model, not a chat model): continue "
                                  "a text with POST /v1/completions instead", "messages", "model_not_chat")
    try:
        return model.tokenizer.chat_prompt_ids(messages)
    except jinja2.TemplateError as error:  # the template's raise_exception: e.g. roles out of order
        raise InvalidRequestError(f"The model's chat template refused these messages: {error}", "messages") from None


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse({"error": error.body}, status_code=error.status)


async def read_json(request: Request, limit: int):
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is larger than {limit} bytes", "invalid_request_error", None,
                       "request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise APIError(413, f"The request body is larger than {limit} bytes", "invalid_request_error", None,
                           "request_too_large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("The request body is not valid JSON", None, "invalid_json") from None


async def abort_on_disconnect(request: Request, run: "Run") -> None:
    """The body is read: the next message the server receives for this request is the client's disconnect."""
    try:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    except ClientDisconnect:
        pass
    run.abort.set()


class Run:
    """One request's generation on its worker's thread; its chunks (OpenAI objects) reach the event loop through a
    queue. The worker is released when the thread ends, whether the client is still there or not."""

    def __init__(self, model: ServedModel, worker, request: NormalizedRequest, prompt_ids: list[int], room: int,
                 kind: str):
        self.model, self.worker, self.request, self.prompt_ids, self.room, self.kind = (
            model, worker, request, prompt_ids, room, kind)
        self.abort = threading.Event()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        self.meta = {"id": f"{prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": model.id}
        self.object = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def start(self) -> None:
        thread_done = self.loop.run_in_executor(self.model.generation_threads, self._generate)
        thread_done.add_done_callback(lambda _: asyncio.ensure_future(self.model.release(self.worker)))

    def _send(self, item) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _chunk(self, index: int, text: str, finish_reason: str | None = None) -> dict:
        if self.kind == "chat":
            choice = {"index": index, "delta": {"content": text} if text else {}, "logprobs": None,
                      "finish_reason": finish_reason}
        else:
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return {**self.meta, "object": self.object, "choices": [choice]}

    def _on_choice(self, index: int) -> None:
        if self.kind == "chat":  # a chat's first delta gives the role, as OpenAI's
            self._send({**self.meta, "object": self.object, "choices": [
                {"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]})

    def _generate(self) -> None:
        request, model = self.request, self.model
        try:
            result = generate(self.worker.model, Job(
                prompt_ids=self.prompt_ids, n=request.n,
                max_tokens=request.max_tokens if request.max_tokens is not None else self.room,
                sampling=request.sampling,
                random=seeded_random(request.seed if request.seed is not None else secrets.randbits(32)),
                stop_token_ids=model.stop_token_ids,
                stop_strings=[*request.stop, *model.stop_strings],
                decode_text=model.tokenizer.decode,
                is_aborted=self.abort.is_set,
                on_choice=self._on_choice,
                on_text=lambda text, index: self._send(self._chunk(index, text)),
                on_finish=lambda reason, index: self._send(self._chunk(index, "", reason)),
            ))
            self._send({**self.meta, "object": self.object, "choices": [], "usage": result.usage()})
        except Exception as error:  # the library failed: the client gets a 500, the worker a fresh sandbox
            log.exception("generation failed")
            self._send(APIError(500, f"The model failed: {error}", "server_error", None, "internal_error"))
            self.model.recover(self.worker, error)
        finally:
            self._send(DONE)

    async def events(self):
        """Server-sent events: each chunk, then [DONE]; the usage chunk only with stream_options.include_usage."""
        try:
            while (item := await self.queue.get()) is not DONE:
                if isinstance(item, APIError):
                    yield f"data: {json.dumps({'error': item.body})}\n\n"
                    return
                if "usage" in item and not self.request.include_usage:
                    continue
                yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self.abort.set()  # the client went away (or the stream ended): stop generating

    async def collect(self) -> Response:
        """The whole completion as one JSON object, each choice's text joined."""
        choices: dict[int, dict] = {}
        usage = None
        while (item := await self.queue.get()) is not DONE:
            if isinstance(item, APIError):
                return error_response(item)
            if "usage" in item:
                usage = item["usage"]
                continue
            for part in item["choices"]:
                choice = choices.setdefault(part["index"], {"index": part["index"], "text": "",
                                                            "finish_reason": None})
                choice["text"] += part["delta"].get("content", "") if self.kind == "chat" else part["text"]
                choice["finish_reason"] = part["finish_reason"] or choice["finish_reason"]
        ordered = [choices[i] for i in sorted(choices)]
        if self.kind == "chat":
            body_choices = [{"index": c["index"], "message": {"role": "assistant", "content": c["text"]},
                             "logprobs": None, "finish_reason": c["finish_reason"]} for c in ordered]
            kind = "chat.completion"
        else:
            body_choices = [{**c, "logprobs": None} for c in ordered]
            kind = "text_completion"
        return JSONResponse({**self.meta, "object": kind, "choices": body_choices, "usage": usage})
