"""What is fixed at compile time besides the architecture and its weights."""
from dataclasses import dataclass


@dataclass(frozen=True)
class CompileOptions:
    context_window_size: int = 4096
    prefill_chunk_size: int = 1024

    def __post_init__(self):
        if not 0 < self.prefill_chunk_size <= self.context_window_size:
            raise ValueError(
                f"prefill chunk size {self.prefill_chunk_size} must be in 1..context window "
                f"{self.context_window_size}"
            )
