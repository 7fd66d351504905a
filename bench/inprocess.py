"""The servers' per-request work without the network: `python -m bench.inprocess [--requests N] [--api A] [SERVER...]`.

Each server's uvicorn protocol (the floor on uvicorn's stock httptools protocol, mockllm on its own
one-write protocol, as `python -m bench` runs them) is fed the bench's non-streamed request on a
fake transport, one request after another on one event loop: no socket, no load generator, no
other process. `--api chat` posts the Chat Completions request to `/v1/chat/completions`,
`--api responses` the Responses API's (`{"model":...,"input":"Say hello."}`) to `/v1/responses`;
the default is both, one after the other. What remains is the CPU work per request in Python and C:
httptools, uvicorn, the app, and for mockllm its engine.

Run it under callgrind to count instructions, which, unlike timings on a shared machine, are the
same on every run (see bench/README.md):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.inprocess --requests 1000 --api chat mockllm
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.inprocess --requests 3000 --api chat mockllm

and divide the difference of the two totals by 2000 (that cancels start-up); one server and one API per
run, so that the difference is theirs alone. The ratio floor / mockllm of those counts tends to
stand above `python -m bench`'s ratio: the count does not see cache misses, which mockllm's longer
path has more of (bench/README.md gives the gap as measured).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from mockllm.app import create_app
from mockllm.protocol import OneWriteProtocol
from mockllm.server import uvicorn_config

from .client import request_bytes
from .servers import JSON_REQUEST, RESPONSES_REQUEST, engine, floor_app

SERVERS = ("floor", "floor-onewrite", "mockllm")
APIS = {"chat": ("/v1/chat/completions", JSON_REQUEST), "responses": ("/v1/responses", RESPONSES_REQUEST)}


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


async def per_request(server: str, requests: int, api: str = "chat", warm_up: int = 500) -> float:
    """Seconds per request, `requests` of them after `warm_up`, all on one keep-alive connection."""
    if server == "mockllm":
        app: Any = create_app(engine("throughput"))
    else:
        app = floor_app(100)
    one_write = server != "floor"
    config = uvicorn_config(app, one_write=one_write)
    config.load()
    protocol = (OneWriteProtocol if one_write else HttpToolsProtocol)(
        config=config, server_state=ServerState(), app_state={}
    )
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = request_bytes(*APIS[api], 8000)

    async def exchange() -> None:
        transport.written.clear()
        protocol.data_received(request)
        while not (transport.written and protocol.cycle.response_complete):
            await asyncio.sleep(0)  # let the request's task run

    for _ in range(warm_up):
        await exchange()
    if not transport.written[0].startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{server} ({api}): unexpected answer {transport.written[0][:60]!r}")
    started = time.perf_counter()
    for _ in range(requests):
        await exchange()
    return (time.perf_counter() - started) / requests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.split("\n\n")[0])
    parser.add_argument("servers", nargs="*", metavar="SERVER", help=f"any of {', '.join(SERVERS)} (default: all)")
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests per server (default 20000)")
    parser.add_argument("--api", choices=APIS, action="append", help="chat or responses (repeatable; default: both)")
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
    for api in args.api or APIS:
        for server in args.servers or SERVERS:
            print(f"{server:<16}{api:<11}{run(per_request(server, args.requests, api)) * 1e6:8.2f} us/request")


if __name__ == "__main__":
    main()
