"""mockllm.protocol: the one-write protocol puts the very bytes on the wire that uvicorn's own does."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from mockllm import Engine
from mockllm.protocol import OneWriteProtocol, available
from mockllm.server import BackgroundServer, uvicorn_config

RULES = {
    "version": 1,
    "rules": [
        {"name": "hello", "match": {"user": {"equals": "hi"}}, "reply": {"content": "Hello there!"}},
        {
            "name": "tools",
            "match": {"user": {"equals": "tool"}},
            "reply": {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]},
        },
        {
            "name": "limited",
            "match": {"user": {"equals": "429"}},
            "reply": {"error": {"status": 429, "headers": {"Retry-After": "2", "X-Custom": "é"}}},
        },
        {
            "name": "drop",
            "match": {"user": {"equals": "drop"}},
            "reply": {"content": "x", "fault": {"kind": "disconnect"}},
        },
    ],
}


def chat(user: str, *, stream: bool = False, extra: str = "") -> bytes:
    stream_part = ',"stream":true' if stream else ""
    body = f'{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{user}"}}]{stream_part}}}'.encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


REQUESTS = {
    "json": [chat("hi")],
    "tool calls": [chat("tool")],
    "scripted error with headers": [chat("429")],
    "no rule (418)": [chat("nobody")],
    "bad request (400)": [b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n{x}"],
    "stream": [chat("hi", stream=True)],
    "three on one connection": [chat("hi"), chat("hi", stream=True), chat("429")],
    "connection: close": [chat("hi", extra="connection: close\r\n")],
    "HTTP/1.0": [chat("hi").replace(b"HTTP/1.1", b"HTTP/1.0")],
    "models": [b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"],
    "HEAD models": [b"HEAD /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"],
    "unknown route (404)": [b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n"],
    "wrong method (405)": [b"GET /v1/chat/completions HTTP/1.1\r\nhost: x\r\n\r\n"],
    "dropped (disconnect fault)": [chat("drop")],
}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[BackgroundServer, BackgroundServer]]:
    stock = BackgroundServer(Engine(time_scale=0), one_write=False)
    fast = BackgroundServer(Engine(time_scale=0))
    for server in (stock, fast):
        server.engine.add(RULES)
    with stock, fast:
        yield stock, fast


def exchange(port: int, requests: list[bytes]) -> bytes:
    """Send the requests one after another on one connection; all that came back, dates blanked."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for request in requests:
            sock.sendall(request)
            out += read_idle(sock)
    return re.sub(rb"date: [^\r]+", b"date: -", out)


def read_idle(sock: socket.socket, idle: float = 0.15) -> bytes:
    """What arrives until the connection closes or is quiet for `idle` seconds."""
    data = b""
    sock.settimeout(idle)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            part = sock.recv(65536)
        except TimeoutError:
            break
        if not part:
            break
        data += part
    return data


def test_the_fast_protocol_is_in_use() -> None:
    # If a uvicorn release moved the fields it relies on, mockllm would quietly fall back to the
    # stock protocol; this says so loudly instead.
    assert available()
    assert uvicorn_config(None).http is OneWriteProtocol
    assert uvicorn_config(None, one_write=False).http == "httptools"


@pytest.mark.parametrize("name", list(REQUESTS))
def test_same_bytes_as_uvicorn(servers: tuple[BackgroundServer, BackgroundServer], name: str) -> None:
    stock, fast = servers
    for server in servers:
        server.engine.reset()
    want = exchange(stock.port, REQUESTS[name])
    assert want.startswith(b"HTTP/1.")
    assert exchange(fast.port, REQUESTS[name]) == want


