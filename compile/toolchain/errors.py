"""The one error type of the toolchain: its message says what to install, delete or fix."""


class ToolchainError(RuntimeError):
    pass
