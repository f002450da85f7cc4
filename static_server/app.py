"""ASGI app: the chat page, the engine and page assets (web/dist) and the bundles of one directory.

Routes
  GET /                              the chat page, listing the bundles on offer
  GET /api/bundles                   JSON list of the bundles (id, model, quantization, context window, ...)
  GET /bundles/<bundle id>/<file>    a file of a bundle: Range, ETag/304, cached as immutable
  GET /bundles/<bundle id>/resolve/main/<file>   the same, at the path WebLLM appends to a model URL
  GET /static/<file>                 web/dist: engine.js, worker.js, chat.js, chat.css, python.js, ... and source maps
  GET /python                        a Python code cell (Pyodide) over the engine, with the same bundle picker
  GET /pyodide/<file>                web/dist/pyodide (browser/build.py): Pyodide's runtime, its lock and wheels
Errors are JSON: {"error": {"message", "type", "code"}}, with the security headers, whatever failed (unexpected
exceptions included). The server never writes to the bundles directory. Same-origin only, unless
create_app(cors_origin=ORIGIN) lets that one other origin read the responses (CORS).
"""
import logging
import os
import re
import stat
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .bundles import BundleDirectory
from .headers import SECURITY_HEADERS, JsonAndJsGZipMiddleware, SecurityHeadersMiddleware

log = logging.getLogger(__name__)

DEFAULT_BUNDLES_DIR = Path("bundles")
# An installed wheel carries web/dist as static_server/web (setup.py); a checkout serves web/dist itself.
PACKAGED_ASSETS_DIR = Path(__file__).resolve().parent / "web"
DEFAULT_ASSETS_DIR = (PACKAGED_ASSETS_DIR if PACKAGED_ASSETS_DIR.is_dir()
                      else Path(__file__).resolve().parent.parent / "web" / "dist")
# What `npm run build --prefix web` puts in web/dist and the page needs.
PAGE_ASSETS = ("chat.js", "chat.css", "engine.js", "worker.js")
# What /python needs: its page, the engine, and web/dist/pyodide, whose lock `python browser/build.py` writes last.
PYTHON_PAGE_ASSETS = ("python.js", "python.css", "engine.js", "worker.js", "pyodide/pyodide-lock.json")

# A bundle's URL holds its id, a hash of every file's content: a URL never changes meaning.
IMMUTABLE = "public, max-age=31536000, immutable"
# The page and web/dist change with each build under the same URL: always revalidate (cheap 304s).
REVALIDATE = "no-cache"

MEDIA_TYPES = {
    ".wasm": "application/wasm",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",  # Pyodide's modules: a module script needs a JavaScript type
    ".json": "application/json",
    ".map": "application/json",
    ".css": "text/css; charset=utf-8",
    ".bin": "application/octet-stream",
    ".txt": "text/plain; charset=utf-8",
    ".zip": "application/zip",
    ".whl": "application/zip",
}


def create_app(bundles_dir: Path = DEFAULT_BUNDLES_DIR, assets_dir: Path = DEFAULT_ASSETS_DIR,
               cors_origin: str | None = None) -> Starlette:
    bundles = BundleDirectory(bundles_dir)
    assets_dir = Path(assets_dir)
    templates = Environment(loader=PackageLoader("static_server"), autoescape=select_autoescape())

    def page(template: str, assets: tuple[str, ...]) -> HTMLResponse:
        html = templates.get_template(template).render(
            bundles=bundles.offered(),
            missing_assets=[name for name in assets if not (assets_dir / name).is_file()],
        )
        return HTMLResponse(html, headers={"Cache-Control": REVALIDATE})

    async def index(request: Request) -> HTMLResponse:
        return page("index.html", PAGE_ASSETS)

    async def python_page(request: Request) -> HTMLResponse:
        return page("python.html", PYTHON_PAGE_ASSETS)

    async def list_bundles(request: Request) -> JSONResponse:
        return JSONResponse([offered.summary() for offered in bundles.offered()],
                            headers={"Cache-Control": REVALIDATE})

    async def bundle_file(request: Request) -> Response:
        bundle_id, name = request.path_params["bundle_id"], request.path_params["name"]
        check_plain_file_name(name)
        offered = bundles.find(bundle_id)
        if offered is None:
            raise ApiError(404, "bundle_not_found",
                           f"no bundle with id {bundle_id!r} on this server; GET /api/bundles lists the bundles")
        if name not in offered.files():
            raise ApiError(404, "file_not_found", f"bundle {bundle_id} has no file {name!r}")
        path = offered.path_of(name)
        if path is None:
            log.warning("bundle %s: %s resolves outside the bundle directory; not served", bundle_id, name)
            raise ApiError(404, "file_not_found", f"bundle {bundle_id} has no file {name!r}")
        sha256 = offered.sha256(name)
        if sha256 is None:  # the manifest itself: holds a build timestamp, so not covered by the id
            return file_response(request, path, cache_control=REVALIDATE)
        return file_response(request, path, cache_control=IMMUTABLE, etag=f'"{sha256}"')

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        check_plain_file_name(name)
        return file_response(request, assets_dir / name, cache_control=REVALIDATE)

    async def pyodide_file(request: Request) -> Response:
        name = request.path_params["name"]
        check_plain_file_name(name)
        return file_response(request, assets_dir / "pyodide" / name, cache_control=REVALIDATE)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/bundles", list_bundles),
            Route("/bundles/{bundle_id}/resolve/main/{name:path}", bundle_file),  # before the next: it would refuse it
            Route("/bundles/{bundle_id}/{name:path}", bundle_file),
            Route("/static/{name:path}", static_file),
            Route("/python", python_page),
            Route("/pyodide/{name:path}", pyodide_file),
        ],
        middleware=[Middleware(SecurityHeadersMiddleware), Middleware(JsonAndJsGZipMiddleware)]
        + ([cors_middleware(cors_origin)] if cors_origin else []),
        exception_handlers={HTTPException: json_error, Exception: internal_error},
    )


