"""The servers' per-request work without the network: `python -m bench.inprocess [--api A] [--stream] [SERVER...]`.

Each server's uvicorn protocol (the floor on uvicorn's stock httptools protocol, mockllm on its own
one-write protocol, as `python -m bench` runs them) is fed one API's bench request (bench/servers.py's
table: `--api chat`, `responses`, `anthropic`, `completions`, `embeddings`, ...; default all) on a
fake transport, one request after another on one event loop: no socket, no load generator, no
other process. `--stream` feeds the API's streamed request instead, read to its end (the APIs that
stream). What remains is the CPU work per request in Python and C: httptools, uvicorn, the app, and
for mockllm its engine.

`--callgrind` counts instructions instead, which, unlike timings on a shared machine, are the same
on every run (see bench/README.md): it runs this module under valgrind's callgrind twice per server
and API, for `--requests` and three times as many, and divides the difference of the two totals by
the difference of the requests (that cancels start-up and the warm-up), one server and one API per
run so that the difference is theirs alone. By hand, for one of them:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.inprocess --requests 1000 --api chat mockllm
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.inprocess --requests 3000 --api chat mockllm

The ratio floor / mockllm of those counts tends to stand above `python -m bench`'s ratio: the count
does not see cache misses, which mockllm's longer path has more of (bench/README.md gives the gap
as measured).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from mockllm.app import create_app
from mockllm.protocol import OneWriteProtocol
from mockllm.server import uvicorn_config

from .client import request_bytes
from .servers import APIS, engine, floor_app, floor_path

SERVERS = ("floor", "floor-onewrite", "mockllm")


class _Transport:
    """Just enough of an asyncio transport for uvicorn's protocol: it keeps what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def per_request(
    server: str, requests: int, api: str = "chat", warm_up: int = 500, streamed: bool = False, stream_chunks: int = 100
) -> float:
    """Seconds per request, `requests` of them after `warm_up`, all on one keep-alive connection;
    `streamed`: the API's stream request (of `stream_chunks` content chunks), read to its end."""
    if server == "mockllm":
        app: Any = create_app(engine("throughput", stream_chunks))
    else:
        app = floor_app(stream_chunks)
    one_write = server != "floor"
    config = uvicorn_config(app, one_write=one_write)
    config.load()
    protocol = (OneWriteProtocol if one_write else HttpToolsProtocol)(
        config=config, server_state=ServerState(), app_state={}
    )
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    spec = APIS[api]
    path, body = (spec.stream_path, spec.stream_request) if streamed else (spec.path, spec.request)
    if path is None or body is None:
        raise ValueError(f"the {api} API does not stream")
    request = request_bytes(path if server == "mockllm" else floor_path(spec, streamed), body, 8000)

    async def exchange() -> None:
        transport.written.clear()
        protocol.data_received(request)
        while not (transport.written and protocol.cycle.response_complete):
            await asyncio.sleep(0)  # let the request's task run

    for _ in range(warm_up):
        await exchange()
    started = time.perf_counter()
    for _ in range(requests):
        await exchange()
    elapsed = time.perf_counter() - started
    if not transport.written[0].startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{server} ({api}): unexpected answer {transport.written[0][:60]!r}")
    return elapsed / requests


def _collected(argv: list[str]) -> int:
    """Instructions callgrind counted in one run of this module with `argv`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--callgrind needs valgrind (apt-get install valgrind)")
    cmd = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", "bench.inprocess"]
    done = subprocess.run([*cmd, *argv], cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed ({' '.join(argv)}):\n{done.stderr[-2000:]}")
    return int(found[1])


def instructions(server: str, api: str, requests: int, streamed: bool = False, stream_chunks: int = 100) -> float:
    """Instructions per request (per stream, `streamed`): two callgrind runs, `requests` and 3x as many."""
    extra = ["--stream", "--stream-chunks", str(stream_chunks)] if streamed else []
    low, high = (_collected(["--requests", str(n), "--api", api, *extra, server]) for n in (requests, 3 * requests))
    return (high - low) / (2 * requests)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", nargs="*", metavar="SERVER", help=f"any of {', '.join(SERVERS)} (default: all)")
    parser.add_argument("--requests", type=int, help="measured requests per server (default 20000, 1000 streams)")
    parser.add_argument(
        "--api", choices=APIS, action="append", help=f"any of {', '.join(APIS)} (repeatable; default: all)"
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="the streamed request instead (the APIs that stream), read to its end: its work per stream",
    )
    parser.add_argument("--stream-chunks", type=int, default=100, help="content chunks per stream (default 100)")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per request under callgrind (--requests: the smaller run; default 1000, 100 streams)",
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}; choose from {', '.join(SERVERS)}")
    try:
        import uvloop
    except ImportError:
        run: Any = asyncio.run
    else:
        run = uvloop.run
    apis = [api for api in args.api or APIS if not args.stream or APIS[api].stream_path is not None]
    what = "stream" if args.stream else "request"
    servers = args.servers or SERVERS
    if args.callgrind:
        requests = args.requests or (100 if args.stream else 1000)
        print(f"instructions per {what} (callgrind, {requests} and {3 * requests} {what}s per run)")
        paired = {"floor", "mockllm"} <= set(servers)
        print(f"{'':<13}" + "".join(f"{s:>16}" for s in servers) + ("  floor / mockllm" if paired else ""))
        for api in apis:
            counts = {s: instructions(s, api, requests, args.stream, args.stream_chunks) for s in servers}
            ratio = f"{counts['floor'] / counts['mockllm']:>18.2f}" if paired else ""
            print(f"{api:<13}" + "".join(f"{counts[s]:>16,.0f}" for s in servers) + ratio, flush=True)
        return
    requests = args.requests or (1000 if args.stream else 20_000)
    for api in apis:
        for server in servers:
            seconds = run(per_request(server, requests, api, streamed=args.stream, stream_chunks=args.stream_chunks))
            print(f"{server:<16}{api:<13}{seconds * 1e6:8.2f} us/{what}")


if __name__ == "__main__":
    main()
