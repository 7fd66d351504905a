"""Chunk schedules: absolute offsets from the request's arrival, computed up front.

The writer waits until each deadline instead of sleeping gap after gap, so a long
stream does not drift; jitter comes from a seeded generator, so the same seed gives
the same schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .scenario import Timing

__all__ = ["PRESETS", "Schedule", "resolve"]

# Named profiles, measured from real streams (wire.md; the seed notebook's gpt-4o-mini run
# shows ~0.1-1 s to the first token and 10-20 ms between tokens).
PRESETS: dict[str, dict[str, float]] = {
    "instant": {"ttft_ms": 0, "chunk_ms": 0, "jitter_ms": 0},
    "gpt-4o-mini": {"ttft_ms": 300, "chunk_ms": 15, "jitter_ms": 5},
    "gpt-4o": {"ttft_ms": 450, "chunk_ms": 25, "jitter_ms": 8},
    "reasoning": {"ttft_ms": 3000, "chunk_ms": 8, "jitter_ms": 3},
    "slow": {"ttft_ms": 2000, "chunk_ms": 80, "jitter_ms": 20},
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """Resolved timing in milliseconds, before the time scale."""

    ttft_ms: float = 0.0
    chunk_ms: float | tuple[float, ...] = 0.0
    jitter_ms: float = 0.0
    total_ms: float | None = None

    @property
    def is_instant(self) -> bool:
        gaps = self.chunk_ms if isinstance(self.chunk_ms, tuple) else (self.chunk_ms,)
        return self.ttft_ms == 0 and not any(gaps) and not self.total_ms and self.jitter_ms == 0

    def offsets(self, count: int, rng: random.Random | None, scale: float) -> list[float]:
        """Seconds from the request's start at which each of `count` chunks is due."""
        if count <= 0:
            return []
        if scale == 0 or self.is_instant:
            return [0.0] * count
        if self.total_ms is not None:
            span = max(self.total_ms - self.ttft_ms, 0.0)
            gaps: list[float] = [span / (count - 1) if count > 1 else 0.0] * (count - 1)
        elif isinstance(self.chunk_ms, tuple):
            given = list(self.chunk_ms)
            gaps = [given[min(i, len(given) - 1)] for i in range(count - 1)]  # the last one repeats
        else:
            gaps = [self.chunk_ms] * (count - 1)
        jitter = self.jitter_ms

        def wobble() -> float:
            return rng.uniform(-jitter, jitter) if jitter and rng is not None else 0.0

        at = max(self.ttft_ms + wobble(), 0.0)
        out = [at * scale / 1000]
        for gap in gaps:
            at += max(gap + wobble(), 0.0)
            out.append(at * scale / 1000)
        return out


def resolve(timing: Timing | None) -> Schedule:
    """A scenario's timing (preset first, explicit keys over it) as a Schedule."""
    if timing is None:
        return Schedule()
    values: dict[str, float] = dict(PRESETS[timing.preset]) if timing.preset else {}
    for key in ("ttft_ms", "jitter_ms", "total_ms"):
        given = getattr(timing, key)
        if given is not None:
            values[key] = given
    chunk: float | tuple[float, ...] = values.get("chunk_ms", 0.0)
    if timing.chunk_ms is not None:
        chunk = tuple(timing.chunk_ms) if isinstance(timing.chunk_ms, list) else timing.chunk_ms
    if timing.total_ms is not None:
        chunk = 0.0
    return Schedule(
        ttft_ms=values.get("ttft_ms", 0.0),
        chunk_ms=chunk,
        jitter_ms=values.get("jitter_ms", 0.0),
        total_ms=values.get("total_ms"),
    )
