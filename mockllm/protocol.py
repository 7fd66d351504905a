"""uvicorn's httptools protocol, sending a whole answer in one write.

Stock uvicorn writes a response's head as soon as the app sends `http.response.start`,
the body in a second write, and checks every header line with two regexes on the way.
For the short JSON answers a fake serves by the thousand, that is a large share of the
server's work (see bench/README.md). `OneWriteProtocol` changes only this: the head of a
response that declares its Content-Length waits for the body and leaves with it, in one
write, and a header line that repeats (content type, rate limits...) is checked and
encoded once.

One difference remains: an app that starts such a response and then fails before its body sends
nothing at all, where uvicorn would have sent the head before closing. mockllm's planned drops
(faults) send no Content-Length, so they take uvicorn's path and still send their head first.

Everything else takes uvicorn's own code: streams (no Content-Length: their head still
leaves at once, before the first event), HEAD requests, access logs, paused writes, a
body sent in parts, a client that left. The bytes on the wire are the same either way
(tests/test_protocol.py compares them).
"""

from __future__ import annotations

import logging
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any

__all__ = ["OneWriteProtocol", "available"]

try:  # httptools is optional in uvicorn (its [standard] extra brings it)
    from uvicorn.protocols.http import httptools_impl as _impl
except ImportError:  # pragma: no cover - without httptools, uvicorn_config picks h11
    _impl = None  # type: ignore[assignment]

# The attributes of uvicorn's RequestResponseCycle the one-write path reads and sets; if a
# uvicorn release renames one, `available()` says no and mockllm runs uvicorn's stock protocol.
_CYCLE_ATTRIBUTES = (
    "access_log",
    "access_logger",
    "chunked_encoding",
    "default_headers",
    "disconnected",
    "expected_content_length",
    "flow",
    "keep_alive",
    "message_event",
    "on_response",
    "response_complete",
    "response_started",
    "scope",
    "transport",
    "waiting_for_100_continue",
)
_SPECIAL = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_MAX_LINES = 512  # distinct header lines remembered
_UNIQUE = frozenset((b"x-request-id",))  # new on every answer: not worth remembering


def available() -> bool:
    """Whether this uvicorn has the httptools protocol and the cycle fields the fast path uses."""
    if _impl is None:
        return False
    init = getattr(_impl.RequestResponseCycle, "__init__", None)
    names = getattr(getattr(init, "__code__", None), "co_names", ())
    starts = getattr(getattr(_impl.HttpToolsProtocol, "on_headers_complete", None), "__code__", None)
    return all(name in names for name in _CYCLE_ATTRIBUTES) and "RequestResponseCycle" in getattr(
        starts, "co_names", ()
    )


def _with_globals(function: Callable[..., Any], **names: Any) -> Any:
    """A copy of `function` that finds `names` among its module's globals (the module is left as it is)."""
    scope = {**function.__globals__, **names}
    copy = types.FunctionType(function.__code__, scope, function.__name__, function.__defaults__, function.__closure__)
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    return copy


