"""ASGI app: the chat page and the bundles directory it offers.

The page is a placeholder until the in-browser engine lands; it already lists the bundles the server has.
"""
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from compile.bundle import MANIFEST, Bundle, BundleError, load_bundle

DEFAULT_BUNDLES_DIR = Path("bundles")


def find_bundles(bundles_dir: Path) -> list[Bundle]:
    """Complete bundles only: a bundle's manifest is written last, and unfinished writes are dot-named."""
    if not bundles_dir.is_dir():
        return []
    bundles = []
    for path in sorted(bundles_dir.iterdir()):
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        try:
            bundles.append(load_bundle(path))
        except BundleError:
            continue  # unreadable manifest: not offered
    return bundles


def create_app(bundles_dir: Path = DEFAULT_BUNDLES_DIR) -> Starlette:
    templates = Environment(loader=PackageLoader("static_server"), autoescape=select_autoescape())

    async def index(request: Request) -> HTMLResponse:
        page = templates.get_template("index.html").render(bundles=find_bundles(bundles_dir))
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", index)])
