"""The user cache directory shared by every stage (fetched packages, converted weights, built runtimes)."""
import os
from pathlib import Path


def cache_root() -> Path:
    """$TABLLM_CACHE_DIR, else $XDG_CACHE_HOME/tabllm, else ~/.cache/tabllm."""
    explicit = os.environ.get("TABLLM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tabllm"
