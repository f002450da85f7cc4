"""File helpers shared by fetching and weight caching: sha256, free-space checks."""
import hashlib
import shutil
from pathlib import Path

from models.errors import DiskSpaceError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_free_space(directory: Path, needed_bytes: int, purpose: str) -> None:
    """Fail before writing rather than half way through with a truncated file."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise DiskSpaceError(
            f"not enough disk space for {purpose}: need {needed_bytes / 1e6:.0f} MB in {directory}, "
            f"only {free / 1e6:.0f} MB free (free some space or set TABLLM_CACHE_DIR to another disk)"
        )
