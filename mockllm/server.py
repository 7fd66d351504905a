"""Running the app under uvicorn: in the foreground (the CLI) or in a thread (tests)."""

from __future__ import annotations

import importlib.util
from typing import Any

import uvicorn

from .app import create_app
from .engine import Engine

__all__ = ["run", "uvicorn_config"]


def _fastest(name: str, fast: str) -> str:
    return fast if importlib.util.find_spec(fast) else "auto" if name == "loop" else "h11"


def uvicorn_config(app: Any, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False) -> uvicorn.Config:
    """uvicorn settings for speed: uvloop and httptools when installed, no access log."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=_fastest("loop", "uvloop"),
        http=_fastest("http", "httptools"),
        access_log=access_log,
        log_level="warning",
        lifespan="off",
    )


def run(engine: Engine, *, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False) -> None:
    """Serve `engine` until interrupted."""
    uvicorn.Server(uvicorn_config(create_app(engine), host, port, access_log)).run()
