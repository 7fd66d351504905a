"""BackgroundServer: starts and stops without uvicorn's 100 ms polls, and never hangs on a stream.

How fast it is belongs to bench/bench_fixture.py; these tests check behaviour, with bounds
generous enough for a busy machine.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest

from mockllm import Engine
from mockllm.server import BackgroundServer


def test_serves_then_stops_with_an_idle_keep_alive_connection_open() -> None:
    engine = Engine()
    engine.add({"reply": {"content": "hi"}})
    server = BackgroundServer(engine).start()
    client = httpx.Client()  # keeps its connection open after the request
    response = client.post(
        f"{server.url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 200
    assert "date" in response.headers  # uvicorn's tick (Date header) still runs
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 2
    with pytest.raises(httpx.TransportError):
        client.get(f"{server.url}/v1/models")
    client.close()
    server.stop()  # a second stop is harmless


def test_stop_ends_a_stalled_stream_cleanly_and_quietly(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine()
    engine.add({"reply": {"content": "a b c d", "fault": {"kind": "stall", "after_chunks": 1, "stall_ms": 60000}}})
    server = BackgroundServer(engine).start()
    outcome: list[BaseException | None] = []
    got_a_chunk = threading.Event()

    def read() -> None:
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
        try:
            with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as response:
                for _ in response.iter_raw():
                    got_a_chunk.set()
            outcome.append(None)
        except httpx.TransportError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    assert got_a_chunk.wait(10)
    uvicorn_log = logging.getLogger("uvicorn.error")  # it does not propagate to the root logger caplog watches
    uvicorn_log.addHandler(caplog.handler)
    try:
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 5  # not the 60 s stall
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    reader.join(10)
    # its body closed where it stood (a shorter stream, read to its end), not a cut connection
    assert outcome == [None]
    assert not caplog.records  # no "Exception in ASGI application" for a stream ended on purpose


def test_two_servers_side_by_side() -> None:
    with BackgroundServer() as one, BackgroundServer() as two:
        assert one.port != two.port
        for server in (one, two):
            assert httpx.get(f"{server.url}/v1/models").json()["object"] == "list"
