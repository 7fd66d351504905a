"""1,000 faulted streams against one server: nothing a fault does may hurt it.

Every fault kind, streamed and not, plus clients that give up on a stalled stream, run 16 at
a time. Afterwards the server must answer normally and be back where it started: no asyncio
task left in its loop, no file descriptor left open in the process, no memory growth beyond
allocator noise. The server has a loop of its own here, so other tests cannot disturb the counts.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import time
from collections import Counter
from typing import Any

import httpx

from mockllm import Engine
from mockllm.server import BackgroundServer

STREAMS = 1000
CONCURRENCY = 16
# model -> (fault, streamed?, client read timeout)
KINDS: dict[str, tuple[dict[str, Any], bool, float]] = {
    "disconnect": ({"kind": "disconnect", "after_chunks": 2}, True, 5.0),
    "error_event": ({"kind": "error_event", "after_chunks": 1}, True, 5.0),
    "stall": ({"kind": "stall", "after_chunks": 1, "stall_ms": 20}, True, 5.0),
    "malformed": ({"kind": "malformed", "after_chunks": 1}, True, 5.0),
    "no_done": ({"kind": "no_done"}, True, 5.0),
    "no_finish": ({"kind": "no_finish"}, True, 5.0),
    # the client times out and leaves while the server holds a 10 s stall: the server must notice
    "abandoned_stall": ({"kind": "stall", "after_chunks": 1, "stall_ms": 10_000}, True, 0.05),
    "json_disconnect": ({"kind": "disconnect"}, False, 5.0),
    "json_stall": ({"kind": "stall", "stall_ms": 20}, False, 5.0),
    "json_abandoned_stall": ({"kind": "stall", "stall_ms": 10_000}, False, 0.05),
}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class LoopProbe:
    """Counts, on the server's own loop, its tasks and uvicorn's connections and request tasks."""

    def __init__(self, server: BackgroundServer) -> None:
        uvicorn_server = server._server  # the uvicorn.Server inside BackgroundServer
        self.loop = uvicorn_server.servers[0].get_loop()
        self.state = uvicorn_server.server_state

    def counts(self) -> tuple[int, int, int]:
        async def count() -> tuple[int, int, int]:
            others = len(asyncio.all_tasks()) - 1  # not this probe itself
            return others, len(self.state.connections), len(self.state.tasks)

        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(5)

    def settle(self, limit: int, seconds: float = 5.0) -> tuple[int, int, int]:
        """Wait (bounded) until at most `limit` tasks remain; the counts then."""
        deadline = time.monotonic() + seconds
        while True:
            counts = self.counts()
            if counts[0] <= limit or time.monotonic() > deadline:
                return counts
            time.sleep(0.02)


async def faulted_streams(url: str, count: int) -> Counter[str]:
    """`count` requests cycling through KINDS, CONCURRENCY at a time; how each one ended."""
    outcomes: Counter[str] = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(model: str) -> None:
            _, stream, read = KINDS[model]
            body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
            async with gate:
                try:
                    async with client.stream("POST", url, json=body, timeout=httpx.Timeout(5.0, read=read)) as response:
                        async for _ in response.aiter_raw():
                            pass
                    outcomes[f"{model}: complete"] += 1
                except httpx.TransportError as exc:
                    outcomes[f"{model}: {type(exc).__name__}"] += 1

        await asyncio.gather(*(one(m) for m in itertools.islice(itertools.cycle(KINDS), count)))
    return outcomes


def test_a_thousand_faulted_streams_leave_nothing_behind() -> None:
    started = time.monotonic()
    engine = Engine(time_scale=0)
    for model, (fault, _, _) in KINDS.items():
        engine.add(
            {"name": model, "match": {"model": model}, "reply": {"content": "one two three four five", "fault": fault}}
        )
    engine.add({"name": "healthy", "match": {"model": "healthy"}, "reply": {"content": "all good"}})
    with BackgroundServer(engine) as server:
        url = f"{server.url}/v1/chat/completions"
        probe = LoopProbe(server)

        asyncio.run(faulted_streams(url, 90))  # warm-up: imports, caches, allocator pools
        engine.journal.clear()
        gc.collect()
        tasks_before, _, _ = probe.settle(limit=0, seconds=2)
        fds_before, rss_before = open_fds(), rss_mb()

        outcomes = asyncio.run(faulted_streams(url, STREAMS))

        assert sum(outcomes.values()) == STREAMS
        per_kind = STREAMS // len(KINDS)
        for model in ("disconnect", "stall", "json_disconnect", "json_stall"):
            assert outcomes[f"{model}: RemoteProtocolError"] >= per_kind, outcomes  # dropped, as planned
        for model in ("error_event", "malformed", "no_done", "no_finish"):
            assert outcomes[f"{model}: complete"] >= per_kind, outcomes  # a clean HTTP end
        assert outcomes["abandoned_stall: ReadTimeout"] >= per_kind, outcomes
        assert outcomes["json_abandoned_stall: ReadTimeout"] >= per_kind, outcomes
        assert len(engine.journal) == STREAMS
        assert sum(e.aborted for e in engine.journal) >= 4 * per_kind

        # The server answers normally, streamed and not.
        reply = httpx.post(url, json={"model": "healthy", "messages": [{"role": "user", "content": "Hi"}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "all good"
        with httpx.stream(
            "POST", url, json={"model": "healthy", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
        ) as response:
            assert b"".join(response.iter_raw()).endswith(b"data: [DONE]\n\n")

        # Nothing left behind: the abandoned 10 s stalls ended when their clients left.
        tasks, connections, requests = probe.settle(limit=tasks_before)
        assert tasks <= tasks_before + 1, f"{tasks} tasks in the server loop, {tasks_before} before"
        assert requests == 0, f"{requests} request tasks still running"
        assert connections <= 1, f"{connections} connections still open"  # at most httpx.post's, closing
        deadline = time.monotonic() + 3
        while open_fds() > fds_before + 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert open_fds() <= fds_before + 2, f"{open_fds()} file descriptors open, {fds_before} before"
        engine.journal.clear()
        gc.collect()
        grown = rss_mb() - rss_before
        assert grown < 20, f"RSS grew by {grown:.1f} MB over {STREAMS} faulted streams"
    assert time.monotonic() - started < 60  # about 8 s on an idle 2-core machine
