"""The servers the benchmarks compare, each run in its own process: `python -m bench.servers KIND`.

- `mockllm`: mockllm's real app (`create_app` + `server.uvicorn_config`) with the bench scenario.
- `floor`: the least a starlette app can do to answer the same requests: a precomputed JSON body, or
  a StreamingResponse of precomputed `data: ...` events. The bytes are mockllm's own (built once at
  start-up), so both servers send the same payloads; only the work per request differs.
- `naive`: a starlette stream that sleeps the gap before each chunk (summed `asyncio.sleep`), the
  usual way fakes pace a stream, for the timing-fidelity comparison.

All three run under uvicorn with the very same settings (`mockllm.server.uvicorn_config`: uvloop,
httptools, no access log) on a loopback socket bound to port 0; the child prints `PORT <n>` once
it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mockllm import Engine
from mockllm.app import create_app
from mockllm.server import uvicorn_config

# What an SDK sends (compact JSON, as openai-python does); the bench client posts these bytes.
JSON_REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}, separators=(",", ":")
).encode()
STREAM_REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "stream": True},
    separators=(",", ":"),
).encode()
SHORT_CONTENT = "Hello! How can I help you today?"
WORDS = (" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", ",")


def stream_request(user: str) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": user}], "stream": True}
    return json.dumps(body, separators=(",", ":")).encode()


def chunks(n: int) -> list[str]:
    return [WORDS[i % len(WORDS)] for i in range(n)]


def scenario(kind: str, stream_chunks: int = 100, timed_chunks: int = 200, gap_ms: float = 10.0) -> dict[str, Any]:
    """The rules of each bench server: `throughput`, `ttfb` (time scale 0) or `timed` (time scale 1)."""
    if kind == "throughput":
        rules: list[dict[str, Any]] = [
            {"name": "stream", "match": {"stream": True}, "reply": {"chunks": chunks(stream_chunks)}},
            {"name": "short", "match": {"stream": False}, "reply": {"content": SHORT_CONTENT}},
        ]
    elif kind == "ttfb":  # a very long reply and a short one
        rules = [
            {"name": "long", "match": {"user": {"equals": "long"}}, "reply": {"chunks": chunks(20_000)}},
            {"name": "short", "match": {"user": {"equals": "short"}}, "reply": {"chunks": chunks(3)}},
        ]
    else:
        timing = {"ttft_ms": 0, "chunk_ms": gap_ms, "jitter_ms": 0}
        rules = [{"name": "timed", "reply": {"chunks": chunks(timed_chunks), "timing": timing}}]
    return {"version": 1, "rules": rules}


def engine(kind: str, stream_chunks: int = 100, timed_chunks: int = 200, gap_ms: float = 10.0) -> Engine:
    eng = Engine(seed=0, time_scale=1.0 if kind == "timed" else 0.0)
    eng.add(scenario(kind, stream_chunks, timed_chunks, gap_ms))
    return eng


def mockllm_payloads(stream_chunks: int) -> tuple[bytes, list[bytes]]:
    """mockllm's own answers to the bench requests: the JSON body, and the stream's writes."""
    eng = engine("throughput", stream_chunks)
    body = eng.chat(JSON_REQUEST, {}).body
    writes = eng.chat(STREAM_REQUEST, {}).writes
    assert writes is not None
    return body, [w.data for w in writes]


def floor_app(stream_chunks: int) -> Starlette:
    body, events = mockllm_payloads(stream_chunks)

    async def chat(request: Request) -> Response:
        return Response(body, media_type="application/json")

    async def replay() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    async def stream(request: Request) -> Response:
        return StreamingResponse(replay(), media_type="text/event-stream; charset=utf-8")

    # The floor skips even reading the request body and routes on the path: a strict floor.
    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/stream/v1/chat/completions", stream, methods=["POST"]),
        ]
    )


def naive_app(timed_chunks: int, gap_ms: float) -> Starlette:
    _, events = mockllm_payloads(timed_chunks)  # role, contents..., finish, [DONE]
    gap = gap_ms / 1000

    async def replay() -> AsyncIterator[bytes]:
        yield events[0]
        for i, event in enumerate(events[1:], start=1):
            if 1 < i <= timed_chunks:  # the gap before each content chunk after the first
                await asyncio.sleep(gap)
            yield event

    async def stream(request: Request) -> Response:
        await request.body()
        return StreamingResponse(replay(), media_type="text/event-stream; charset=utf-8")

    return Starlette(routes=[Route("/v1/chat/completions", stream, methods=["POST"])])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=["mockllm", "floor", "naive"])
    parser.add_argument("--scenario", choices=["throughput", "ttfb", "timed"], default="throughput")
    parser.add_argument("--stream-chunks", type=int, default=100)
    parser.add_argument("--timed-chunks", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args(argv)

    app: Any
    if args.kind == "mockllm":
        app = create_app(engine(args.scenario, args.stream_chunks, args.timed_chunks, args.gap_ms))
    elif args.kind == "floor":
        app = floor_app(args.stream_chunks)
    else:
        app = naive_app(args.timed_chunks, args.gap_ms)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, port=port))

    def announce() -> None:
        while not server.started:
            time.sleep(0.005)
        print(f"PORT {port}", flush=True)

    def orphaned() -> None:
        sys.stdin.read()  # EOF: the bench that started us is gone, however it ended
        server.should_exit = True

    threading.Thread(target=announce, daemon=True).start()
    threading.Thread(target=orphaned, daemon=True).start()
    server.run(sockets=[sock])  # as `mockllm serve` runs: the loop uvicorn's config picks
    sys.exit(0)


if __name__ == "__main__":
    main()
