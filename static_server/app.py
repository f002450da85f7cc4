"""ASGI app: the chat page and the bundles directory it offers.

The page is a placeholder until the in-browser engine lands; it already lists the bundles the server has.
"""
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

DEFAULT_BUNDLES_DIR = Path("bundles")


def find_bundles(bundles_dir: Path) -> list[str]:
    """Bundle directories are the ones holding an mlc-chat-config.json."""
    if not bundles_dir.is_dir():
        return []
    return sorted(p.parent.name for p in bundles_dir.glob("*/mlc-chat-config.json"))


def create_app(bundles_dir: Path = DEFAULT_BUNDLES_DIR) -> Starlette:
    templates = Environment(loader=PackageLoader("static_server"), autoescape=select_autoescape())

    async def index(request: Request) -> HTMLResponse:
        page = templates.get_template("index.html").render(bundles=find_bundles(bundles_dir))
        return HTMLResponse(page)

    return Starlette(routes=[Route("/", index)])
