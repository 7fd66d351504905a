"""The benchmarks' results and the table `python -m bench` prints (see bench/README.md)."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass


@dataclass
class Round:
    rate: float  # requests/s or events/s
    cpu: float | None  # server CPU seconds per wall second
    per_cpu: float | None  # rate per server CPU second
    client_cpu: float  # the load generator's CPU seconds per wall second


FLOOR, SAME_HEADERS, ONE_WRITE, MOCK = "floor", "floor-headers", "floor-onewrite", "mockllm"


@dataclass
class Compared:
    """One load (non-streamed or streamed) on each server, rounds alternating."""

    label: str
    unit: str
    rounds: dict[str, list[Round]]
    api: str = "chat"  # the API's name in bench/servers.py's table
    events: int = 0  # SSE events per stream (0: not streamed)
    body_bytes: int = 0  # mockllm's answer's body, in bytes (a stream's decoded body)

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


@dataclass
class Ttfb:
    chunks: int
    first_byte: float
    first_event: float
    total: float


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
        f"  {'':<40}{'floor':>10}{'floor+h':>10}{'floor 1w':>10}{'mockllm':>10}{'ratio':>7}{'quartiles':>11}"
        f"{'per CPU-s':>11}{'vs floor+h':>12}{'vs 1w':>7}{'srv CPU f/m':>13}{'gen CPU':>9}  target"
    )
    for c in results:
        lo, hi = c.spread()
        ratio = c.ratio()
        print(
            f"  {c.label + ' ' + c.unit:<40}{_fmt(c.median(FLOOR)):>10}{_fmt(c.median(SAME_HEADERS)):>10}"
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
    for c in results:
        shape = f"{c.events} SSE events per stream, " if c.events else ""
        print(f"  {c.label}: {shape}{c.body_bytes:,} body bytes per answer")


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
