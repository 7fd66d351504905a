"""The HTTP adapter: a starlette app that serves an Engine over the OpenAI routes.

It only moves bytes: the Engine decides what to answer; this sends it, waiting until
each write's deadline (offsets from the request's arrival, so no drift builds up), and
drops the connection when a fault says so.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .answer import Answer
from .control import PREFIX, ControlPlane
from .dialects.openai import error_body
from .engine import Engine
from .routes import BY_PATH, Methods, resolve

__all__ = ["Aborted", "RequestHeaders", "create_app", "end_streams", "send_answer"]


class Aborted(Exception):
    """Raised after the response started, so the server drops the connection (a fault)."""


class _QuietAborts(logging.Filter):
    """Keep planned connection drops out of uvicorn's error log, and the streams a shutdown cancels
    (past its grace): neither is a failure, and a traceback per stream would bury what is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, Aborted | asyncio.CancelledError)


logging.getLogger("uvicorn.error").addFilter(_QuietAborts())


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"content-length":
            return value
    return None


async def _read_rest(first: bytes, receive: Receive, limit: int) -> bytes | None:
    """The whole body, after its `first` part, or None as soon as it is over `limit` bytes (a chunked
    body, whose length no header declared): then no more of it is read, and the connection closes."""
    chunks = [first]
    size = len(first)
    while size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            break
        part = message.get("body", b"")
        chunks.append(part)
        size += len(part)
        if not message.get("more_body", False):
            break
    return None if size > limit else b"".join(chunks)


class RequestHeaders(Mapping[str, str]):
    """A request's headers as ASGI gives them (lower-case names), decoded when first read.

    Most requests are answered without a look at them (a rule may match on one; a test may
    read them from the journal), so decoding them all up front would be wasted work. The query
    string rides along (`query`), for the one API that may take its key there (Gemini's `?key=`).
    """

    __slots__ = ("_decoded", "_query", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]], query: bytes = b"") -> None:
        self._raw = raw
        self._query = query
        self._decoded: dict[str, str] | None = None

    @property
    def query(self) -> str:
        return self._query.decode("latin-1")

    def _dict(self) -> dict[str, str]:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in self._raw}
        return decoded

    def __getitem__(self, name: str) -> str:
        return self._dict()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._dict().get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __eq__(self, other: object) -> bool:
        return self._dict() == (other._dict() if isinstance(other, RequestHeaders) else other)

    __hash__ = None  # type: ignore[assignment]  # like dict

    def __repr__(self) -> str:
        return repr(self._dict())


def _whole(answer: Answer) -> tuple[Message, Message]:
    """The two ASGI messages of an answer sent whole, with its Content-Length (journaled as its one write)."""
    body = answer.body
    entry = answer.entry
    if entry is not None:
        entry.writes.append((answer.delay, body, False))
        entry.ended = answer.delay
    headers = [*answer.headers, (b"content-length", b"%d" % len(body))]
    return {"type": "http.response.start", "status": answer.status, "headers": headers}, {
        "type": "http.response.body",
        "body": body,
    }


async def send_answer(
    answer: Answer, receive: Receive, send: Send, start: float, streams: set[asyncio.Task[Any]] | None = None
) -> None:
    """Send an Answer over ASGI, each part at its deadline (loop time `start` + offset).

    A stream's task is in `streams` while it runs: `end_streams(streams)` (a server shutting down,
    its grace over) then ends it cleanly, where it stands: the body is closed, not cut."""
    loop = asyncio.get_running_loop()
    headers = answer.headers
    entry = answer.entry
    if answer.writes is None:
        if answer.delay > 0 and not await _until_unless_gone(loop, start + answer.delay, receive):
            if entry is not None:
                entry.ended = loop.time() - start
            return  # the client left first (e.g. its timeout during a stall): nothing to send
        if answer.abort:
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            if entry is not None:
                entry.aborted, entry.ended = True, loop.time() - start
            raise Aborted
        start_message, body_message = _whole(answer)
        await send(start_message)
        await send(body_message)
        return

    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    # A client that goes away must not keep a stalled or slow stream alive: watch for it.
    writer = asyncio.current_task()
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        if writer is not None:
            writer.cancel()

    watcher = loop.create_task(watch())
    now = loop.time
    sent = entry.sent if entry is not None else None
    written = entry.writes if entry is not None else None
    if streams is not None and writer is not None:
        streams.add(writer)
    try:
        for write in answer.writes:
            at, data, abort = write
            if at and start + at > now():  # `at` is never negative: 0 is due now (time scale 0)
                await _until(loop, start + at)
            if abort:
                if entry is not None:
                    entry.aborted = True
                raise Aborted
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if sent is not None and written is not None:
                sent.append(now() - start)
                written.append(write)  # the Write itself: no tuple made per chunk
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if writer is not None and writer in _ENDING:
            # The server ends its streams: close the body (the client reads a whole, shorter stream).
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif not gone:
            raise  # cancelled by the server otherwise, not by the client leaving
    finally:
        watcher.cancel()
        if streams is not None and writer is not None:
            streams.discard(writer)
        if entry is not None:
            entry.ended = now() - start  # done, cut, or the client gone


