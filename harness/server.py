"""Serving an ASGI app with uvicorn on a free 127.0.0.1 port from a background thread, for browser tests."""
import socket
import threading
import time

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackgroundServer:
    """A real HTTP server (uvicorn) for the lifetime of a `with` block; `url` is its base URL."""

    def __init__(self, app, startup_timeout_s: float = 20.0):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._startup_timeout_s = startup_timeout_s

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self._server.should_exit = True
        self._thread.join(timeout=10)


class RequestLog:
    """ASGI middleware recording the paths the browser fetched under /bundles/ (worker requests included): the
    network log of the bundle files, seen from the server."""

    def __init__(self, app):
        self.app, self.paths = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/bundles/"):
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)

    def take(self) -> list[str]:
        paths, self.paths = self.paths, []
        return sorted(paths)
