"""Response headers every route shares: cross-origin isolation, the Content-Security-Policy, selective gzip."""
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# What the chat page needs and nothing more: its own scripts and styles, a module Web Worker, fetches of
# bundles from this server, WebAssembly compilation (tvmjs instantiates the model library and the
# tokenizer), and the data: favicon. No inline script or style, no plugins, no framing, no form posts.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "worker-src 'self'",
    "connect-src 'self'",
    "style-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

# COOP + COEP make the page cross-origin isolated (SharedArrayBuffer for WASM threads). They go on every
# response: a Worker's script needs COEP too, and a Worker's CSP is the one sent with its script.
SECURITY_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

COMPRESSIBLE_SUFFIXES = (".js", ".mjs", ".json", ".map")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class JsonAndJsGZipMiddleware:
    """gzip for JSON and JavaScript only: shards and wasm are served as stored, so Range offsets stay byte
    offsets of the file and large downloads cost no server CPU."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.gzip = GZipMiddleware(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/api/") or path.endswith(COMPRESSIBLE_SUFFIXES):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
