"""The servers the benchmarks compare, each run in its own process: `python -m bench.servers KIND`.

- `mockllm`: mockllm itself, started as `mockllm serve` starts it (`mockllm.server.run`: `create_app`,
  `uvicorn_config`), with one of the bench scenarios (`--scenario throughput|ttfb|timed`).
- `floor`: the least a starlette app can do to answer the same requests: a precomputed JSON body, or
  a StreamingResponse of precomputed SSE events (chat's `data: ...`, the Responses API's
  `event: ...` + `data: ...`), one chunk per event. The bytes are mockllm's own (built once at
  start-up), so the servers send the same payloads; only the work per request differs.
- `floor-headers`: the same, also sending mockllm's response headers.
- `floor-onewrite`: the floor on mockllm's own HTTP protocol (`mockllm.protocol`, a whole answer in
  one write), to show what mockllm gains from the protocol and what from its own work.
- `naive`: a starlette stream that sleeps the gap before each chunk (summed `asyncio.sleep`), the
  usual way fakes pace a stream, for the timing-fidelity comparison.

All run under uvicorn with the very same settings (`mockllm.server.uvicorn_config`: uvloop, httptools,
no access log; the floors on uvicorn's stock httptools protocol but `floor-onewrite`, mockllm on its own)
on a loopback port picked by the system; the child prints `PORT <n>` once it accepts
connections, and stops when its stdin closes (the bench ended, however it ended).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from mockllm import Engine
from mockllm.server import listen, run, uvicorn_config

# What an SDK sends (compact JSON, as openai-python does); the bench client posts these bytes.
JSON_REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}, separators=(",", ":")
).encode()
STREAM_REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "stream": True},
    separators=(",", ":"),
).encode()
# The Responses API's (`POST /v1/responses`), as openai-python's `client.responses.create` sends it.
RESPONSES_REQUEST = json.dumps({"model": "gpt-4o-mini", "input": "Say hello."}, separators=(",", ":")).encode()
RESPONSES_STREAM_REQUEST = json.dumps(
    {"model": "gpt-4o-mini", "input": "Say hello.", "stream": True}, separators=(",", ":")
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
        # No `match.endpoint`: each rule answers chat and the Responses API alike (the same reply in
        # either API's shape), and the chat scenario stays what it was before the Responses API.
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
    # journal_limit as `mockllm serve` sets it (--journal-size, default 0): an unbounded journal would grow
    # through the whole bench and slow every garbage collection down.
    eng = Engine(seed=0, time_scale=1.0 if kind == "timed" else 0.0, journal_limit=0)
    eng.add(scenario(kind, stream_chunks, timed_chunks, gap_ms))
    return eng


class Payloads(NamedTuple):
    """mockllm's own answer to one bench request (non-streamed and streamed), to replay verbatim."""

    body: bytes  # the non-streamed body (chat.completion, or the Responses API's response object)
    body_headers: dict[str, str]  # its headers, but content-type
    events: list[bytes]  # the stream's SSE events, each with its blank line (chat: role, contents, finish, [DONE])
    stream_headers: dict[str, str]


def sse_events(data: bytes) -> list[bytes]:
    """A stream's bytes cut into its SSE events, each ending with its blank line."""
    parts = data.split(b"\n\n")
    if parts[-1]:
        raise ValueError(f"the stream does not end with a blank line: {data[-60:]!r}")
    return [part + b"\n\n" for part in parts[:-1]]


def _payloads(plain: Any, streamed: Any) -> Payloads:
    """From two of mockllm's Answers (`mockllm.plan.Answer`)."""
    if plain.status != 200 or streamed.status != 200 or streamed.writes is None:
        raise RuntimeError(
            f"mockllm answered the bench request with {plain.status} / {streamed.status}: {plain.body!r}"
        )
    others = (
        [(k.decode(), v.decode()) for k, v in plain.headers if k != b"content-type"],
        [(k.decode(), v.decode()) for k, v in streamed.headers if k != b"content-type"],
    )
    events = sse_events(b"".join(w.data for w in streamed.writes))
    return Payloads(plain.body, dict(others[0]), events, dict(others[1]))


