"""Open a GGUF file and read its metadata values, with one-line errors for files that are not GGUF."""
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFReader, GGUFValueType

from models.errors import ModelError

_REQUIRED = object()


def open_gguf(path: Path) -> GGUFReader:
    try:
        return GGUFReader(path)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"cannot read {path} as a GGUF file: {e}") from None


def gguf_value(reader: GGUFReader, key: str, default: Any = _REQUIRED) -> Any:
    """The Python value (int, float, bool, str or list) of a metadata key.

    float32 values come back as their shortest decimal form (1e-05, not 9.999999747378752e-06), as in HF configs.
    """
    field = reader.fields.get(key)
    if field is None:
        if default is _REQUIRED:
            raise ModelError(f"{Path(reader.data.filename).name}: GGUF metadata has no {key!r}")
        return default
    if field.types == [GGUFValueType.FLOAT32]:
        return float(str(np.float32(field.contents())))
    return field.contents()
