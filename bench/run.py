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

from .client import Conn, connect, load, reopen, request_bytes, timed_streams
from .servers import JSON_REQUEST, STREAM_REQUEST, stream_request

ROOT = Path(__file__).resolve().parent.parent
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


@dataclass
class Round:
    rate: float  # requests/s or events/s
    cpu: float | None  # server CPU seconds per wall second
    per_cpu: float | None  # rate per server CPU second
    client_cpu: float  # the load generator's CPU seconds per wall second


async def _round(child: Child, conns: list[Conn], seconds: float, events: bool) -> Round:
    await reopen(conns, child.port)
    cpu0, mine0 = child.cpu(), time.process_time()
    result = await load(conns, seconds)
    cpu1, mine1 = child.cpu(), time.process_time()
    mine = (mine1 - mine0) / result.seconds
    if result.errors:
        raise RuntimeError(f"{child.name}: {result.errors} connection(s) failed")
    count = result.events if events else result.requests
    rate = count / result.seconds
    if cpu0 is None or cpu1 is None or cpu1 == cpu0:
        return Round(rate, None, None, mine)
    used = cpu1 - cpu0
    return Round(rate, used / result.seconds, count / used, mine)


FLOOR, SAME_HEADERS, ONE_WRITE, MOCK = "floor", "floor-headers", "floor-onewrite", "mockllm"


@dataclass
class Compared:
    """One load (non-streamed or streamed) on each server, rounds alternating."""

    label: str
    unit: str
    rounds: dict[str, list[Round]]

    def median(self, server: str, key: str = "rate") -> float | None:
        values = [v for v in (getattr(r, key) for r in self.rounds[server]) if v is not None]
        return statistics.median(values) if values else None

    def paired(self, floor: str = FLOOR, key: str = "rate") -> list[float]:
        """mockllm / floor of each round: the two ran back to back, so a slow spell of the machine
        hits both alike (this machine's speed drifts by 2x within a minute)."""
        pairs = zip(self.rounds[floor], self.rounds[MOCK], strict=True)
        values = [(getattr(m, key), getattr(f, key)) for f, m in pairs]
        return [m / f for m, f in values if m is not None and f]

    def ratio(self, floor: str = FLOOR, key: str = "rate") -> float | None:
        """The median of the rounds' ratios."""
        ratios = self.paired(floor, key)
        return statistics.median(ratios) if ratios else None

    def spread(self, floor: str = FLOOR) -> tuple[float, float]:
        """The quartiles of the rounds' ratios (the middle half of them lies between)."""
        ratios = self.paired(floor)
        if len(ratios) < 2:
            return ratios[0], ratios[0]
        low, _, high = statistics.quantiles(ratios, n=4)
        return low, high


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
        modes = [
            ("non-streamed", "req/s", False, JSON_REQUEST),
            (f"streamed, {args.stream_chunks} chunks", "events/s", True, STREAM_REQUEST),
        ]
        for label, unit, events, body in modes:
            pool: dict[str, list[Conn]] = {}
            for child in servers:
                # The floors route on the path (they never read the body); mockllm reads it.
                path = "/stream/v1/chat/completions" if events and child is not mock else "/v1/chat/completions"
                request = request_bytes(path, body, child.port)
                pool[child.name] = [await connect(child.port, request) for _ in range(args.concurrency)]
            for child in servers:  # warm-up: allocators, caches, socket buffers
                await _round(child, pool[child.name], args.warmup, events)
            rounds: dict[str, list[Round]] = {child.name: [] for child in servers}
            order = (floor, mock, same_headers, one_write)  # the floor and mockllm always back to back
            for i in range(args.rounds):
                for child in order if i % 2 == 0 else order[::-1]:
                    rounds[child.name].append(await _round(child, pool[child.name], args.seconds, events))
            for conns in pool.values():
                for conn in conns:
                    conn.close()
            out.append(Compared(label, unit, rounds))
    return out


@dataclass
class Ttfb:
    chunks: int
    first_byte: float
    first_event: float
    total: float


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


@dataclass
class Fidelity:
    server: str
    streams: int
    runs: int
    first: float  # median latency of the first content chunk after the request was sent
    drift_median: float  # last content chunk: actual - scheduled, from the request's send time
    drift_max: float
    span: float  # median of (last - first content chunk) - scheduled span: drift with the start latency taken out
    gap_p50: float  # |actual gap - scheduled gap|, all gaps of all streams
    gap_p99: float
    gap_p99_late: float  # the same, over the gaps after each stream's 5th chunk (past the start-up burst)
    gap_max: float
    cpu: float | None  # server CPU seconds per wall second while the streams ran


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