# The stream tasks being ended on purpose (end_streams): their CancelledError closes the body.
_ENDING: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def end_streams(streams: set[asyncio.Task[Any]]) -> int:
    """End every stream in `streams` cleanly, now (their tasks are cancelled, and close their body);
    how many there were."""
    ending = list(streams)
    for task in ending:
        _ENDING.add(task)
        task.cancel()
    return len(ending)


async def _until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (the request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _until_unless_gone(loop: asyncio.AbstractEventLoop, deadline: float, receive: Receive) -> bool:
    """Wait until `deadline`; False as soon as the client disconnects instead."""
    waiter, watcher = loop.create_task(_until(loop, deadline)), loop.create_task(_disconnected(receive))
    try:
        await asyncio.wait((waiter, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        watcher.cancel()
    return not watcher.done() or watcher.cancelled()


class _Routes:
    """The endpoint of every route: it finds the Engine (the default one, or a namespace's)."""

    def __init__(self, engine: Engine, namespaces: MutableMapping[str, Engine]) -> None:
        self.engine = engine
        self.namespaces = namespaces
        self.streams: set[asyncio.Task[Any]] = set()  # the streams being sent (for a clean shutdown)

    async def handle(
        self,
        engine: Engine | None,
        methods: Methods,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        start = asyncio.get_running_loop().time()
        # A body over the limit is refused unread and unparsed, in the route's envelope: by its declared
        # length before a byte of it is read (a client that waits for `100 Continue` sends none), and
        # a chunked one as soon as its parts pass the limit.
        limit = (engine or self.engine).max_body_size
        headers = scope["headers"]
        # Every request pays for this check, so it is cut short: httpx (the SDKs' client) sends the
        # length last, and one of 6 digits or fewer is under any limit of a million bytes or more.
        last = headers[-1] if headers else (b"", b"")
        declared = last[1] if last[0] == b"content-length" else _content_length(headers)
        if (
            declared is not None
            and (len(declared) > 6 or limit < 1_000_000)
            and declared.isdigit()  # else the server refused it before the app (httptools checks it)
            and int(declared) > limit
        ):
            await self._refuse_body(engine, methods, scope, int(declared), send)
            return
        message = await receive()  # the whole body, for a short request
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        if message.get("more_body", False):  # (a whole body over the limit: Engine.serve refuses it)
            rest = await _read_rest(body, receive, limit)
            if rest is None:
                await self._refuse_body(engine, methods, scope, None, send)
                return
            body = rest
        if engine is None:
            unknown = f"Unknown mockllm namespace in {scope['path']}: no test or engine is served there."
            await _send_whole(self.engine.not_found(scope["method"], scope["path"], unknown, "unknown_namespace"), send)
            return
        try:
            request_headers = RequestHeaders(headers, scope.get("query_string", b""))
            answer = engine.serve(methods, params, scope["method"], scope["path"], request_headers, body)
        except Exception as exc:  # a mockllm bug: answer with the 500 envelope, and let the server log it
            await self.crash(Request(scope), exc)(scope, receive, send)
            raise
        if answer.writes is None and not answer.delay and not answer.abort:
            # The usual answer, whole and at once: sent here rather than through send_answer's frame.
            start_message, body_message = _whole(answer)
            await send(start_message)
            await send(body_message)
            return
        await send_answer(answer, receive, send, start, self.streams)

    async def _refuse_body(
        self, engine: Engine | None, methods: Methods, scope: Scope, size: int | None, send: Send
    ) -> None:
        headers = RequestHeaders(scope["headers"])
        await _send_whole(
            (engine or self.engine).too_large(methods, scope["method"], scope["path"], size, headers), send
        )

    def response(self, answer: Answer) -> Response:
        """A starlette Response of a whole Answer (for starlette's exception handlers)."""
        response = Response(answer.body, answer.status)
        response.raw_headers = [*answer.headers, (b"content-length", b"%d" % len(answer.body))]
        return response

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's 404 (a path no route serves) and 405, as the engine answers them in-process."""
        assert isinstance(exc, HTTPException)
        method, path = request.method, request.url.path
        if exc.status_code == 405:
            found = resolve(path)
            if found is not None:
                return self.response(self.engine.not_allowed(found[0], method, path))
            allow = (exc.headers or {}).get("Allow", "")
            message = f"Method {method} not allowed on {path}; it takes {allow}."
            body = error_body(message, "invalid_request_error", None, "method_not_allowed")
            return self.response(self.engine.json_answer(405, body, [("allow", allow)]))
        if exc.status_code == 404:
            return self.response(self.engine.not_found(method, path))
        body = error_body(f"{exc.detail} ({method} {path})", "invalid_request_error")
        return self.response(self.engine.json_answer(exc.status_code, body))

    def crash(self, request: Request, exc: Exception) -> Response:
        message = f"mockllm internal error: {type(exc).__name__}: {exc}"
        return self.response(self.engine.json_answer(500, error_body(message, "server_error", None, "mockllm_bug")))

    async def crashed(self, request: Request, exc: Exception) -> Response:
        return self.crash(request, exc)

    def endpoint(self, methods: Methods) -> _Endpoint:
        """The raw ASGI app of starlette's route for `methods` (where the fast path does not go)."""
        return _Endpoint(self, methods)


class _Endpoint:
    """A route's endpoint; a class, so starlette treats it as a raw ASGI app (not a request handler)."""

    def __init__(self, routes: _Routes, methods: Methods) -> None:
        self.routes = routes
        self.methods = methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = dict(scope.get("path_params", {}))
        ns = params.pop("ns", None)
        engine = self.routes.engine if ns is None else self.routes.namespaces.get(ns)
        await self.routes.handle(engine, self.methods, params, scope, receive, send)


async def _send_whole(answer: Answer, send: Send) -> None:
    start_message, body_message = _whole(answer)
    await send(start_message)
    await send(body_message)


class _Control:
    """The control plane's endpoint (mockllm/control.py): the body read whole, the answer sent whole."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def serve(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        if message.get("more_body", False):
            limit = self.plane.engine.max_body_size
            rest = await _read_rest(body, receive, limit)
            if rest is None:
                too_long = f"Request body too large for {path}: over mockllm's limit of {limit} bytes."
                await _send_whole(self.plane.error(413, too_long, "request_too_large"), send)
                return
            body = rest
        headers = RequestHeaders(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        try:
            answer = self.plane.answer(scope["method"], path, query, headers, body)
        except Exception as exc:  # a mockllm bug: answered 500, and the server logs it
            crashed = f"mockllm internal error: {type(exc).__name__}: {exc}"
            await _send_whole(self.plane.error(500, crashed, "mockllm_bug"), send)
            raise
        await _send_whole(answer, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's route of /_mockllm and /_mockllm/{rest:path} (with a root_path, or middleware)."""
        rest = scope.get("path_params", {}).get("rest")
        await self.serve(PREFIX if rest is None else f"{PREFIX}/{rest}", scope, receive, send)


class _App(Starlette):
    """Starlette, with the route table's paths served directly.

    A request for a path of the table (mockllm/routes.py), under /v1 or a namespace's
    /ns/{name}/v1, skips the middleware stack and starlette's routing: for a short answer they
    cost as much as mockllm's own work. The outcome is the same as through them: the endpoint
    answers its own crashes with the 500 envelope, and the exception still reaches the server.
    Anything else (unknown paths, a root_path, added middleware) goes through Starlette, whose
    routes are made from the same table.
    """

    def __init__(self, endpoints: _Routes, control: _Control, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._routes = endpoints
        self._control = control

    @property
    def control(self) -> ControlPlane:
        """The control plane served under /_mockllm."""
        return self._control.plane

    def end_streams(self) -> int:
        """End the streams in flight cleanly (a shutdown's grace is over); how many there were."""
        return end_streams(self._routes.streams)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and not self.user_middleware:
            path = scope["path"]
            found = resolve(path)
            if found is not None:
                methods, params, prefix = found
                engine: Engine | None = None
                if not prefix:
                    engine = self._routes.engine
                elif prefix.startswith("/ns/") and "/" not in prefix[4:]:
                    engine = self._routes.namespaces.get(prefix[4:])
                else:
                    found = None
                if found is not None:
                    scope["app"] = self
                    scope["path_params"] = params
                    await self._routes.handle(engine, methods, params, scope, receive, send)
                    return
            # Only a path the table did not take pays for this check.
            if path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/"):
                scope["app"] = self
                await self._control.serve(path, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    engine: Engine,
    namespaces: MutableMapping[str, Engine] | None = None,
    *,
    host: str = "127.0.0.1",
    admin_token: str | None = None,
    control: ControlPlane | None = None,
) -> Starlette:
    """The ASGI app. `namespaces` maps a name to an Engine served under /ns/{name}/v1.

    The control plane (mockllm/control.py) answers under /_mockllm: `control`, or one made for the
    address the server listens on (`host`: beyond loopback, its routes need `admin_token`)."""
    namespaces = namespaces if namespaces is not None else {}
    routes_of = _Routes(engine, namespaces)
    plane = control if control is not None else ControlPlane(engine, namespaces, host=host, admin_token=admin_token)
    control_endpoint = _Control(plane)
    # Before the provider routes: no provider path starts with the prefix, but the order says it is reserved.
    routes: list[Route] = [Route(PREFIX, control_endpoint), Route(PREFIX + "/{rest:path}", control_endpoint)]
    for template, methods in BY_PATH.items():
        path = template.replace("{model_id}", "{model_id:path}")
        endpoint = routes_of.endpoint(methods)
        routes.append(Route(path, endpoint, methods=list(methods)))
        routes.append(Route("/ns/{ns}" + path, endpoint, methods=list(methods)))
    handlers = {HTTPException: routes_of.http_error, Exception: routes_of.crashed}
    return _App(routes_of, control_endpoint, routes=routes, exception_handlers=handlers)
