"""The engine's answers as objects read the way the OpenAI Python SDK's are: attributes all the way down
(`completion.choices[0].message.content`, `chunk.choices[0].delta.content`, `completion.usage`), None for an
optional field the answer leaves out, and `model_dump()` for the plain dict."""
from __future__ import annotations

import json
from typing import Any


class Model:
    """A read-only attribute view of one JSON object of the answer."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _view(self._data.get(name))  # the SDK's optional fields read as None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other._data == self._data

    def model_dump(self) -> dict[str, Any]:
        return self._data

    def model_dump_json(self) -> str:
        return json.dumps(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"


class ChatCompletion(Model):
    __slots__ = ()


class ChatCompletionChunk(Model):
    __slots__ = ()


def _view(value: Any) -> Any:
    if isinstance(value, dict):
        return Model(value)
    if isinstance(value, list):
        return [_view(item) for item in value]
    return value
