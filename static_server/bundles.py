"""The bundles a server offers: complete, well-formed bundles in one directory, rescanned cheaply on every request.
A bundle that cannot be offered (malformed manifest, or an id another directory claims too) is logged and
skipped; the others are served as usual."""
import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from compile.bundle import CHAT_CONFIG, MANIFEST, Bundle, BundleError, bundle_id_of, load_bundle

log = logging.getLogger(__name__)
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class OfferedBundle:
    bundle: Bundle
    context_window_size: int | None  # from mlc-chat-config.json; None when the bundle does not say

    @property
    def bundle_id(self) -> str:
        return self.bundle.bundle_id

    @property
    def url(self) -> str:
        return f"/bundles/{self.bundle_id}/"

    def summary(self) -> dict:
        """The item of GET /api/bundles."""
        manifest = self.bundle.manifest
        return {
            "id": self.bundle_id,
            "model": manifest.get("model"),
            "quantization": manifest.get("quantization"),
            "context_window_size": self.context_window_size,
            "total_bytes": self.bundle.total_bytes,
            "created": manifest.get("created"),
            "url": self.url,
        }

    def path_of(self, name: str) -> Path | None:
        """Where `name` (a file the bundle serves) is on disk, with every symlink resolved; None when that is
        outside the bundle's directory (a symlink pointing elsewhere is never followed out of it)."""
        directory = os.path.realpath(self.bundle.path)
        target = os.path.realpath(self.bundle.path / name)
        return Path(target) if os.path.dirname(target) == directory else None

    def files(self) -> set[str]:
        """Every file name the bundle may serve: those its manifest lists, and the manifest itself."""
        return {entry["path"] for entry in self.bundle.manifest["files"]} | {MANIFEST}

    def sha256(self, name: str) -> str | None:
        return next((entry["sha256"] for entry in self.bundle.manifest["files"] if entry["path"] == name), None)


class BundleDirectory:
    """Complete bundles in `path`, in name order.

    A bundle's manifest is written last and unfinished writes are dot-named (`.name.partial-*`), so a
    directory counts once its manifest is there. Each call stats the manifests and re-reads only those that
    changed: bundles added, replaced or removed while the server runs show up on the next request.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._cache: dict[str, tuple[tuple, OfferedBundle | None]] = {}
        self._refused_ids: set[str] = set()  # claimed by several directories, as last logged

    def offered(self) -> list[OfferedBundle]:
        try:
            names = sorted(name for name in os.listdir(self.path) if not name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            names = []
        fresh = {}
        for name in names:
            try:
                stat = os.stat(self.path / name / MANIFEST)
            except (FileNotFoundError, NotADirectoryError):
                continue
            key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(name)
            fresh[name] = cached if cached and cached[0] == key else (key, _read_offered(self.path / name))
        self._cache = fresh
        readable = [offered for _, offered in fresh.values() if offered is not None]
        # An id names content: two directories claiming one id are a copy or a forgery, and which is right
        # cannot be told here. Neither is served.
        claims = Counter(offered.bundle_id for offered in readable)
        refused = {bundle_id for bundle_id, count in claims.items() if count > 1}
        if refused != self._refused_ids:
            for bundle_id in sorted(refused - self._refused_ids):
                directories = [str(o.bundle.path) for o in readable if o.bundle_id == bundle_id]
                log.warning("bundle id %s is claimed by %s: none of them is served", bundle_id, ", ".join(directories))
            self._refused_ids = refused
        return [offered for offered in readable if offered.bundle_id not in refused]

    def find(self, bundle_id: str) -> OfferedBundle | None:
        return next((offered for offered in self.offered() if offered.bundle_id == bundle_id), None)


def _read_offered(path: Path) -> OfferedBundle | None:
    try:
        bundle = load_bundle(path)
        _check_servable(bundle)
    except BundleError as error:
        log.warning("bundle %s is not served: %s", path, error)
        return None
    try:
        context_window_size = json.loads((path / CHAT_CONFIG).read_text(encoding="utf-8")).get("context_window_size")
    except (OSError, ValueError, AttributeError):
        context_window_size = None
    if not isinstance(context_window_size, int) or isinstance(context_window_size, bool):
        context_window_size = None
    return OfferedBundle(bundle, context_window_size)


def _check_servable(bundle: Bundle) -> None:
    """What the server reads from a manifest must be there and of the right type: every file entry a plain name
    with its size and sha256, the id the hash of that list, and the listing's fields valid JSON values (Python's
    json reads NaN and Infinity, which no JSON response may carry)."""
    manifest, where = bundle.manifest, bundle.path / MANIFEST
    files = manifest.get("files")
    if not isinstance(files, list):
        raise BundleError(f"{where}: files is not a list")
    for entry in files:
        ok = (isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"] == Path(entry["path"]).name
              and not entry["path"].startswith(".") and entry["path"] != MANIFEST
              and isinstance(entry.get("bytes"), int) and not isinstance(entry["bytes"], bool) and entry["bytes"] >= 0
              and isinstance(entry.get("sha256"), str) and SHA256.fullmatch(entry["sha256"]))
        if not ok:
            raise BundleError(f"{where}: malformed files entry {entry!r} (needs a plain path, bytes and sha256)")
    if len({entry["path"] for entry in files}) != len(files):
        raise BundleError(f"{where}: a file is listed twice")
    if not isinstance(bundle.bundle_id, str) or bundle.bundle_id != bundle_id_of(files):
        raise BundleError(f"{where}: bundle_id does not match the file list (edited? rebuild the bundle)")
    for key in ("model", "quantization"):
        if not isinstance(manifest.get(key), str):
            raise BundleError(f"{where}: {key} is {manifest.get(key)!r}, not a string")
    if not isinstance(manifest.get("created", ""), str):
        raise BundleError(f"{where}: created is {manifest['created']!r}, not a timestamp string")
