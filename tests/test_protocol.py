"""mockllm.protocol: the one-write protocol puts the very bytes on the wire that uvicorn's own does."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

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
