"""Run every benchmark and print one table: `python -m bench [--quick]` (see bench/README.md)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import loading, routing
from .client import Conn, connect, load, reopen, request_bytes, timed_streams
from .report import (
    FLOOR,
    MOCK,
    ONE_WRITE,
    SAME_HEADERS,
    Compared,
    Fidelity,
    Round,
    Ttfb,
    report_fidelity,
    report_throughput,
    report_ttfb,
)
from .servers import APIS, Api, floor_path, stream_request

ROOT = Path(__file__).resolve().parent.parent
API_CHOICES = tuple(APIS)  # the APIs of bench/servers.py's table that this mockllm speaks
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- servers in child processes --------------------------------------------------------


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def cpu(self) -> float | None:
        """CPU seconds the server process has used so far (Linux; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / TICK


@contextmanager
def serving(name: str, kind: str, *extra: str) -> Iterator[Child]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "bench.servers", kind, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{name} server did not start ({' '.join(cmd)})")
        yield Child(name, proc, int(line.split()[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- measurements ------------------------------------------------------------------------


async def _round(child: Child, conns: list[Conn], seconds: float, events: bool, label: str = "") -> Round:
    await reopen(conns, child.port)
    cpu0, mine0 = child.cpu(), time.process_time()
    result = await load(conns, seconds)
    cpu1, mine1 = child.cpu(), time.process_time()
    mine = (mine1 - mine0) / result.seconds
    if result.errors:
        raise RuntimeError(f"{child.name}: {result.errors} connection(s) failed ({label})")
    count = result.events if events else result.requests
    rate = count / result.seconds
    if cpu0 is None or cpu1 is None or cpu1 == cpu0:
        return Round(rate, None, None, mine)
    used = cpu1 - cpu0
    return Round(rate, used / result.seconds, count / used, mine)


@dataclass(frozen=True)
class Mode:
    """One throughput load: an API's request, non-streamed (requests/s) or streamed (events/s)."""

    label: str
    api: Api
    streamed: bool

    @property
    def unit(self) -> str:
        return "events/s" if self.streamed else "req/s"

    def request(self, server: str, port: int) -> bytes:
        """The request one server is sent: mockllm reads the body, the floors route on the path alone."""
        api = self.api
        path, body = (api.stream_path, api.stream_request) if self.streamed else (api.path, api.request)
        assert path is not None and body is not None
        return request_bytes(path if server == MOCK else floor_path(api, self.streamed), body, port)


def _modes(args: argparse.Namespace) -> list[Mode]:
    """Each throughput load, for the APIs asked, in the table's order (an API that never streams has
    its non-streamed load only)."""
    streamed = f"streamed, {args.stream_chunks} chunks"
    modes = []
    for api in APIS.values():
        if api.name in args.api:
            modes.append(Mode(f"{api.name} non-streamed", api, False))
            if api.stream_path is not None:
                modes.append(Mode(f"{api.name} {streamed}", api, True))
    return modes


def _check(label: str, pool: dict[str, list[Conn]], streamed: bool) -> tuple[int, int]:
    """After the warm-up: every server answered 200, with as many body bytes and (streams) SSE events
    on every server (the floors replay mockllm's own answer), and a stream had events; (events, body
    bytes) of mockllm's last answer."""
    seen = {}
    for name, conns in pool.items():
        last = [c.last for c in conns if c.last is not None]
        statuses = {r.status for r in last}
        if statuses != {200}:
            raise RuntimeError(f"{label}: {name} answered {sorted(statuses)}, not 200")
        seen[name] = frozenset((r.events, r.body_bytes) for r in last)
    if len(set(seen.values())) != 1:
        raise RuntimeError(f"{label}: (events, body bytes) per answer differ between the servers: {seen}")
    mine = next(c.last for c in pool[MOCK] if c.last is not None)
    if streamed and not mine.events:
        raise RuntimeError(f"{label}: no SSE event counted in {mine.body_bytes} bytes (are its lines' ends right?)")
    return mine.events, mine.body_bytes


async def throughput(args: argparse.Namespace) -> list[Compared]:
    out: list[Compared] = []
    chunks = ("--stream-chunks", str(args.stream_chunks))
    with (
        serving(FLOOR, "floor", *chunks) as floor,
        serving(SAME_HEADERS, "floor-headers", *chunks) as same_headers,
        serving(ONE_WRITE, "floor-onewrite", *chunks) as one_write,
        serving(MOCK, "mockllm", *chunks) as mock,
    ):
        servers = (floor, same_headers, one_write, mock)
        for mode in _modes(args):
            label, events = mode.label, mode.streamed
            pool: dict[str, list[Conn]] = {}
            for child in servers:
                request = mode.request(child.name, child.port)
                pool[child.name] = [
                    await connect(child.port, request, crlf=mode.api.crlf) for _ in range(args.concurrency)
                ]
            for child in servers:  # warm-up: allocators, caches, socket buffers
                await _round(child, pool[child.name], args.warmup, events, label)
            per_answer = _check(label, pool, events)
            rounds: dict[str, list[Round]] = {child.name: [] for child in servers}
            order = (floor, mock, same_headers, one_write)  # the floor and mockllm always back to back
            for i in range(args.rounds):
                for child in order if i % 2 == 0 else order[::-1]:
                    rounds[child.name].append(await _round(child, pool[child.name], args.seconds, events, label))
            for conns in pool.values():
                for conn in conns:
                    conn.close()
            out.append(Compared(label, mode.unit, rounds, mode.api.name, *per_answer))
    return out


async def first_byte(args: argparse.Namespace) -> list[Ttfb]:
    out = []
    with serving("mockllm", "mockllm", "--scenario", "ttfb") as mock:
        for user, chunks in (("short", 3), ("long", 20_000)):
            conns = [await connect(mock.port, request_bytes("/v1/chat/completions", stream_request(user), mock.port))]
            samples = []
            for _ in range(args.ttfb_runs + 1):  # the first is a warm-up
                await reopen(conns, mock.port)
                ((sent, resp),) = await timed_streams(conns)
                if resp.events != chunks + 3:
                    raise RuntimeError(f"ttfb: expected {chunks + 3} events, got {resp.events}")
                samples.append((resp.first_byte - sent, resp.first_event - sent, resp.done - sent))
            conns[0].close()
            samples = samples[1:]
            out.append(Ttfb(chunks, *(statistics.median(s[i] for s in samples) for i in range(3))))
    return out


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _fidelity(child: Child, streams: int, runs: int, chunks: int, gap: float, warm_up: bool) -> Fidelity:
    request = request_bytes("/v1/chat/completions", stream_request("timed"), child.port)
    conns = [await connect(child.port, request, timed=True) for _ in range(streams)]
    if warm_up:
        await timed_streams(conns[:1])
    firsts: list[float] = []
    drifts: list[float] = []
    spans: list[float] = []
    gaps: list[float] = []
    late: list[float] = []
    cpu_used = wall = 0.0
    for _ in range(runs):
        await reopen(conns, child.port)
        gc.collect()
        gc.disable()  # a collection here would stall the client, and look like late chunks
        try:
            cpu0, t0 = child.cpu(), time.perf_counter()
            results = await timed_streams(conns)
            cpu1, t1 = child.cpu(), time.perf_counter()
        finally:
            gc.enable()
        if cpu0 is not None and cpu1 is not None:
            cpu_used += cpu1 - cpu0
            wall += t1 - t0
        for sent, resp in results:
            times = resp.event_times  # role, chunks content events, finish, [DONE]
            if len(times) != chunks + 3:
                raise RuntimeError(f"{child.name}: expected {chunks + 3} events, got {len(times)}")
            content = times[1 : chunks + 1]
            firsts.append(content[0] - sent)
            drifts.append(content[-1] - sent - (chunks - 1) * gap)
            spans.append(content[-1] - content[0] - (chunks - 1) * gap)
            errors = [abs(b - a - gap) for a, b in itertools.pairwise(content)]
            gaps.extend(errors)
            late.extend(errors[5:])
    for conn in conns:
        conn.close()
    return Fidelity(
        child.name,
        streams,
        runs,
        statistics.median(firsts),
        statistics.median(drifts),
        max(drifts, key=abs),
        statistics.median(spans),
        _pct(gaps, 0.5),
        _pct(gaps, 0.99),
        _pct(late, 0.99),
        max(gaps),
        cpu_used / wall if wall else None,
    )


async def fidelity(args: argparse.Namespace) -> list[Fidelity]:
    out = []
    timed = ("--timed-chunks", str(args.timed_chunks), "--gap-ms", str(args.gap_ms))
    gap = args.gap_ms / 1000
    with (
        serving("mockllm", "mockllm", "--scenario", "timed", *timed) as mock,
        serving("naive sleep", "naive", *timed) as naive,
    ):
        for child in (mock, naive):
            for streams, runs in ((1, args.timing_runs), (100, max(1, args.timing_runs - 1))):
                out.append(await _fidelity(child, streams, runs, args.timed_chunks, gap, warm_up=streams == 1))
    return out


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute)")
    parts = ["throughput", "ttfb", "timing", "load", "route"]
    parser.add_argument("--only", choices=parts, action="append", help="run only this part (repeatable)")
    parser.add_argument(
        "--api",
        choices=API_CHOICES,
        action="append",
        help=f"the APIs the throughput part measures (repeatable; default: all, {', '.join(API_CHOICES)})",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections per server (default 32)")
    parser.add_argument("--rounds", type=int, help="measured rounds per server (default 15, quick 3)")
    parser.add_argument("--seconds", type=float, help="seconds per round (default 0.8, quick 0.5)")
    parser.add_argument("--stream-chunks", type=int, default=100, help="content chunks per throughput stream")
    parser.add_argument("--timed-chunks", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    # Many short rounds: on a shared machine a round's speed swings widely, and the median of many
    # back-to-back ratios holds still where a few long rounds do not.
    args.rounds = args.rounds or (3 if args.quick else 15)
    args.seconds = args.seconds or (0.5 if args.quick else 0.8)
    args.warmup = 0.5 if args.quick else 1.0
    args.ttfb_runs = 3 if args.quick else 9
    args.timing_runs = 1 if args.quick else 3
    args.only = set(args.only or parts)
    args.api = set(args.api or API_CHOICES)
    return args


async def amain(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    gc.freeze()  # the generator's own modules: never walked by its collector while it measures
    print(f"mockllm bench: python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average {_load()}")
    if "throughput" in args.only:
        report_throughput(await throughput(args), args)
    if "ttfb" in args.only:
        report_ttfb(await first_byte(args))
    if "timing" in args.only:
        report_fidelity(await fidelity(args), args)
    if "load" in args.only:
        loading.report(loading.run(args.quick))
    if "route" in args.only:
        routing.report(routing.run(args.quick))
    print(f"\n({time.perf_counter() - started:.0f} s; load average now {_load()})")


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "-"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(amain(args))
    else:
        uvloop.run(amain(args))