def cors_middleware(origin: str) -> Middleware:
    """Lets `origin` read every response, as an app embedding a bundle from this server needs: GET and HEAD, with
    Range (a preflight answers for it), and the headers a resumable, verified download reads."""
    return Middleware(CORSMiddleware, allow_origins=[origin], allow_methods=["GET", "HEAD"], allow_headers=["Range"],
                      expose_headers=["Content-Length", "Content-Range", "Accept-Ranges", "ETag"])


class ApiError(HTTPException):
    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(status_code, detail=message, headers=headers)
        self.code = code


async def json_error(request: Request, error: HTTPException) -> JSONResponse:
    code = getattr(error, "code", None) or {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
    body = {"error": {"message": error.detail, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def internal_error(request: Request, error: Exception) -> JSONResponse:
    """Any unexpected exception. Starlette answers it outside the middleware stack, so the security headers are
    added here."""
    body = {"error": {"message": "internal server error", "type": "server_error", "code": "internal_error"}}
    return JSONResponse(body, status_code=500, headers=SECURITY_HEADERS)


def check_plain_file_name(name: str) -> None:
    """Bundles and web/dist are flat: anything but a plain file name is an attempt to leave the directory."""
    if not name or name != os.path.basename(name) or "\\" in name or "\0" in name or name.startswith("."):
        raise ApiError(400, "invalid_path", f"{name!r} is not a plain file name; files are served by name only")


def file_response(request: Request, path: Path, *, cache_control: str, etag: str | None = None) -> Response:
    """The file with Range support (FileResponse), or 304 when the client's copy is current."""
    try:
        file_stat = os.stat(path)
    except OSError:  # missing, a name too long for the file system, unreadable: none of them is a file to serve
        file_stat = None
    if file_stat is None or not stat.S_ISREG(file_stat.st_mode):
        raise ApiError(404, "file_not_found", f"no file {path.name!r} here")
    etag = etag or f'"{file_stat.st_mtime_ns:x}-{file_stat.st_size:x}"'
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    ranges = byte_ranges(request.headers.get("range"))
    if ranges is None:
        return WholeFileResponse(path, headers=headers, media_type=media_type, stat_result=file_stat)
    response = FileResponse(path, headers=headers, media_type=media_type, stat_result=file_stat)
    if_range = request.headers.get("if-range")
    honoured = if_range is None or if_range in (etag, response.headers.get("last-modified"))
    size = file_stat.st_size
    if ranges and honoured and any(start >= size for start in range_starts(ranges, size)):
        # FileResponse would answer this 416 in plain text: the same answer, in JSON
        raise ApiError(416, "range_not_satisfiable", f"{request.headers['range']!r} is not within the file's {size} bytes",
                       headers={"Content-Range": f"bytes */{size}"})
    return response


# RFC 9110 14.1.2: "bytes=" then comma-separated first-last, first- or -suffix_length ranges
BYTE_RANGE = r"\s*(\d+-\d*|-\d+)\s*"
BYTE_RANGES = re.compile(rf"bytes={BYTE_RANGE}(,{BYTE_RANGE})*")


def byte_ranges(header: str | None) -> list[tuple[str, str]] | None:
    """The (first, last) strings of a Range header ([] without one), or None for one to ignore (RFC 9110 14.2: the
    whole file, 200): malformed, a last byte before its first, or more ranges than FileResponse serves."""
    if header is None:
        return []
    if not BYTE_RANGES.fullmatch(header) or header.count(",") >= FileResponse.max_ranges:
        return None
    ranges = [tuple(part.strip().split("-")) for part in header.removeprefix("bytes=").split(",")]
    return None if any(first and last and int(last) < int(first) for first, last in ranges) else ranges


def range_starts(ranges: list[tuple[str, str]], size: int) -> list[int]:
    """Where each range starts in a file of `size` bytes ("-n": the last n bytes)."""
    return [int(first) if first else max(size - int(last), 0) for first, last in ranges]


class WholeFileResponse(FileResponse):
    """The whole file, as if the request had no Range header."""

    async def __call__(self, scope, receive, send):
        headers = [(key, value) for key, value in scope["headers"] if key.lower() != b"range"]
        await super().__call__({**scope, "headers": headers}, receive, send)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"x" matches "x" (RFC 9110 13.1.2)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))
