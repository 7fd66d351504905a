"""A small, fast HTTP/1.1 keep-alive load generator on raw asyncio protocols (uvloop when installed).

Each connection sends a request, parses the answer straight from `data_received`
(Content-Length or chunked), and sends the next one at once: no task switch, no
per-request objects beyond a few ints, so one client core outruns one server core.
SSE events are counted as blank lines in the decoded body (`\n\n`, or `\r\n\r\n` for an API
whose lines end so); a timed read also stamps each event with the `perf_counter()` of the
network read that completed it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

__all__ = ["Conn", "Response", "connect", "load", "reopen", "request_bytes", "timed_streams"]


def request_bytes(path: str, body: bytes, port: int) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"accept: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass(slots=True)
class Response:
    status: int = 0
    events: int = 0  # SSE events (blank lines) in the body
    body_bytes: int = 0
    first_byte: float = 0.0  # perf_counter() of the first read of the response
    first_event: float = 0.0
    done: float = 0.0
    event_times: list[float] = field(default_factory=list)  # filled when timed


class Conn(asyncio.Protocol):
    """One keep-alive connection that plays requests back to back until told to stop."""

    def __init__(self, request: bytes, timed: bool = False, crlf: bool = False) -> None:
        self.request = request
        self.timed = timed
        self.crlf = crlf
        self.blank = b"\r\n\r\n" if crlf else b"\n\n"  # what ends an SSE event
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.loop = asyncio.get_running_loop()
        self.idle: asyncio.Future[None] = self.loop.create_future()  # set when no request is out
        self.repeat = False
        self.completed = 0
        self.events = 0
        self.errors = 0
        self.last: Response | None = None
        self.sent_at = 0.0
        self.active = time.perf_counter()  # the last read: the server's keep-alive clock starts about then
        self._reset()

    def _reset(self) -> None:
        self.head_done = False
        self.chunked = False
        self.remaining = 0  # content-length left, or bytes left in the current chunk
        self.resp = Response()
        self.tail: bytes = b""  # the decoded body's last bytes when they may begin a blank line cut by a read

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        self.idle.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.idle.done():
            self.errors += 1
            self.idle.set_result(None)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.active = now
        resp = self.resp
        if not resp.first_byte:
            resp.first_byte = now
        self.buf += data
        while self._parse(now):
            self.completed += 1
            self.events += self.resp.events
            self.last = self.resp
            self._reset()
            if self.repeat:
                self.sent_at = time.perf_counter()
                self.transport.write(self.request)  # type: ignore[union-attr]
            else:
                self.idle.set_result(None)
                return

    # -- parsing ----------------------------------------------------------------------

    def _body(self, piece: bytes | bytearray, now: float) -> None:
        resp = self.resp
        resp.body_bytes += len(piece)
        blank = self.blank
        n = piece.count(blank)
        if self.tail and piece[:1] in (b"\n", b"\r"):  # a blank line across two reads (seldom)
            n += (self.tail + piece[: len(blank) - 1]).count(blank)
        if piece:
            if piece[-1:] not in (b"\n", b"\r"):
                self.tail = b""
            else:  # the body's last len(blank) - 1 bytes
                self.tail = bytes((self.tail + piece if len(piece) < len(blank) - 1 else piece)[1 - len(blank) :])
        if n:
            if not resp.events:
                resp.first_event = now
            resp.events += n
            if self.timed:
                resp.event_times.extend([now] * n)

    def _parse(self, now: float) -> bool:
        """Consume what the buffer holds; True when a whole response was read."""
        buf = self.buf
        if not self.head_done:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buf[:end]).lower()
            del buf[: end + 4]
            self.resp.status = int(head[9:12])
            self.head_done = True
            if b"transfer-encoding: chunked" in head:
                self.chunked = True
                self.remaining = -1  # expecting a chunk-size line
            else:
                at = head.find(b"content-length:")
                eol = head.find(b"\r\n", at)
                self.remaining = int(head[at + 15 : eol if eol > 0 else len(head)])
        if not self.chunked:
            if len(buf) < self.remaining:
                return False
            self._body(buf[: self.remaining], now)
            del buf[: self.remaining]
            self.resp.done = now
            return True
        pos = 0
        try:
            while True:
                if self.remaining < 0:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        return False
                    size = int(buf[pos:eol], 16)
                    if size == 0:
                        if len(buf) < eol + 4:
                            return False
                        pos = eol + 4  # the last chunk, and the blank line after it (no trailers)
                        self.resp.done = now
                        return True
                    pos = eol + 2
                    self.remaining = size
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    return False
                self._body(memoryview(buf)[pos : pos + take].tobytes(), now)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    if len(buf) < pos + 2:
                        return False  # wait for the chunk's CRLF (remaining stays 0)
                    pos += 2
                    self.remaining = -1
        finally:
            del buf[:pos]

    # -- driving ----------------------------------------------------------------------

    def send(self) -> None:
        assert self.transport is not None and self.idle.done()
        self.idle = self.loop.create_future()
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, request: bytes, timed: bool = False, crlf: bool = False) -> Conn:
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(loop.create_connection(lambda: Conn(request, timed, crlf), "127.0.0.1", port), 10)
    await asyncio.wait_for(conn.idle, 10)
    return conn


@dataclass(slots=True)
class LoadResult:
    seconds: float
    requests: int
    events: int
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def eps(self) -> float:
        return self.events / self.seconds


async def reopen(conns: list[Conn], port: int, idle: float = 4.0) -> None:
    """Replace the connections the server closed, and those about to be closed: uvicorn drops
    keep-alives idle for 5 s, and one dropped as its next request goes out would fail that request."""
    now = time.perf_counter()
    for i, conn in enumerate(conns):
        if conn.transport is None or conn.transport.is_closing() or now - conn.active > idle:
            conn.close()
            conns[i] = await connect(port, conn.request, conn.timed, conn.crlf)


async def load(conns: list[Conn], seconds: float) -> LoadResult:
    """Keep every connection busy for `seconds`, then count what completed in that window.

    A response still in flight when the window closes is let finish but not counted.
    """
    for conn in conns:
        conn.completed = conn.events = conn.errors = 0
    start = time.perf_counter()
    for conn in conns:
        conn.repeat = True
        conn.send()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - start
    done = sum(c.completed for c in conns), sum(c.events for c in conns)
    for conn in conns:
        conn.repeat = False
    await asyncio.wait_for(asyncio.gather(*(c.idle for c in conns)), 30)
    errors = sum(c.errors for c in conns)
    return LoadResult(elapsed, done[0], done[1], errors)


async def timed_streams(conns: list[Conn]) -> list[tuple[float, Response]]:
    """Start one request on each connection at once; (send time, response) for each."""
    for conn in conns:
        conn.repeat = False
        conn.send()
    await asyncio.wait_for(asyncio.gather(*(c.idle for c in conns)), 60)
    out = []
    for conn in conns:
        assert conn.last is not None and conn.errors == 0, "a stream failed"
        out.append((conn.sent_at, conn.last))
    return out
