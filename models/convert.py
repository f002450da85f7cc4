"""GGUF -> float32 weights, cached as one .npy file per tensor and memory-mapped on later loads.

Dequantizing takes ≈4 s (most of it parsing the GGUF metadata); loading the cache takes ≈0.2 s. The cache is
keyed by the GGUF's sha256 and a format version, written to a temporary directory and renamed into place, so
a half-written cache is never read. Cached arrays are read-only (memory-mapped).
"""
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from models.cache import cache_root
from models.files import ensure_free_space, sha256_file
from models.llama import LlamaConfig, check_weights, dequantize_llama, hf_weight_shapes

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the conversion's output changes, so older caches are not reused


def fp32_cache_dir(gguf_sha256: str) -> Path:
    return cache_root() / "models" / "fp32" / f"{gguf_sha256}-v{FORMAT_VERSION}"


def load_fp32_model(gguf_path: Path) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    """The config and float32 weights (HF names and layout) of a GGUF file, converting it on first use."""
    cache = fp32_cache_dir(sha256_file(gguf_path))
    if cache.exists():
        try:
            return _read_cache(cache)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("fp32 cache %s is unreadable (%s); converting again", cache, e)
            shutil.rmtree(cache)
    start = time.perf_counter()
    config, weights = dequantize_llama(gguf_path)
    log.info("dequantized %s to float32 in %.1f s", gguf_path.name, time.perf_counter() - start)
    _write_cache(cache, config, weights)
    return _read_cache(cache)


def _write_cache(cache: Path, config: LlamaConfig, weights: dict[str, np.ndarray]) -> None:
    nbytes = sum(w.nbytes for w in weights.values())
    ensure_free_space(cache.parent, nbytes + (16 << 20), "the float32 weight cache")
    tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".partial-"))
    try:
        for name, w in weights.items():
            np.save(tmp / f"{name}.npy", w)
        (tmp / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
        try:
            tmp.rename(cache)
        except OSError:  # another process cached it first
            if not cache.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached float32 weights (%.0f MB) in %s", nbytes / 1e6, cache)


def _read_cache(cache: Path) -> tuple[LlamaConfig, dict[str, np.ndarray]]:
    config = LlamaConfig(**json.loads((cache / "config.json").read_text()))
    weights = {name: np.asarray(np.load(cache / f"{name}.npy", mmap_mode="r")) for name in hf_weight_shapes(config)}
    check_weights(config, weights)
    return config, weights
