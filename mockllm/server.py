"""Running the app under uvicorn: in the foreground (the CLI) or in a thread (tests)."""

from __future__ import annotations

import importlib.util
from typing import Any

import uvicorn

from .app import create_app
from .engine import Engine

__all__ = ["BackgroundServer", "run", "uvicorn_config"]


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


class BackgroundServer:
    """uvicorn in a daemon thread on a loopback port; for tests and the pytest plugin.

    `namespaces` maps a name to an Engine served under `/ns/{name}/v1`, so one server
    can give every test its own rules, sequences and journal.
    """

    def __init__(self, engine: Engine | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        import socket

        self.engine = engine or Engine()
        self.namespaces: dict[str, Engine] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn_config(create_app(self.engine, self.namespaces), host, self.port))
        self._thread: Any = None

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT (add /v1 for OpenAI clients)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        import threading
        import time

        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mockllm: the background server did not start")
            time.sleep(0.001)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
