"""The assertion messages that the pytest fixture and `mockllm.Remote` share, written once: what was
called (`called_problem`), and which rules went unused or were not played out (`usage_problems`).

Each reads what it is given (a journal's entries, or their control-API mirror; rule names and
origins), so the fixture, the session check and a test in another process say the same things.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["called_problem", "count", "describe", "listing", "usage_problems"]


class Told(Protocol):
    """What a message says of a request (mockllm.Entry, mockllm.remote.RemoteEntry)."""

    @property
    def index(self) -> int: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...  # it names the API
    @property
    def status(self) -> int: ...
    @property
    def rule(self) -> str | None: ...
    @property
    def raised(self) -> bool: ...


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def describe(entry: Told) -> str:
    answered = f"rule {entry.rule!r}" if entry.rule else "a callable raised" if entry.raised else "no rule"
    return f"#{entry.index} {entry.method} {entry.path} -> {entry.status} ({answered})"


def listing(entries: Sequence[Told]) -> str:
    if not entries:
        return "  (no requests received)"
    return "\n".join(f"  {describe(e)}" for e in entries)


def called_problem(entries: Sequence[Told], times: int | None, rule: str | None) -> str | None:
    """What `assert_called(times, rule=)` fails with (None: it holds): requests were received, exactly
    `times` of them if given, all or those `rule` answered; the journal listed under it."""
    chosen = [e for e in entries if rule is None or e.rule == rule]
    if (times is None and chosen) or (times is not None and len(chosen) == times):
        return None
    wanted = "at least 1 request" if times is None else count(times, "request")
    if rule is not None:
        wanted += f" answered by rule {rule!r}"
    return f"mockllm: expected {wanted}, got {len(chosen)}\n{listing(entries)}"


def usage_problems(
    unused: Sequence[tuple[str, str]],
    unfinished: Sequence[tuple[str, str, str]],
    *,
    unused_said: str,
    unfinished_said: str,
    advice: str,
) -> list[str]:
    """The parts of a "rules left unused" report ([]: nothing to say): the rules never used, as (name,
    origin), those whose replies were not played out, as (name, origin, how far), then `advice`."""
    out: list[str] = []
    if unused:
        lines = [f"mockllm: {count(len(unused), 'rule')} {unused_said}:"]
        lines += [f"  - {name} ({origin})" for name, origin in unused]
        out.append("\n".join(lines))
    if unfinished:
        lines = [f"mockllm: {count(len(unfinished), 'rule')} {unfinished_said}:"]
        lines += [f"  - {name} ({origin}): {how}" for name, origin, how in unfinished]
        out.append("\n".join(lines))
    if out:
        out.append(advice)
    return out