# -- report ----------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report_throughput(results: list[Compared], args: argparse.Namespace) -> None:
    print(
        f"\nThroughput: uvicorn + uvloop + httptools for all, {args.concurrency} keep-alive connections, "
        f"{args.rounds} rounds x {args.seconds:g} s, rates are medians"
    )
    print(
        "  floor = minimal starlette app, precomputed body (content-type only), on uvicorn's stock protocol;"
        " floor+h = same,\n  with mockllm's headers; floor 1w = the floor on mockllm's one-write protocol"
        " (mockllm runs on it)"
    )
    print(
        f"  {'':<28}{'floor':>10}{'floor+h':>10}{'floor 1w':>10}{'mockllm':>10}{'ratio':>7}{'quartiles':>11}"
        f"{'per CPU-s':>11}{'vs floor+h':>12}{'vs 1w':>7}{'srv CPU f/m':>13}{'gen CPU':>9}  target"
    )
    for c in results:
        lo, hi = c.spread()
        ratio = c.ratio()
        print(
            f"  {c.label + ' ' + c.unit:<28}{_fmt(c.median(FLOOR)):>10}{_fmt(c.median(SAME_HEADERS)):>10}"
            f"{_fmt(c.median(ONE_WRITE)):>10}{_fmt(c.median(MOCK)):>10}{_fmt(ratio, '.2f'):>7}"
            f"{f'{lo:.2f}-{hi:.2f}':>11}"
            f"{_fmt(c.ratio(key='per_cpu'), '.2f'):>11}{_fmt(c.ratio(SAME_HEADERS), '.2f'):>12}"
            f"{_fmt(c.ratio(ONE_WRITE), '.2f'):>7}"
            f"{_fmt(c.median(FLOOR, 'cpu'), '.0%') + '/' + _fmt(c.median(MOCK, 'cpu'), '.0%'):>13}"
            f"{_fmt(c.median(MOCK, 'client_cpu'), '.0%'):>9}"
            f"  ratio >= 0.80 {_verdict(ratio is not None and ratio >= 0.8)}"
        )
    print(
        "  ratio = median over the rounds of mockllm / floor, each round measuring the two back to back;"
        " quartiles = of\n  those ratios; per CPU-s = the same per second of server CPU; vs floor+h, vs 1w = the same"
        " against the other floors;\n  srv CPU = floor's/mockllm's server process,"
        " gen CPU = the load generator (when mockllm is measured)"
    )


def report_ttfb(results: list[Ttfb]) -> None:
    print("\nFirst byte of a stream (mockllm, time scale 0, one connection, median, ms from the request's send)")
    print(f"  {'reply':<22}{'first byte':>12}{'first event':>13}{'whole stream':>14}")
    for t in results:
        label = f"{t.chunks:,} chunks"
        print(f"  {label:<22}{_ms(t.first_byte):>12}{_ms(t.first_event):>13}{_ms(t.total):>14}")
    short, long = results[0], results[-1]
    ok = long.first_event < short.first_event + 0.005  # does not grow with the reply's length
    more = _ms(long.first_event - short.first_event)
    print(
        f"  the first event of a {long.chunks:,}-chunk reply waits {more} ms more than a {short.chunks}-chunk"
        f" one's: {_verdict(ok)}"
    )


def report_fidelity(results: list[Fidelity], args: argparse.Namespace) -> None:
    n, gap = args.timed_chunks, args.gap_ms
    print(
        f"\nTiming fidelity: {n} chunks every {gap:g} ms (ttft 0, no jitter, time scale 1),"
        " as a loopback client sees it"
    )
    print(
        f"  drift = arrival of the last content chunk - request send - {(n - 1) * gap / 1000:g} s (its scheduled"
        " offset); gap error = |actual gap - scheduled gap|"
    )
    print(
        f"  {'server':<13}{'streams':>8}{'runs':>6}{'1st chunk':>11}{'drift med':>11}{'drift max':>11}"
        f"{'span':>8}{'gap p50':>9}{'gap p99':>9}{'p99 >5th':>9}{'gap max':>9}{'srv CPU':>9}  target (ms)"
    )
    for f in results:
        if f.server == "mockllm":
            if f.streams == 1:
                ok = abs(f.drift_max) < 0.002 and f.gap_p99 < 0.002
                target = f"drift<2, p99<2 {_verdict(ok)}"
            else:
                target = f"p99<5 {_verdict(f.gap_p99 < 0.005)}"
        else:
            target = "(comparison)"
        print(
            f"  {f.server:<13}{f.streams:>8}{f.runs:>6}{_ms(f.first):>11}{_ms(f.drift_median):>11}"
            f"{_ms(f.drift_max):>11}{_ms(f.span):>8}{_ms(f.gap_p50):>9}{_ms(f.gap_p99):>9}{_ms(f.gap_p99_late):>9}{_ms(f.gap_max):>9}"
            f"{_fmt(f.cpu, '.0%'):>9}  {target}"
        )
    print(
        "  (ms; 1st chunk = its latency from the request's send; drift max = the largest |drift| of all streams and"
        " runs;\n  span = last - first content chunk - the scheduled span, median: the drift without the start latency;"
        "\n  p99 >5th = gap error p99 without each stream's first 5 gaps, when 100 requests arriving at once compete)"
    )


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run (well under a minute)")
    parts = ["throughput", "ttfb", "timing"]
    parser.add_argument("--only", choices=parts, action="append", help="run only this part (repeatable)")
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
