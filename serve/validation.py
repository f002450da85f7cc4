"""Validation of API requests, as the tab's engine validates chat.completions.create() (web/src/engine/request.js):
every error names the offending parameter (OpenAI's `param`) with the same message and code, and the result is a
normalized request the generation can trust. tests/fixtures/engine_cases.json holds cases both implementations
must answer alike. The server leaves out what the tab has and it has not ported yet (tools, response_format,
logprobs): such a request is refused with code "unsupported_parameter", never silently ignored."""
import json
import math
import re
from dataclasses import dataclass

from .sampling import SamplingParams

ROLES = ("system", "user", "assistant", "tool")
MAX_STOP_STRINGS = 4  # as OpenAI
MAX_CHOICES = 128  # as OpenAI
MIN_SAFE_INTEGER, MAX_SAFE_INTEGER = -(2 ** 53 - 1), 2 ** 53 - 1
COMMON = {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "frequency_penalty", "presence_penalty",
          "logit_bias", "n", "stream", "stream_options", "user"}
CHAT_KEYS = COMMON | {"messages", "max_completion_tokens"}
COMPLETION_KEYS = COMMON | {"prompt"}
# what the tab's engine supports and the server does not (yet): refused unless given as "off"
NOT_PORTED = {"tools": [], "tool_choice": "none", "response_format": {"type": "text"}, "logprobs": False,
              "top_logprobs": None, "echo": False}
COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


