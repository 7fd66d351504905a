"""Running the app under uvicorn: in the foreground (the CLI) or in a thread (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import signal
import socket
import threading
from typing import Any

import uvicorn

from .app import create_app
from .engine import Engine
from .protocol import OneWriteProtocol, available

__all__ = ["DEFAULT_SHUTDOWN_GRACE", "BackgroundServer", "listen", "run", "uvicorn_config"]

# Seconds the streams in flight at SIGTERM or SIGINT may take to finish before they are cut: long
# enough for a test's answers to end, short enough for a container's stop (Docker kills at 10 s).
DEFAULT_SHUTDOWN_GRACE = 5.0


def _fastest(name: str, fast: str) -> str:
    return fast if importlib.util.find_spec(fast) else "auto" if name == "loop" else "h11"


def uvicorn_config(
    app: Any, host: str = "127.0.0.1", port: int = 8000, access_log: bool = False, *, one_write: bool = True
) -> uvicorn.Config:
    """uvicorn settings for speed: uvloop and httptools when installed, no access log, and
    (`one_write`) httptools' protocol sending each whole answer in one write (mockllm.protocol)."""
    http: Any = _fastest("http", "httptools")
    if one_write and http == "httptools" and available():
        http = OneWriteProtocol
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop=_fastest("loop", "uvloop"),
        http=http,
        access_log=access_log,
        log_level="info" if access_log else "warning",  # the access lines are INFO records
        # No proxy stands in front of a fake on loopback, and nothing here reads the client's address:
        # uvicorn's X-Forwarded-* middleware would only cost time on every request.
        proxy_headers=False,
        lifespan="off",
    )


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket listening on host:port (port 0 picks a free one), so the real port is known.

    It listens at once, before the server starts: a client that connects as soon as the URL is
    printed waits in the backlog instead of being refused (the server takes it when it starts)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError:
        sock.close()
        raise
    return sock


def run(
    engine: Engine,
    sock: socket.socket,
    *,
    access_log: bool = False,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
    admin_token: str | None = None,
) -> None:
    """Serve `engine` on a bound socket (see `listen`) until SIGINT or SIGTERM, then return.

    At the first signal it stops listening, closes idle connections, and gives the answers in
    flight `shutdown_grace` seconds to end; then it ends the streams still going where they stand
    (their bodies closed: a client reads a shorter stream, not a cut, nor a hang). A second signal
    ends the process at once, by that signal's default action. uvicorn's own handling would wait
    for every stream without end, and on a second Ctrl-C print a CancelledError traceback per stream.

    The control plane (/_mockllm) answers on loopback; bound beyond it, only with `admin_token`.
    """
    host, port = sock.getsockname()[:2]
    config = uvicorn_config(create_app(engine, host=host, admin_token=admin_token), host, port, access_log)
    config.load()
    server = uvicorn.Server(config)
    # What is loaded by now (modules, scenario models) lives as long as the process: keep the
    # collector from walking it again in a full collection, a pause of tens of milliseconds
    # that would hit every stream in flight at once (and their timing).
    gc.freeze()
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(_serve_until_signal(server, sock, shutdown_grace))


async def _serve_until_signal(server: uvicorn.Server, sock: socket.socket, grace: float) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)

    def first_signal() -> None:
        stopping.set()
        # The next one gets the default action from the kernel, which ends the process at once
        # and silently, even if the loop is busy and would never run a handler of ours.
        for sig in signals:
            signal.signal(sig, signal.SIG_DFL)

    for sig in signals:
        loop.add_signal_handler(sig, first_signal)
    server.lifespan = server.config.lifespan_class(server.config)
    await server.startup(sockets=[sock])
    await _until_stopped(server, stopping)
    await _drain(server, grace, cancel_after=0.5)


async def _until_stopped(server: uvicorn.Server, stopping: asyncio.Event) -> None:
    """Run uvicorn's ticks (they refresh the Date header once a second) until `stopping` is set."""
    ticks = 0
    while not stopping.is_set() and not await server.on_tick(ticks):
        ticks += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 0.1)


async def _drain(server: uvicorn.Server, grace: float, *, cancel_after: float) -> None:
    """Stop listening, let the answers in flight end for `grace` seconds, then cut the connections;
    their tasks get `cancel_after` seconds to notice before they are cancelled."""
    loop = asyncio.get_running_loop()
    for listener in server.servers:
        listener.close()
    state = server.server_state
    for connection in list(state.connections):
        connection.shutdown()  # idle keep-alive connections close now, busy ones after their response
    deadline = loop.time() + grace
    while state.connections and loop.time() < deadline:
        await asyncio.sleep(0.005)
    # The grace is over: streams end where they stand, their bodies closed (a client reads a whole,
    # shorter stream, not a cut); the connections close once their response is complete.
    end = getattr(server.config.app, "end_streams", None)
    if end is not None and end():
        deadline = loop.time() + 0.25
        while state.connections and loop.time() < deadline:
            await asyncio.sleep(0.002)
    # Cut what is still open: the app sees a client disconnect and ends its stream quietly.
    for connection in list(state.connections):
        transport = getattr(connection, "transport", None)
        if transport is not None:
            transport.abort()
    deadline = loop.time() + cancel_after
    while state.tasks and loop.time() < deadline:
        await asyncio.sleep(0.002)
    for task in list(state.tasks):
        task.cancel()  # uvicorn logs each as an error; mockllm.app's log filter keeps that quiet


class BackgroundServer:
    """uvicorn in a daemon thread on a loopback port; for tests and the pytest plugin.

    `namespaces` maps a name to an Engine served under `/ns/{name}/v1`, so one server
    can give every test its own rules, sequences and journal. `one_write=False` runs
    uvicorn's stock httptools protocol instead of mockllm.protocol's. The control plane
    (/_mockllm) answers on loopback; bound beyond it, only with `admin_token` (as a Bearer).

    It starts and stops in a few milliseconds: uvicorn's own loop polls `should_exit`
    every 100 ms and its shutdown sleeps another 100 ms, so this runs `startup()` on a
    loop of its own, waits on an event, and closes the connections itself.
    """

    _GRACE = 0.1  # seconds an in-flight response may take to finish at stop() before it is cut

    def __init__(
        self,
        engine: Engine | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        one_write: bool = True,
        admin_token: str | None = None,
    ) -> None:
        self.engine = engine or Engine()
        self.namespaces: dict[str, Engine] = {}
        self._sock = listen(host, port)
        self.host, self.port = self._sock.getsockname()[:2]
        app = create_app(self.engine, self.namespaces, host=self.host, admin_token=admin_token)
        self._server = uvicorn.Server(uvicorn_config(app, host, self.port, one_write=one_write))
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT (add /v1 for OpenAI clients)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        config = self._server.config
        if not config.loaded:
            config.load()
        self._thread = threading.Thread(target=self._run, name=f"mockllm-server-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None or not self._server.started:
            raise RuntimeError("mockllm: the background server did not start") from self._failure
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended between the check and the call
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def _run(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self._server.config.get_loop_factory()) as runner:
                runner.run(self._serve())
        except BaseException as exc:  # reported by start(), or lost with the daemon thread at exit
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        server = self._server
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server.lifespan = server.config.lifespan_class(server.config)
        await server.startup(sockets=[self._sock])
        self._ready.set()
        await _until_stopped(server, self._stopping)
        await _drain(server, self._GRACE, cancel_after=0.05)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
