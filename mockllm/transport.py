"""In-process transports: an Engine behind an httpx or httpx2 client, with no socket.

httpx and httpx2 share one transport API, so one implementation serves both; pass the
library's name. The body is streamed write by write on the server's schedule (httpx's
ASGITransport would buffer it whole), a planned drop raises RemoteProtocolError in the
middle of the body, and a wait longer than the request's read timeout raises ReadTimeout,
as a real socket would.

    client = httpx.Client(transport=transport(engine))                   # httpx
    client = httpx2.Client(transport=transport(engine, library="httpx2"))  # openai >= 3
"""

from __future__ import annotations

import functools
import importlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from .answer import Answer
from .engine import Engine
from .sse import Write

__all__ = ["HOST", "answer_request", "transport"]

HOST = "mockllm.invalid"  # in-process base URLs use it; `.invalid` never resolves, should a request leak
_DROPPED = "peer closed connection without sending complete message body (incomplete chunked read)"


class _Headers(dict[str, str]):
    """A request's headers (lower-case names), with its query string as `query`, as the app's carry it
    (for Gemini's `?key=`, under `--require-api-key`)."""

    query = ""


def answer_request(engine: Engine, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
    """The Answer to one HTTP request, routed by the same table as the starlette app (any prefix before /v1)."""
    return engine.handle(method, path, headers, body)


def transport(engine: Engine, *, library: str = "httpx") -> Any:
    """A transport (sync and async) for `library` ("httpx" or "httpx2") answering from `engine`."""
    return _classes(library)[0](engine, library)


@functools.cache
def _classes(library: str) -> tuple[type, type]:
    """The transport and body-stream classes, subclassing the library's own base classes."""
    lib = importlib.import_module(library)
    body = type("MockLLMStream", (_Body, lib.SyncByteStream, lib.AsyncByteStream), {})
    transport_class = type("MockLLMTransport", (_Transport, lib.BaseTransport, lib.AsyncBaseTransport), {})
    return transport_class, body


class _Transport:
    def __init__(self, engine: Engine, library: str) -> None:
        self.engine = engine
        self.library = library

    def handle_request(self, request: Any) -> Any:
        request.read()
        return self._respond(request)

    async def handle_async_request(self, request: Any) -> Any:
        await request.aread()
        return self._respond(request)

    def _respond(self, request: Any) -> Any:
        start = time.monotonic()  # the server counts from the request's arrival too
        headers = _Headers((k.lower(), v) for k, v in request.headers.items())
        headers.query = request.url.query.decode("latin-1")
        answer = answer_request(self.engine, request.method, request.url.path, headers, request.content)
        response_headers = list(answer.headers)
        if answer.writes is None and not answer.abort:
            response_headers.append((b"content-length", b"%d" % len(answer.body)))
        lib = importlib.import_module(self.library)
        stream = _classes(self.library)[1](lib, request, answer, start)
        return lib.Response(answer.status, headers=response_headers, stream=stream, request=request)


class _Body:
    """The response body: each write at its deadline, then the end, a drop, or a read timeout.

    It is both a sync and an async stream, because respx hands one response to either kind
    of client; the non-stream delay is spent here too, before the body's one write.
    """

    def __init__(self, lib: Any, request: Any, answer: Answer, start: float) -> None:
        self._lib = lib
        self._request = request
        self._answer = answer
        self._start = start
        timeout = request.extensions.get("timeout", {})
        self._read_timeout: float | None = timeout.get("read") if isinstance(timeout, dict) else None
        self._writes: Iterator[Write] = (
            answer.writes if answer.writes is not None else iter([Write(answer.delay, answer.body, answer.abort)])
        )

    def _wait(self, write: Write) -> float:
        """Seconds to sleep before `write`; past the read timeout, sleep that long then time out."""
        return max(0.0, self._start + write.at - time.monotonic())

    def _times_out(self, wait: float) -> bool:
        return self._read_timeout is not None and wait > self._read_timeout

    def _handed(self, write: Write) -> bytes:
        """After the wait: drop the connection, or return the bytes to hand over (and note when)."""
        entry = self._answer.entry
        if write.abort:
            if entry is not None:
                entry.aborted, entry.ended = True, time.monotonic() - self._start
            raise self._lib.RemoteProtocolError(_DROPPED, request=self._request)
        if entry is not None:
            entry.writes.append(write)  # a whole answer's body too: its one write
            if self._answer.writes is not None:
                entry.sent.append(time.monotonic() - self._start)
        return write.data

    def _ended(self) -> None:
        """The answer ended: its last write handed over, or the client closed the body (an SDK stops
        reading at `[DONE]`); the first of the two is when."""
        entry = self._answer.entry
        if entry is not None and entry.ended is None:
            entry.ended = time.monotonic() - self._start

    def __iter__(self) -> Iterator[bytes]:
        for write in self._writes:
            wait = self._wait(write)
            if self._times_out(wait):
                time.sleep(self._read_timeout or 0.0)
                raise self._lib.ReadTimeout("timed out", request=self._request)
            if wait:
                time.sleep(wait)
            data = self._handed(write)
            if data:
                yield data
        self._ended()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import anyio  # httpx and httpx2 both depend on it; it sleeps under asyncio and trio alike

        for write in self._writes:
            wait = self._wait(write)
            if self._times_out(wait):
                await anyio.sleep(self._read_timeout or 0.0)
                raise self._lib.ReadTimeout("timed out", request=self._request)
            if wait:
                await anyio.sleep(wait)
            data = self._handed(write)
            if data:
                yield data
        self._ended()

    def close(self) -> None:
        self._ended()

    async def aclose(self) -> None:
        self._ended()