class APIError(Exception):
    """An OpenAI-shaped error: {"error": {message, type, param, code}} with an HTTP status."""

    def __init__(self, status: int, message: str, type_: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type_, param, code

    @property
    def body(self) -> dict:
        return {"message": str(self), "type": self.type, "param": self.param, "code": self.code}


class InvalidRequestError(APIError):
    def __init__(self, message: str, param: str | None, code: str = "invalid_value"):
        super().__init__(400, message, "invalid_request_error", param, code)


class ContextLengthExceededError(APIError):
    def __init__(self, message: str, param: str = "messages"):
        super().__init__(400, message, "invalid_request_error", param, "context_length_exceeded")


@dataclass
class NormalizedRequest:
    messages: list[dict] | None  # a chat's messages, or None for a completion
    prompt: str | None  # a completion's prompt
    max_tokens: int | None
    sampling: SamplingParams
    seed: int | None
    stop: list[str]
    n: int
    stream: bool
    include_usage: bool
    model: str | None


def validate_chat_request(request, model_defaults: dict) -> NormalizedRequest:
    """`model_defaults`: vocab_size, temperature and top_p of the model (mlc-chat-config.json)."""
    _check_keys(request, CHAT_KEYS)
    given = _given(request)
    if given("max_tokens") and given("max_completion_tokens") and request["max_tokens"] != request["max_completion_tokens"]:
        raise InvalidRequestError("Give max_completion_tokens or max_tokens (deprecated), not two different values",
                                  "max_completion_tokens")
    max_tokens_key = "max_completion_tokens" if given("max_completion_tokens") else "max_tokens"
    return _normalized(request, model_defaults, messages=validate_messages(request.get("messages")), prompt=None,
                       max_tokens=_integer(request[max_tokens_key], max_tokens_key, 1) if given(max_tokens_key) else None)


def validate_completion_request(request, model_defaults: dict) -> NormalizedRequest:
    _check_keys(request, COMPLETION_KEYS)
    prompt = request.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or prompt == "":
        raise InvalidRequestError("prompt must be a non-empty string", "prompt",
                                  "missing_required_parameter" if "prompt" not in request else "invalid_value")
    given = _given(request)
    return _normalized(request, model_defaults, messages=None, prompt=prompt,
                       max_tokens=_integer(request["max_tokens"], "max_tokens", 1) if given("max_tokens")
                       else COMPLETION_MAX_TOKENS)


def _given(request):
    return lambda key: request.get(key) is not None


def _check_keys(request, known: set[str]) -> None:
    if not isinstance(request, dict):
        raise InvalidRequestError("The request must be an object", None)
    for key, value in request.items():
        if key in NOT_PORTED:
            if value is None or value == NOT_PORTED[key]:
                continue
            raise InvalidRequestError(f"'{key}' is not supported by this server yet (the in-tab engine has it)", key,
                                      "unsupported_parameter")
        if key not in known:
            raise InvalidRequestError(f"Unsupported parameter: '{key}'", key, "unsupported_parameter")


def _normalized(request, defaults: dict, *, messages, prompt, max_tokens) -> NormalizedRequest:
    given = _given(request)
    if given("model") and not isinstance(request["model"], str):
        raise InvalidRequestError("model must be a string", "model")
    stream = _boolean(request["stream"], "stream") if given("stream") else False
    if given("stream_options") and not stream:
        raise InvalidRequestError("stream_options is only allowed when stream is true", "stream_options")
    return NormalizedRequest(
        messages=messages, prompt=prompt, max_tokens=max_tokens,
        sampling=SamplingParams(
            temperature=_number(request["temperature"], "temperature", 0, 2) if given("temperature")
            else defaults["temperature"],
            top_p=_number(request["top_p"], "top_p", 0, 1) if given("top_p") else defaults["top_p"],
            frequency_penalty=_number(request["frequency_penalty"], "frequency_penalty", -2, 2)
            if given("frequency_penalty") else 0.0,
            presence_penalty=_number(request["presence_penalty"], "presence_penalty", -2, 2)
            if given("presence_penalty") else 0.0,
            logit_bias=_logit_bias(request["logit_bias"], defaults["vocab_size"]) if given("logit_bias") else [],
        ),
        seed=_integer(request["seed"], "seed", MIN_SAFE_INTEGER) if given("seed") else None,
        stop=_stop_strings(request["stop"]) if given("stop") else [],
        n=_integer_in(request["n"], "n", 1, MAX_CHOICES) if given("n") else 1,
        stream=stream,
        include_usage=_include_usage(request["stream_options"]) if given("stream_options") else False,
        model=request.get("model"),
    )


def validate_messages(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise InvalidRequestError("messages must be a non-empty array of {role, content}", "messages",
                                  "missing_required_parameter" if value is None else "invalid_value")
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object", where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequestError(f"{where}.role must be one of {', '.join(ROLES)} (got {_json(role)})",
                                      f"{where}.role")
        if role == "tool" or message.get("tool_calls") is not None:
            raise InvalidRequestError(f"{where}: tool calls are not supported by this server yet (the in-tab engine "
                                      "has them)", f"{where}.role" if role == "tool" else f"{where}.tool_calls",
                                      "unsupported_parameter")
        messages.append({"role": role, "content": _message_text(message.get("content"), f"{where}.content")})
    return messages


def _message_text(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise InvalidRequestError(f"{where}[{j}] must be a {{type: \"text\", text}} part: this model reads "
                                          "text only", f"{where}[{j}]")
            parts.append(part["text"])
        return "".join(parts)
    raise InvalidRequestError(f"{where} must be a string or an array of text parts", where)


def _stop_strings(value) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > MAX_STOP_STRINGS or any(not isinstance(s, str) or s == ""
                                                                            for s in stops):
        raise InvalidRequestError(f"stop must be a non-empty string or a list of at most {MAX_STOP_STRINGS} of them",
                                  "stop")
    return stops


def _logit_bias(value, vocab_size: int) -> list[tuple[int, float]]:
    if not isinstance(value, dict):
        raise InvalidRequestError("logit_bias must be an object mapping token ids to biases", "logit_bias")
    pairs = []
    for key, bias in value.items():
        if not re.fullmatch(r"\d+", key) or int(key) >= vocab_size:
            raise InvalidRequestError(f"logit_bias: {_json(key)} is not a token id (0..{vocab_size - 1})",
                                      "logit_bias")
        pairs.append((int(key), _number(bias, f"logit_bias.{key}", -100, 100)))
    return pairs


def _include_usage(value) -> bool:
    if not isinstance(value, dict):
        raise InvalidRequestError("stream_options must be an object", "stream_options")
    for key in value:
        if key != "include_usage":
            raise InvalidRequestError(f"Unsupported parameter: 'stream_options.{key}'", f"stream_options.{key}",
                                      "unsupported_parameter")
    return False if value.get("include_usage") is None else _boolean(value["include_usage"],
                                                                       "stream_options.include_usage")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value, param: str, low: float, high: float) -> float:
    if not _is_number(value) or not math.isfinite(value) or not low <= value <= high:
        raise InvalidRequestError(f"{param} must be a number from {_js_number(low)} to {_js_number(high)} "
                                  f"(got {_json(value)})", param)
    return float(value)


def _is_safe_integer(value) -> bool:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def _integer(value, param: str, low: int) -> int:
    if not _is_safe_integer(value) or value < low:
        wanted = "a (safe) integer" if low == MIN_SAFE_INTEGER else f"an integer >= {low}"
        raise InvalidRequestError(f"{param} must be {wanted} (got {_json(value)})", param)
    return int(value)


def _integer_in(value, param: str, low: int, high: int) -> int:
    if not _is_safe_integer(value) or not low <= value <= high:
        raise InvalidRequestError(f"{param} must be an integer from {low} to {high} (got {_json(value)})", param)
    return int(value)


def _boolean(value, param: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{param} must be true or false", param)
    return value


def _js_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _json(value) -> str:
    """JSON.stringify's text of a value, as the tab's messages quote it."""
    if value is None:
        return "null"
    if _is_number(value) and float(value).is_integer() and not isinstance(value, bool):
        return str(int(value))
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