def mockllm_payloads(stream_chunks: int) -> Payloads:
    """Chat Completions."""
    eng = engine("throughput", stream_chunks)
    return _payloads(eng.chat(JSON_REQUEST, {}), eng.chat(STREAM_REQUEST, {}))


def responses_payloads(stream_chunks: int) -> Payloads | None:
    """The Responses API; None when this mockllm has no `Engine.handle` (it predates the API)."""
    eng = engine("throughput", stream_chunks)
    if not hasattr(eng, "handle"):
        return None
    path = "/v1/responses"
    return _payloads(
        eng.handle("POST", path, {}, RESPONSES_REQUEST), eng.handle("POST", path, {}, RESPONSES_STREAM_REQUEST)
    )


def floor_app(stream_chunks: int, same_headers: bool = False) -> Starlette:
    """The floor: precomputed bytes, and nothing else (not even reading the request body).

    With `same_headers`, it also sends mockllm's response headers (x-request-id, rate limits...),
    which uvicorn's header handling makes cost ~10% of a short answer on its own.
    """
    routes = []
    # Routed on the path, so it need not read the body to tell a stream from a JSON answer.
    for path, p in (
        ("/v1/chat/completions", mockllm_payloads(stream_chunks)),
        ("/v1/responses", responses_payloads(stream_chunks)),
    ):
        if p is not None:
            routes += [
                Route(path, _json_endpoint(p, same_headers), methods=["POST"]),
                Route("/stream" + path, _stream_endpoint(p, same_headers), methods=["POST"]),
            ]
    return Starlette(routes=routes)


def _json_endpoint(p: Payloads, same_headers: bool) -> Any:
    body, headers = p.body, p.body_headers if same_headers else None

    async def answer(request: Request) -> Response:
        return Response(body, media_type="application/json", headers=headers)

    return answer


def _stream_endpoint(p: Payloads, same_headers: bool) -> Any:
    events, headers = p.events, p.stream_headers if same_headers else None

    async def replay() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    async def stream(request: Request) -> Response:
        return StreamingResponse(replay(), media_type="text/event-stream; charset=utf-8", headers=headers)

    return stream


def naive_app(timed_chunks: int, gap_ms: float) -> Starlette:
    events = mockllm_payloads(timed_chunks).events  # role, contents..., finish, [DONE]
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
    parser.add_argument("kind", choices=["mockllm", "floor", "floor-headers", "floor-onewrite", "naive"])
    parser.add_argument("--scenario", choices=["throughput", "ttfb", "timed"], default="throughput")
    parser.add_argument("--stream-chunks", type=int, default=100)
    parser.add_argument("--timed-chunks", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args(argv)

    app: Any = None
    if args.kind.startswith("floor"):
        app = floor_app(args.stream_chunks, same_headers=args.kind == "floor-headers")
    elif args.kind == "naive":
        app = naive_app(args.timed_chunks, args.gap_ms)

    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]

    def announce() -> None:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.01)
        print(f"PORT {port}", flush=True)

    def orphaned() -> None:
        sys.stdin.read()  # EOF: the bench that started us is gone, however it ended
        os.kill(os.getpid(), signal.SIGINT)  # uvicorn's own graceful stop

    threading.Thread(target=announce, daemon=True).start()
    threading.Thread(target=orphaned, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        if args.kind == "mockllm":
            run(engine(args.scenario, args.stream_chunks, args.timed_chunks, args.gap_ms), sock)  # = `mockllm serve`
        else:
            # The same uvicorn settings, and the same heap freeze as `run` (see mockllm.server.run).
            server = uvicorn.Server(uvicorn_config(app, port=port, one_write=args.kind == "floor-onewrite"))
            gc.freeze()
            server.run(sockets=[sock])


if __name__ == "__main__":
    main()
