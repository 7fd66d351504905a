"""The servers the benchmarks compare, each run in its own process: `python -m bench.servers KIND`.

- `mockllm`: mockllm itself, started as `mockllm serve` starts it (`mockllm.server.run`: `create_app`,
  `uvicorn_config`), with one of the bench scenarios (`--scenario throughput|ttfb|timed`).
- `floor`: the least a starlette app can do to answer the same requests: a precomputed body, or a
  StreamingResponse of precomputed SSE events (chat's `data: ...`, the named `event: ...` +
  `data: ...` of the Responses API and Anthropic, Gemini's `\r\n` lines), one chunk per event, for
  every API of `API_TABLE`. The bytes are mockllm's own answer to the very request the bench sends
  (`capture`, once at start-up), so the servers send the same payloads; only the work per request
  differs.
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
from mockllm.cli import DEFAULT_JOURNAL_SIZE as SERVE_JOURNAL
from mockllm.dialects import DIALECTS
from mockllm.server import listen, run, uvicorn_config


def _compact(body: dict[str, Any]) -> bytes:
    """JSON as the SDKs send it (compact, keys in the SDK's order: httpx's `json=`)."""
    return json.dumps(body, separators=(",", ":")).encode()


class Api(NamedTuple):
    """One API the benchmarks measure: the request its SDK sends, non-streamed and streamed."""

    name: str  # the dialect's name in mockllm.dialects.DIALECTS, and the bench's `--api` choice
    path: str
    request: bytes
    stream_path: str | None  # None: the API never streams (a non-streamed figure only)
    stream_request: bytes | None
    crlf: bool = False  # its SSE lines end with \r\n (events end with a blank \r\n line)


_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
_RESPONSES = {"model": "gpt-4o-mini", "input": "Say hello."}
# anthropic-python's messages.create: max_tokens, messages, model, then the optional keys (stream among them).
_ANTHROPIC = {"max_tokens": 1024, "messages": [{"role": "user", "content": "Say hello."}], "model": "claude-sonnet-4-5"}
_COMPLETIONS = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello."}
# openai-python's embeddings.create asks for base64 when the caller gives no encoding_format.
_EMBEDDINGS = {"input": "Say hello.", "model": "text-embedding-3-small", "encoding_format": "base64"}
# google-genai's models.generate_content(contents="Say hello."): the stream is another method, not a key.
_GEMINI = {"contents": [{"parts": [{"text": "Say hello."}], "role": "user"}]}
_GEMINI_MODEL = "/v1beta/models/gemini-2.0-flash"

# The one table of the APIs the bench measures, in the order it reports them; a row whose dialect this
# mockllm lacks is left out (`APIS`), so an API joins the bench by its row here, and when it lands.
API_TABLE: tuple[Api, ...] = (
    Api("chat", "/v1/chat/completions", _compact(_CHAT), "/v1/chat/completions", _compact({**_CHAT, "stream": True})),
    Api("responses", "/v1/responses", _compact(_RESPONSES), "/v1/responses", _compact({**_RESPONSES, "stream": True})),
    Api("anthropic", "/v1/messages", _compact(_ANTHROPIC), "/v1/messages", _compact({**_ANTHROPIC, "stream": True})),
    Api(
        "completions",
        "/v1/completions",
        _compact(_COMPLETIONS),
        "/v1/completions",
        _compact({**_COMPLETIONS, "stream": True}),
    ),
    Api("embeddings", "/v1/embeddings", _compact(_EMBEDDINGS), None, None),
    Api(
        "gemini",
        _GEMINI_MODEL + ":generateContent",
        _compact(_GEMINI),
        _GEMINI_MODEL + ":streamGenerateContent?alt=sse",
        _compact(_GEMINI),
        crlf=True,
    ),
)
APIS: dict[str, Api] = {api.name: api for api in API_TABLE if api.name in DIALECTS}
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
    # journal_limit as `mockllm serve` sets it (--journal-size, default 1000: the control API and the inspector
    # read it); an unbounded journal would grow through the whole bench and slow every garbage collection down.
    eng = Engine(seed=0, time_scale=1.0 if kind == "timed" else 0.0, journal_limit=SERVE_JOURNAL)
    eng.add(scenario(kind, stream_chunks, timed_chunks, gap_ms))
    return eng


class Payload(NamedTuple):
    """mockllm's own answer to one bench request, to replay verbatim."""

    content_type: str
    headers: dict[str, str]  # the others, in mockllm's order
    body: bytes  # the whole body (a stream's too)
    events: list[bytes]  # a stream's SSE events, each with its blank line ([] when not streamed)


