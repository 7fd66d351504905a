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

from .engine import Engine
from .plan import Answer
from .wire import error_body

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


class _Endpoint:
    """Makes starlette treat a bound method as a raw ASGI app (not a request handler)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


class _Routes:
    """The endpoints; each finds its Engine (the default one, or a namespace's)."""

    def __init__(self, engine: Engine, namespaces: MutableMapping[str, Engine]) -> None:
        self.engine = engine
        self.namespaces = namespaces

    def _engine(self, scope: Scope) -> Engine | None:
        ns = scope.get("path_params", {}).get("ns")
        return self.engine if ns is None else self.namespaces.get(ns)

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer_chat(self._engine(scope), scope, receive, send)

    async def answer_chat(self, engine: Engine | None, scope: Scope, receive: Receive, send: Send) -> None:
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
        deployment = scope["path_params"].get("deployment")
        try:
            answer = engine.chat(body, RequestHeaders(scope["headers"]), path=scope["path"], default_model=deployment)
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

    async def models(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self._engine(scope)
        if engine is None:
            await _error(404, f"Unknown mockllm namespace in {scope['path']}", "unknown_namespace")(
                scope, receive, send
            )
            return
        model_id = scope.get("path_params", {}).get("model_id")
        answer = engine.models() if model_id is None else engine.model(model_id)
        await send_answer(answer, receive, send, asyncio.get_running_loop().time())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error(405, f"Method {request.method} not allowed on {request.url.path}.", "method_not_allowed")
    return _error(exc.status_code, f"Invalid URL ({request.method} {request.url.path})")


async def _crash(request: Request, exc: Exception) -> Response:
    body = error_body(f"mockllm internal error: {type(exc).__name__}: {exc}", "server_error", None, "mockllm_bug")
    return Response(body, 500, media_type="application/json")


_CHAT_PATH = "/v1/chat/completions"


class _App(Starlette):
    """Starlette, with its hottest route served directly.

    POST /v1/chat/completions (and its namespaced twin) skips the middleware stack and
    the route table: for a short answer they cost as much as mockllm's own work. The
    outcome is the same as through them: the chat endpoint answers its own crashes with
    the 500 envelope, and the exception still reaches the server. Anything else (other
    routes, a root_path, added middleware) goes through Starlette.
    """

    def __init__(self, endpoints: _Routes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._routes = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
        if fast and not self.user_middleware:
            path = scope["path"]
            engine: Engine | None = None
            params: dict[str, str] | None = None
            if path == _CHAT_PATH:
                engine, params = self._routes.engine, {}
            elif path.startswith("/ns/") and path.endswith(_CHAT_PATH):
                ns = path[4 : -len(_CHAT_PATH)]
                if ns and "/" not in ns:
                    engine, params = self._routes.namespaces.get(ns), {"ns": ns}
            if params is not None:
                scope["app"] = self
                scope["path_params"] = params
                await self._routes.answer_chat(engine, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(engine: Engine, namespaces: MutableMapping[str, Engine] | None = None) -> Starlette:
    """The ASGI app. `namespaces` maps a name to an Engine served under /ns/{name}/v1."""
    routes_of = _Routes(engine, namespaces if namespaces is not None else {})
    v1: list[Any] = [
        ("/v1/chat/completions", _Endpoint(routes_of.chat), ["POST"]),
        ("/v1/models", _Endpoint(routes_of.models), ["GET"]),
        ("/v1/models/{model_id:path}", _Endpoint(routes_of.models), ["GET"]),
    ]
    routes = [Route(path, endpoint, methods=methods) for path, endpoint, methods in v1]
    routes += [Route("/ns/{ns}" + path, endpoint, methods=methods) for path, endpoint, methods in v1]
    routes.append(
        Route("/openai/deployments/{deployment}/chat/completions", _Endpoint(routes_of.chat), methods=["POST"])
    )
    return _App(routes_of, routes=routes, exception_handlers={HTTPException: _http_error, Exception: _crash})
