"""The Starlette app that serves the chat page, the engine assets (web/dist) and the bundles."""
from .app import create_app

__all__ = ["create_app"]