def test_whole_answer_in_one_write() -> None:
    """Over a recording transport: a JSON answer is one write, head and body; a stream's head leaves first."""
    import asyncio

    from mockllm.app import create_app

    engine = Engine(time_scale=0)
    engine.add(RULES)
    config = uvicorn_config(create_app(engine))
    config.load()

    class Recorder(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[bytes] = []

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.writes.append(bytes(data))

        def get_extra_info(self, name: str, default: object = None) -> object:
            return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

        def is_closing(self) -> bool:
            return False

        def pause_reading(self) -> None: ...
        def resume_reading(self) -> None: ...
        def close(self) -> None: ...

    async def run(request: bytes) -> list[bytes]:
        from uvicorn.server import ServerState

        protocol = OneWriteProtocol(config, ServerState(), {}, asyncio.get_running_loop())
        transport = Recorder()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(50):
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    plain = asyncio.run(run(chat("hi")))
    assert len(plain) == 1
    head, _, body = plain[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body.startswith(b'{"id":"chatcmpl-') and body.endswith(b"}")
    streamed = asyncio.run(run(chat("hi", stream=True)))
    assert streamed[0].endswith(b"\r\n\r\n") and b"data:" not in streamed[0]  # the head, on its own
    assert len(streamed) > 3


# --- A raw ASGI app under both protocols -----------------------------------------------------------
#
# mockllm's own app always sends its headers as a list of lower-case tuples; the ASGI spec allows
# more (any iterable of pairs, pairs as lists, names in any case), and an app can get a response
# wrong (a bad header value, a body of the wrong length). The one-write path must either handle
# such a response exactly as uvicorn does or leave it to uvicorn: the client sees the same bytes.

TEXT = (b"content-type", b"text/plain")
LENGTH_2 = (b"content-length", b"2")


def _pairs(*pairs: Any) -> Iterator[Any]:
    yield from pairs


# path -> (the response's `headers`, made afresh for each request; its body, in parts). The path's
# first word says what uvicorn does with it: "bad" closes the connection without a byte (it raises
# on the header before writing), "wrong" sends the head (and what body fits) then closes; the others
# keep the connection open, so a second request on it goes through the remembered header lines.
RAW_CASES: dict[str, tuple[Callable[[], Any], list[bytes]]] = {
    "tuples": (lambda: [TEXT, LENGTH_2], [b"ok"]),
    "tuple-of-tuples": (lambda: (TEXT, LENGTH_2), [b"ok"]),
    "lists": (lambda: [[b"content-type", b"text/plain"], [b"content-length", b"2"]], [b"ok"]),
    "tuples-and-lists": (lambda: [TEXT, [b"x-list", b"1"], LENGTH_2], [b"ok"]),
    "generator": (lambda: _pairs(TEXT, (b"x-gen", b"1"), LENGTH_2), [b"ok"]),
    "iterator": (lambda: iter([TEXT, LENGTH_2]), [b"ok"]),
    "capitalised-length": (lambda: [(b"Content-Type", b"text/plain"), (b"Content-Length", b"2")], [b"ok"]),
    "two-lengths": (lambda: [TEXT, LENGTH_2, LENGTH_2], [b"ok"]),
    "status-204": (lambda: [(b"content-length", b"0")], [b""]),
    "empty-body": (lambda: [TEXT, (b"content-length", b"0")], [b""]),
    "body-in-parts": (lambda: [TEXT, LENGTH_2], [b"o", b"k"]),
    "no-length": (lambda: [TEXT], [b"ok"]),  # chunked
    "no-length-in-parts": (lambda: [TEXT], [b"o", b"k"]),
    "no-headers": (lambda: [], [b"ok"]),
    "bad-value": (lambda: [TEXT, LENGTH_2, (b"x-bad", b"a\nb")], [b"ok"]),
    "bad-name": (lambda: [(b"bad name", b"x"), LENGTH_2], [b"ok"]),
    "wrong-short-body": (lambda: [TEXT, (b"content-length", b"5")], [b"ok"]),
    "wrong-long-body": (lambda: [TEXT, (b"content-length", b"1")], [b"ok"]),
}
# Headers given as a generator, on answers that uvicorn's own path must send: the one-write path leaves
# a one-shot iterable to uvicorn unread (it once read it, and uvicorn then saw no headers at all).
GENERATOR_TO_UVICORN: dict[str, tuple[Callable[[], Any], list[bytes]]] = {
    "generator-no-length": (lambda: _pairs(TEXT, (b"x-gen", b"1")), [b"ok"]),
    "generator-capitalised-length": (lambda: _pairs(TEXT, (b"Content-Length", b"2")), [b"ok"]),
    "generator-connection-close": (lambda: _pairs(TEXT, LENGTH_2, (b"connection", b"close")), [b"ok"]),
    "bad-generator-value": (lambda: _pairs(TEXT, LENGTH_2, (b"x-bad", b"a\nb")), [b"ok"]),
}

SEEN: list[tuple[str, type]] = []  # (path, type of the request-response cycle) for every request served
WRITES: list[list[bytes]] = []  # what /count's cycle wrote to its transport, one list per request


class CountingTransport:
    """Delegates to the real transport, noting each `write`."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


async def raw_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    assert scope["type"] == "http"
    path = scope["path"].lstrip("/")
    cycle = send.__self__  # type: ignore[attr-defined]  # uvicorn passes the cycle's bound `send`
    SEEN.append((path, type(cycle)))
    status = 204 if path == "status-204" else 200
    if path == "request-id":  # the id the client sent, as a proxy or a tracing middleware would
        headers: Any = [TEXT, (b"x-request-id", dict(scope["headers"])[b"x-request-id"]), LENGTH_2]
        parts = [b"ok"]
    elif path == "count":
        # The least invasive way to see the writes themselves (the client cannot: TCP may merge or
        # split them): this one cycle's `transport` attribute, which its `send` writes through,
        # becomes a wrapper that notes each write and passes it on. Nothing else is touched.
        counter = CountingTransport(cycle.transport)
        cycle.transport = counter
        WRITES.append(counter.writes)
        headers, parts = [TEXT, (b"content-length", b"5")], [b"hello"]
    else:
        make_headers, parts = {**RAW_CASES, **GENERATOR_TO_UVICORN}[path]
        headers = make_headers()
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for i, part in enumerate(parts):
        await send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})


class RawServer(BackgroundServer):
    """BackgroundServer's thread, quick start and stop, around `raw_app` instead of mockllm's app."""

    def __init__(self, *, one_write: bool) -> None:
        super().__init__(one_write=one_write)  # binds 127.0.0.1 (mockllm.server.listen)
        self._server = uvicorn.Server(uvicorn_config(raw_app, "127.0.0.1", self.port, one_write=one_write))


@pytest.fixture(scope="module")
def raw_servers() -> Iterator[tuple[RawServer, RawServer]]:
    stock, fast = RawServer(one_write=False), RawServer(one_write=True)
    assert stock._server.config.http == "httptools" and fast._server.config.http is OneWriteProtocol
    with stock, fast:
        yield stock, fast


def get(path: str, extra: str = "") -> bytes:
    return f"GET /{path} HTTP/1.1\r\nhost: x\r\n{extra}\r\n".encode()


LAST = get("tuples", "connection: close\r\n")  # ends a raw exchange: the server answers and closes


def raw_exchange(port: int, requests: list[bytes]) -> list[bytes]:
    """What came back for each request on one connection, dates blanked; no idle waits.

    Each answer is read until its framing says it is complete (or, after `connection: close`, until
    the server closes), then the next request goes. While the connection stays open a last request
    (LAST, `connection: close`) follows, read until the server closes: any stray byte after an answer
    shows in the next one read.
    """
    answers: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for request in [*requests, LAST]:
            sock.sendall(request)
            answer, still_open = read_answer(sock, until_close=request is LAST)
            answers.append(re.sub(rb"date: [^\r]+", b"date: -", answer))
            if not still_open:
                break
    return answers


def read_answer(sock: socket.socket, *, until_close: bool) -> tuple[bytes, bool]:
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        head = data[:end].lower()
        if end >= 0 and not until_close and b"\r\nconnection: close\r\n" not in head + b"\r\n":
            length = re.search(rb"\r\ncontent-length: (\d+)", head)
            status = int(head[9:12])
            if status in (204, 304) or (length and len(data) >= end + 4 + int(length[1])):
                return data, True
            if b"\r\ntransfer-encoding: chunked" in head and data.endswith(b"\r\n0\r\n\r\n"):
                return data, True
        part = sock.recv(65536)  # TimeoutError after 5 s of silence: the test fails, it does not hang
        if not part:
            return data, False
        data += part


@pytest.mark.parametrize("name", list(RAW_CASES))
def test_raw_app_same_bytes_as_uvicorn(raw_servers: tuple[RawServer, RawServer], name: str) -> None:
    stock, fast = raw_servers
    requests = [get(name), get(name)]  # the second goes through the remembered lines, if any
    want = raw_exchange(stock.port, requests)
    assert raw_exchange(fast.port, requests) == want
    if name.startswith("bad"):  # uvicorn raised on the header before writing, and closed
        assert want == [b""]
    elif name.startswith("wrong"):  # uvicorn sent the head and what body it could, then closed
        assert len(want) == 1 and want[0].startswith(b"HTTP/1.1 200 OK\r\n")
    else:
        assert len(want) == 3 and all(answer.startswith(b"HTTP/1.1 20") for answer in want)


def test_raw_app_wire_bytes_spelled_out(raw_servers: tuple[RawServer, RawServer]) -> None:
    """Some of the above byte for byte, so that both protocols going wrong the same way would show."""
    ok = b"HTTP/1.1 200 OK\r\ndate: -\r\nserver: uvicorn\r\ncontent-type: text/plain\r\n"
    expected = {
        "lists": ok + b"content-length: 2\r\n\r\nok",
        "capitalised-length": ok + b"content-length: 2\r\n\r\nok",
        "generator": ok + b"x-gen: 1\r\ncontent-length: 2\r\n\r\nok",
        "no-length": ok + b"transfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        "wrong-short-body": ok + b"content-length: 5\r\n\r\nok",
        "wrong-long-body": ok + b"content-length: 1\r\n\r\n",
    }
    for server in raw_servers:
        for name, answer in expected.items():
            assert raw_exchange(server.port, [get(name)])[0] == answer, (server._server.config.http, name)


@pytest.mark.parametrize("name", list(GENERATOR_TO_UVICORN))
def test_raw_app_generator_headers_left_to_uvicorn(raw_servers: tuple[RawServer, RawServer], name: str) -> None:
    stock, fast = raw_servers
    want = raw_exchange(stock.port, [get(name)])
    if name.startswith("bad"):
        assert want == [b""]  # uvicorn refused the header and closed
    else:
        assert b"content-type: text/plain\r\n" in want[0]
    assert raw_exchange(fast.port, [get(name)]) == want


def test_request_ids_are_not_remembered(raw_servers: tuple[RawServer, RawServer]) -> None:
    from mockllm.protocol import _lines

    stock, fast = raw_servers
    requests = [get("request-id", "x-request-id: first-1\r\n"), get("request-id", "x-request-id: second-2\r\n")]
    want = raw_exchange(stock.port, requests)
    assert b"x-request-id: first-1\r\n" in want[0] and b"x-request-id: second-2\r\n" in want[1]
    assert raw_exchange(fast.port, requests) == want
    assert TEXT in _lines  # the other lines are remembered...
    assert not [pair for pair in list(_lines) if pair[0].lower() == b"x-request-id"]  # ...but not the ids


def test_raw_app_content_length_answer_is_one_write(raw_servers: tuple[RawServer, RawServer]) -> None:
    stock, fast = raw_servers
    WRITES.clear()
    answer = raw_exchange(fast.port, [get("count")])[0]
    (writes,) = WRITES
    assert len(writes) == 1  # head and body together
    assert re.sub(rb"date: [^\r]+", b"date: -", writes[0]) == answer
    assert answer.endswith(b"content-length: 5\r\n\r\nhello")
    # Under stock uvicorn the same count says two writes, so the check above can tell the difference.
    WRITES.clear()
    assert raw_exchange(stock.port, [get("count")])[0] == answer
    (writes,) = WRITES
    assert len(writes) == 2 and writes[0].endswith(b"\r\n\r\n") and writes[1] == b"hello"


def test_one_write_cycles_are_made_as_such(raw_servers: tuple[RawServer, RawServer]) -> None:
    """The cycle is built as a _OneWriteCycle, not built as a RequestResponseCycle and then given a
    new `__class__` (which would cost CPython's compact instance attributes)."""
    from uvicorn.protocols.http import httptools_impl

    from mockllm.protocol import _OneWriteCycle

    stock, fast = raw_servers
    for server, cycle_type in ((fast, _OneWriteCycle), (stock, httptools_impl.RequestResponseCycle)):
        SEEN.clear()
        raw_exchange(server.port, [get("tuples"), get("no-length")])
        assert [path for path, _ in SEEN] == ["tuples", "no-length", "tuples"]  # the last: LAST
        assert all(seen is cycle_type for _, seen in SEEN)
    # How: uvicorn's own on_headers_complete, run with `RequestResponseCycle` meaning _OneWriteCycle;
    # uvicorn's module keeps its class, and neither the copied code nor the class assigns `__class__`.
    starts = OneWriteProtocol.on_headers_complete
    assert starts.__code__ is httptools_impl.HttpToolsProtocol.on_headers_complete.__code__
    assert starts.__globals__["RequestResponseCycle"] is _OneWriteCycle
    assert httptools_impl.RequestResponseCycle is not _OneWriteCycle
    assert "__class__" not in starts.__code__.co_names
    assert "__init__" not in vars(_OneWriteCycle) and "__new__" not in vars(_OneWriteCycle)
