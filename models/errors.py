"""Errors of the models stage. Each message is one line that says what failed and what to do about it."""


class ModelError(Exception):
    """Base class: the CLI prints these as one line instead of a traceback."""


class UnknownModelError(ModelError, KeyError):
    # KeyError's str() wraps the message in quotes; keep the plain one-line message.
    def __str__(self) -> str:
        return str(self.args[0])


class ModelFetchError(ModelError):
    """The model file could not be had: pip failed, checksum mismatch, not enough disk space."""


class UnsupportedModelError(ModelError):
    """The GGUF file uses an architecture, quantization type or tokenizer this code does not handle."""


class DiskSpaceError(ModelError):
    """Not enough free disk space to write a file into the cache."""