def sse_events(data: bytes, crlf: bool = False) -> list[bytes]:
    """A stream's bytes cut into its SSE events, each ending with its blank line."""
    blank = b"\r\n\r\n" if crlf else b"\n\n"
    parts = data.split(blank)
    if parts[-1]:
        raise ValueError(f"the stream does not end with a blank line: {data[-60:]!r}")
    return [part + blank for part in parts[:-1]]


def capture(api: Api, streamed: bool, stream_chunks: int) -> Payload:
    """mockllm's answer to the API's bench request, as `Engine.handle` makes it for the app (which hands
    the engine the path without its query)."""
    path, body = (api.stream_path, api.stream_request) if streamed else (api.path, api.request)
    assert path is not None and body is not None, f"{api.name} does not stream"
    answer = engine("throughput", stream_chunks).handle("POST", path.partition("?")[0], {}, body)
    if answer.status != 200 or (answer.writes is None) == streamed:
        shape = "a stream" if answer.writes is not None else "a whole body"
        raise RuntimeError(
            f"mockllm answered the bench's {api.name} request with {answer.status}, {shape}: {answer.body!r}"
        )
    headers = [(k.decode(), v.decode()) for k, v in answer.headers]
    content_type = next(v for k, v in headers if k == "content-type")
    others = {k: v for k, v in headers if k != "content-type"}
    if answer.writes is None:
        return Payload(content_type, others, answer.body, [])
    data = b"".join(w.data for w in answer.writes)
    return Payload(content_type, others, data, sse_events(data, api.crlf))


def floor_path(api: Api, streamed: bool) -> str:
    """Where the floors serve an API's answer: they route on the path alone (they never read the body),
    so a stream that shares its path with the whole answer is served under /stream."""
    if not streamed:
        return api.path
    assert api.stream_path is not None
    return "/stream" + api.stream_path


def floor_app(stream_chunks: int, same_headers: bool = False) -> Starlette:
    """The floor: precomputed bytes, and nothing else (not even reading the request body).

    With `same_headers`, it also sends mockllm's response headers (x-request-id, rate limits...),
    which uvicorn's header handling makes cost ~10% of a short answer on its own.
    """
    routes = []
    for api in APIS.values():
        routes.append(
            Route(api.path, _json_endpoint(capture(api, False, stream_chunks), same_headers), methods=["POST"])
        )
        if api.stream_path is not None:
            path = floor_path(api, True).partition("?")[0]
            routes.append(
                Route(path, _stream_endpoint(capture(api, True, stream_chunks), same_headers), methods=["POST"])
            )
    return Starlette(routes=routes)


def _json_endpoint(p: Payload, same_headers: bool) -> Any:
    body, media_type, headers = p.body, p.content_type, p.headers if same_headers else None

    async def answer(request: Request) -> Response:
        return Response(body, media_type=media_type, headers=headers)

    return answer


def _stream_endpoint(p: Payload, same_headers: bool) -> Any:
    events, media_type, headers = p.events, p.content_type, p.headers if same_headers else None

    async def replay() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    async def stream(request: Request) -> Response:
        return StreamingResponse(replay(), media_type=media_type, headers=headers)

    return stream


def naive_app(timed_chunks: int, gap_ms: float) -> Starlette:
    events = capture(APIS["chat"], True, timed_chunks).events  # role, contents..., finish, [DONE]
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