if _impl is not None:
    _STATUS_LINE: dict[int, bytes] = _impl.STATUS_LINE
    _NAME_RE = _impl.HEADER_RE
    _VALUE_RE = _impl.HEADER_VALUE_RE
    _lines: dict[tuple[bytes, bytes], bytes] = {}
    # uvicorn's default headers (date, server) encoded, with the list they came from: uvicorn
    # replaces that list when the date changes. One tuple, swapped whole (servers run in threads).
    _defaults: tuple[object, bytes] = (None, b"")

    def _encode(pair: tuple[bytes, bytes]) -> bytes | None:
        """`name: value\\r\\n` (name lower-cased), or None for a line uvicorn must see itself."""
        name, value = pair
        if _NAME_RE.search(name) or _VALUE_RE.search(value):
            return None  # uvicorn raises its own error for it
        name = name.lower()
        if name in _SPECIAL:
            return None
        return b"%s: %s\r\n" % (name, value)

    def _default_lines(headers: list[tuple[bytes, bytes]]) -> bytes | None:
        global _defaults
        source, block = _defaults
        if source is not headers:
            lines = [_encode(pair) for pair in headers]
            if None in lines:
                return None
            block = b"".join(lines)  # type: ignore[arg-type]
            _defaults = (headers, block)
        return block

    class _Done:
        """An awaitable that is already done (what `send` gives when it wrote, or held, at once)."""

        __slots__ = ()

        def __await__(self) -> Generator[Any, None, None]:
            return iter(())  # type: ignore[return-value]

    _DONE = _Done()
    _stock_send = _impl.RequestResponseCycle.send

    class _OneWriteCycle(_impl.RequestResponseCycle):
        """A request-response cycle whose head waits for a Content-Length body."""

        _head: bytes | None = None  # the head, held until the body comes

        # A plain function returning an awaitable, not a coroutine: streams pass through here on
        # every event, and a coroutine around uvicorn's would cost a frame each time.
        def send(self, message: Any) -> Awaitable[None]:  # type: ignore[override]
            head = self._head
            if head is not None:
                self._head = None
                if self._send_whole(head, message):
                    return _DONE
                if not self.disconnected:
                    self.transport.write(head)
            elif (
                not self.response_started
                and message["type"] == "http.response.start"
                and not (self.access_log and self.access_logger.isEnabledFor(logging.INFO))  # uvicorn logs it
                and not self.flow.write_paused
                and not self.disconnected
                and self.keep_alive
                and self.scope["method"] != "HEAD"
            ):
                head = self._prepare(message)
                if head is not None:
                    self._head = head
                    return _DONE
            return _stock_send(self, message)

        def _prepare(self, message: Any) -> bytes | None:
            """The head to hold, with the cycle set as uvicorn's start would; None: not this path."""
            status = message["status"]
            defaults = _default_lines(self.default_headers)
            if defaults is None:
                return None
            headers = message.get("headers", ())
            if type(headers) is not list and type(headers) is not tuple:
                return None  # a one-shot iterable: uvicorn must read it, and it can be read only once
            try:
                lines: list[bytes | None] = [*map(_lines.get, headers)]  # one pass in C for the known lines
            except TypeError:  # a header given as a list (ASGI allows it) is no key
                lines = [None] * len(headers)
            length: int | None = None
            while None in lines:  # new lines (a per-answer value, say), and the content-length
                i = lines.index(None)
                pair = headers[i]
                # (A capitalised Content-Length goes to _encode, which leaves it to uvicorn's path.)
                if pair[0] == b"content-length" and length is None and pair[1].isdigit():
                    length = int(pair[1])
                    lines[i] = b"content-length: %s\r\n" % pair[1]
                    continue
                line = _encode(pair)
                if line is None:
                    return None  # a second length, a connection or transfer-encoding header...
                if type(pair) is tuple and pair[0] not in _UNIQUE and len(_lines) < _MAX_LINES:
                    _lines[pair] = line
                lines[i] = line
            if length is None or status in (204, 304):
                return None
            self.response_started = True
            self.waiting_for_100_continue = False
            self.chunked_encoding = False
            self.expected_content_length = length
            return b"".join((_STATUS_LINE[status], defaults, *lines, b"\r\n"))  # type: ignore[arg-type]

        def _send_whole(self, head: bytes, message: Any) -> bool:
            """Write the head and the whole body at once, as uvicorn's body branch would end."""
            if (
                message["type"] != "http.response.body"
                or message.get("more_body", False)
                or self.disconnected
                or self.flow.write_paused
            ):
                return False
            body = message.get("body", b"")
            if len(body) != self.expected_content_length:
                return False  # uvicorn raises its own error for it
            self.transport.write(head + body)
            self.expected_content_length = 0
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:  # the server began to shut down since the start
                self.transport.close()
            self.on_response()
            return True

    class OneWriteProtocol(_impl.HttpToolsProtocol):
        """uvicorn's httptools protocol whose request cycles send whole answers in one write."""

        # uvicorn's own code, making a _OneWriteCycle where it makes a RequestResponseCycle. (Setting
        # `__class__` on the cycle afterwards would do the same, but CPython then moves the instance's
        # attributes into a dict of their own, and every attribute read of the cycle gets slower.)
        on_headers_complete = _with_globals(
            _impl.HttpToolsProtocol.on_headers_complete, RequestResponseCycle=_OneWriteCycle
        )

else:  # pragma: no cover
    OneWriteProtocol = None  # type: ignore[misc]
