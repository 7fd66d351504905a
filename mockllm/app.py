"""The HTTP adapter: a starlette app that serves an Engine over the OpenAI routes.

It only moves bytes: the Engine decides what to answer; this sends it, waiting until
each write's deadline (offsets from the request's arrival, so no drift builds up), and
drops the connection when a fault says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .answer import Answer
from .dialects.openai import error_body
from .engine import Engine
from .routes import BY_PATH, Methods, resolve

__all__ = ["Aborted", "RequestHeaders", "create_app", "send_answer"]


class Aborted(Exception):
    """Raised after the response started, so the server drops the connection (a fault)."""


class _QuietAborts(logging.Filter):
    """Keep planned connection drops out of uvicorn's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, Aborted)


logging.getLogger("uvicorn.error").addFilter(_QuietAborts())


def _error(status: int, message: str, code: str | None = None) -> Response:
    body = error_body(message, "invalid_request_error", None, code)
    return Response(body, status, media_type="application/json")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class RequestHeaders(Mapping[str, str]):
    """A request's headers as ASGI gives them (lower-case names), decoded when first read.

    Most requests are answered without a look at them (a rule may match on one; a test may
    read them from the journal), so decoding them all up front would be wasted work.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

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
    """The two ASGI messages of an answer sent whole, with its Content-Length."""
    body = answer.body
    headers = [*answer.headers, (b"content-length", b"%d" % len(body))]
    return {"type": "http.response.start", "status": answer.status, "headers": headers}, {
        "type": "http.response.body",
        "body": body,
    }


async def send_answer(answer: Answer, receive: Receive, send: Send, start: float) -> None:
    """Send an Answer over ASGI, each part at its deadline (loop time `start` + offset)."""
    loop = asyncio.get_running_loop()
    headers = answer.headers
    entry = answer.entry
    if answer.writes is None:
        if answer.delay > 0 and not await _until_unless_gone(loop, start + answer.delay, receive):
            return  # the client left first (e.g. its timeout during a stall): nothing to send
        if answer.abort:
            await send({"type": "http.response.start", "status": answer.status, "headers": headers})
            if entry is not None:
                entry.aborted = True
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
    try:
        for at, data, abort in answer.writes:
            if at and start + at > now():  # `at` is never negative: 0 is due now (time scale 0)
                await _until(loop, start + at)
            if abort:
                if entry is not None:
                    entry.aborted = True
                raise Aborted
            await send({"type": "http.response.body", "body": data, "more_body": True})
            if sent is not None:
                sent.append(now() - start)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not gone:
            raise  # the server is shutting down, not the client leaving
    finally:
        watcher.cancel()


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
        message = await receive()  # the whole body, for a short request
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        if message.get("more_body", False):
            body += await _read_body(receive)
        if engine is None:
            await _error(404, f"Unknown mockllm namespace in {scope['path']}", "unknown_namespace")(
                scope, receive, send
            )
            return
        try:
            answer = engine.serve(
                methods, params, scope["method"], scope["path"], RequestHeaders(scope["headers"]), body
            )
        except Exception as exc:  # a mockllm bug: answer with the 500 envelope, and let the server log it
            await (await _crash(Request(scope), exc))(scope, receive, send)
            raise
        if answer.writes is None and not answer.delay and not answer.abort:
            # The usual answer, whole and at once: sent here rather than through send_answer's frame.
            start_message, body_message = _whole(answer)
            await send(start_message)
            await send(body_message)
            return
        await send_answer(answer, receive, send, start)

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


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error(405, f"Method {request.method} not allowed on {request.url.path}.", "method_not_allowed")
    return _error(exc.status_code, f"Invalid URL ({request.method} {request.url.path})")


async def _crash(request: Request, exc: Exception) -> Response:
    body = error_body(f"mockllm internal error: {type(exc).__name__}: {exc}", "server_error", None, "mockllm_bug")
    return Response(body, 500, media_type="application/json")


class _App(Starlette):
    """Starlette, with the route table's paths served directly.

    A request for a path of the table (mockllm/routes.py), under /v1 or a namespace's
    /ns/{name}/v1, skips the middleware stack and starlette's routing: for a short answer they
    cost as much as mockllm's own work. The outcome is the same as through them: the endpoint
    answers its own crashes with the 500 envelope, and the exception still reaches the server.
    Anything else (unknown paths, a root_path, added middleware) goes through Starlette, whose
    routes are made from the same table.
    """

    def __init__(self, endpoints: _Routes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._routes = endpoints

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
        await super().__call__(scope, receive, send)


def create_app(engine: Engine, namespaces: MutableMapping[str, Engine] | None = None) -> Starlette:
    """The ASGI app. `namespaces` maps a name to an Engine served under /ns/{name}/v1."""
    routes_of = _Routes(engine, namespaces if namespaces is not None else {})
    routes: list[Route] = []
    for template, methods in BY_PATH.items():
        path = template.replace("{model_id}", "{model_id:path}")
        endpoint = routes_of.endpoint(methods)
        routes.append(Route(path, endpoint, methods=list(methods)))
        routes.append(Route("/ns/{ns}" + path, endpoint, methods=list(methods)))
    return _App(routes_of, routes=routes, exception_handlers={HTTPException: _http_error, Exception: _crash})
