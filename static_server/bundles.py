"""The bundles a server offers: complete bundles in one directory, rescanned cheaply on every request."""
import json
import os
from dataclasses import dataclass
from pathlib import Path

from compile.bundle import CHAT_CONFIG, MANIFEST, Bundle, BundleError, load_bundle


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
        return [offered for _, offered in fresh.values() if offered is not None]

    def find(self, bundle_id: str) -> OfferedBundle | None:
        return next((offered for offered in self.offered() if offered.bundle_id == bundle_id), None)


def _read_offered(path: Path) -> OfferedBundle | None:
    try:
        bundle = load_bundle(path)
    except BundleError:
        return None  # unreadable manifest: not offered
    try:
        context_window_size = json.loads((path / CHAT_CONFIG).read_text(encoding="utf-8")).get("context_window_size")
    except (OSError, ValueError, AttributeError):
        context_window_size = None
    return OfferedBundle(bundle, context_window_size)
