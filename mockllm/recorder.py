"""`mockllm record`: a proxy between clients and a real provider that writes what passes as a scenario.

Clients point at it instead of the provider. It forwards each request with its headers (but the
hop-by-hop ones) to the upstream with httpx, streams the answer back as it arrives, chunk by chunk,
and records the exchange with each chunk's arrival time (mockllm/recording.py makes the rules and
writes the file). An upstream connection that breaks in the middle of a body breaks the client's
too, as it would have without the proxy. It runs on uvicorn like `mockllm serve` (mockllm/server.py).

httpx is needed here only: it is imported when a recorder is made.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .app import Aborted
from .engine import Engine
from .recording import Exchange, Recording
from .routes import resolve
from .server import DEFAULT_SHUTDOWN_GRACE, BackgroundServer, _serve_until_signal, uvicorn_config

if TYPE_CHECKING:
    import socket

    import httpx

__all__ = ["SECRET_HEADERS", "BackgroundRecorder", "Recorder", "run_recorder"]

# Connection-level headers, which a proxy does not pass on (RFC 9110 section 7.6.1), and those the
# proxy's own HTTP layers make again (the length, the encoding it asks for, its own date and server).
_HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    )
)
_NOT_BACK = _HOP_BY_HOP | {"date", "server"}
# The headers whose values are credentials: never written, and their values redacted wherever they appear.
SECRET_HEADERS = frozenset(
    (
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "openai-organization",
        "openai-project",
        "proxy-authorization",
    )
)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class Recorder:
    """The proxy: an ASGI app (`app`) forwarding to `upstream` and recording into `recording`."""

    def __init__(self, upstream: str, recording: Recording, log: Callable[[str], None] | None = None) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - httpx is installed with the test and pytest extras
            raise SystemExit("mockllm record needs httpx: pip install httpx") from None
        self._httpx = httpx
        parts = urlsplit(upstream.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"expected an http(s) URL for the upstream, got {upstream!r}")
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path  # "/v1" in https://api.openai.com/v1, "" for a root
        self.recording = recording
        self.log = log or (lambda line: print(f"mockllm: {line}", file=sys.stderr, flush=True))
        self._numbers = itertools.count()
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self.app = Starlette(routes=[Route("/{path:path}", _Endpoint(self), methods=_METHODS)])

    def target(self, path: str) -> str:
        """The upstream URL of a request for `path`: the upstream's own path is not repeated
        (`--upstream https://api.openai.com/v1` and a client's `/v1/chat/completions`)."""
        if self.base_path and (path == self.base_path or path.startswith(self.base_path + "/")):
            return self.root + path
        return self.root + self.base_path + path

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            httpx = self._httpx
            # No read timeout of its own: the client's read timeout is the one that counts.
            timeout = httpx.Timeout(None, connect=30.0)
            client = self._clients[loop] = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        return client

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        number = next(self._numbers)
        body = await read_body(receive)
        method, path = scope["method"], scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        self._note_secrets(headers, query)
        sent = [(k, v) for k, v in headers if k not in _HOP_BY_HOP and k != "accept-encoding"]
        sent.append(("accept-encoding", "identity"))  # the bytes as they stream, for the client and the file
        url = self.target(path) + (f"?{query}" if query else "")
        client = self._client()
        httpx = self._httpx
        try:
            response = await client.send(client.build_request(method, url, headers=sent, content=body), stream=True)
        except httpx.HTTPError as exc:
            self.log(f"{method} {path}: the upstream did not answer ({type(exc).__name__}: {exc}); not recorded")
            message = f"mockllm record: the upstream did not answer: {type(exc).__name__}"
            error = orjson.dumps({"error": {"message": message, "type": "upstream_error", "code": None}})
            await send(
                {"type": "http.response.start", "status": 502, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": error})
            return
        back = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items() if k not in _NOT_BACK
        ]
        chunks: list[tuple[float, bytes]] = []
        broken = False
        # A client that leaves does not stop the recording: uvicorn drops what is sent to it from then on.
        await send({"type": "http.response.start", "status": response.status_code, "headers": back})
        try:
            async for data in response.aiter_raw():
                chunks.append((time.perf_counter() - start, data))
                await send({"type": "http.response.body", "body": data, "more_body": True})
        except httpx.HTTPError:
            broken = True
        finally:
            await response.aclose()
        exchange = self._exchange(number, method, path, body, response, chunks, broken)
        if exchange is not None:
            # Written before the body ends, so a client that has its answer finds it in the file.
            line = await asyncio.to_thread(self._record, exchange)
            self.log(line)
        if broken:
            raise Aborted  # the upstream's connection broke: the client's breaks there too
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _record(self, exchange: Exchange) -> str:
        try:
            line = self.recording.add(exchange)
            self.recording.write()
        except Exception as exc:  # a recorder bug, or a full disk: the client still gets its whole answer
            return f"not recorded: {type(exc).__name__}: {exc}"
        return line

    def _note_secrets(self, headers: list[tuple[str, str]], query: str) -> None:
        for name, value in headers:
            if name in SECRET_HEADERS:
                self.recording.add_secret(value)
                scheme, _, token = value.partition(" ")
                if token and scheme.lower() in ("bearer", "basic", "token"):
                    self.recording.add_secret(token)
                if name == "cookie":
                    for cookie in value.split(";"):
                        self.recording.add_secret(cookie.partition("=")[2])
        for name, value in parse_qsl(query):
            if name.lower() in ("key", "api_key", "api-key", "access_token"):
                self.recording.add_secret(value)

    def _exchange(
        self,
        number: int,
        method: str,
        path: str,
        body: bytes,
        response: httpx.Response,
        chunks: list[tuple[float, bytes]],
        broken: bool,
    ) -> Exchange | None:
        """The exchange to record, or None for a request that is not an API call (a models list...)."""
        upstream_path = urlsplit(self.target(path)).path
        found = resolve(upstream_path) or resolve(path)
        target = found[0].get(method) if found is not None else None
        if found is None or target is None or target.dialect is None or target.route.action != "answer":
            self.log(f"{method} {path} -> {response.status_code}: passed on, not recorded (not an API call)")
            return None
        params = found[1]
        model = params.get("model") or params.get("streamed") or params.get("deployment")
        if model is None:
            try:
                model = orjson.loads(body).get("model")
            except (orjson.JSONDecodeError, AttributeError):
                model = None
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate", "x-gzip"):
            chunks = _decoded(chunks)
        elif encoding != "identity":
            self.log(
                f"{method} {path} -> {response.status_code}: passed on, not recorded (content-encoding {encoding})"
            )
            return None
        return Exchange(
            number=number,
            endpoint=target.dialect.name,
            model=model if isinstance(model, str) else None,
            body=body,
            status=response.status_code,
            headers=[(k.lower(), v) for k, v in response.headers.multi_items()],
            chunks=chunks,
            broken=broken,
        )


def _decoded(chunks: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """A gzip or deflate body (an upstream that ignored `accept-encoding: identity`) decoded chunk by chunk,
    each part keeping its arrival time."""
    decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # either header, told apart by the data
    out = []
    for at, data in chunks:
        try:
            out.append((at, decoder.decompress(data)))
        except zlib.error:
            break
    return out


class _Endpoint:
    """The catch-all route's endpoint: a class, so starlette hands it the raw ASGI call."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.recorder.handle(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    """A request's whole body, from its ASGI messages."""
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def run_recorder(
    recorder: Recorder, sock: socket.socket, *, access_log: bool = False, grace: float = DEFAULT_SHUTDOWN_GRACE
) -> None:
    """Serve the recorder on a bound socket until SIGINT or SIGTERM (as `mockllm serve` runs)."""
    host, port = sock.getsockname()[:2]
    config = uvicorn_config(recorder.app, host, port, access_log, one_write=False)
    config.load()
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await _serve_until_signal(server, sock, grace)
        finally:
            await recorder.aclose()

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve())


class BackgroundRecorder(BackgroundServer):
    """The recorder on a loopback port in a daemon thread, for tests: `url`, `start()`, `stop()`."""

    def __init__(self, recorder: Recorder, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(Engine(), host, port, one_write=False)
        self.recorder = recorder
        self._server = uvicorn.Server(uvicorn_config(recorder.app, host, self.port, one_write=False))

    async def _serve(self) -> None:
        try:
            await super()._serve()
        finally:
            await self.recorder.aclose()

    def __enter__(self) -> BackgroundRecorder:
        self.start()
        return self
