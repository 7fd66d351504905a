"""Rules and the Router that picks one per request, keeping each rule's call count.

A rule matches when every condition in its `match` holds and it still has an answer to
give (`times` not reached, `replies` not played out). When none matches, the Router says,
for the nearest rules, which conditions failed and why.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .request import ChatRequest
from .scenario import Match
from .script import Script

__all__ = ["Hit", "Miss", "Router", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a scenario, with defaults merged into its replies."""

    name: str
    key: str  # stable identity for derived values (file name, index, name)
    origin: str  # "file:line", for diagnostics
    match: Match
    replies: tuple[Script, ...]
    cycle: bool = True  # `reply:` answers every call; `replies:` plays each once
    times: int | None = None
    priority: int = 0
    seed: int | None = None
    time_scale: float | None = None  # the scenario's own, over the server's
    capacity: int | None = field(init=False, default=None)  # calls it may serve in all (None: no limit)

    def __post_init__(self) -> None:
        limits = [n for n in (self.times, None if self.cycle else len(self.replies)) if n is not None]
        object.__setattr__(self, "capacity", min(limits) if limits else None)

    def accepts(self, request: ChatRequest, endpoint: str) -> bool:
        """Whether every condition holds (the hot path: no explanation is built)."""
        return not self._failures(request, endpoint, explain=False)

    def mismatches(self, request: ChatRequest, endpoint: str) -> list[str]:
        """Why this rule does not match the request ([] when every condition holds)."""
        return self._failures(request, endpoint, explain=True)

    def _failures(self, request: ChatRequest, endpoint: str, *, explain: bool) -> list[str]:
        m = self.match
        out: list[str] = []
        if m.endpoint is not None and m.endpoint != endpoint:
            if not explain:
                return _FAILED
            out.append(f"endpoint: wanted {m.endpoint}, got {endpoint}")
        if m.model is not None and not fnmatchcase(request.model, m.model):
            if not explain:
                return _FAILED
            out.append(f"model: {request.model!r} does not match {m.model!r}")
        if m.stream is not None and m.stream != request.stream:
            if not explain:
                return _FAILED
            out.append(f"stream: wanted {str(m.stream).lower()}, got {str(request.stream).lower()}")
        for role, cond, text in (("user", m.user, request.user_text), ("system", m.system, request.system_text)):
            if cond is not None and not cond.test(text):
                if not explain:
                    return _FAILED
                got = f"no {role} message" if text is None else f"{_clip(text)!r} {cond.refusal()}"
                out.append(f"{role}: {got}")
        for name, wanted in (m.headers or {}).items():
            got_value = request.headers.get(name.lower())
            if got_value != wanted:
                if not explain:
                    return _FAILED
                got_text = "missing" if got_value is None else repr(got_value)
                out.append(f"header {name}: wanted {wanted!r}, got {got_text}")
        return out


_FAILED = ["(does not match)"]  # what a failed check returns when no explanation is wanted


@dataclass(frozen=True, slots=True)
class Hit:
    """The rule that answers, the reply it gives, and which call of that rule this is."""

    rule: Rule
    reply: Script
    call_index: int


@dataclass(frozen=True, slots=True)
class Miss:
    """No rule matched: the nearest rules, each with why it did not."""

    request: ChatRequest
    endpoint: str
    near: list[tuple[Rule, list[str]]] = field(default_factory=list)
    total_rules: int = 0

    def explain(self) -> str:
        r = self.request
        lines = [
            f"mockllm: no rule matched this {self.endpoint} request",
            f"  request: model={r.model!r} stream={str(r.stream).lower()}"
            f" user={_clip(r.user_text) if r.user_text is not None else None!r}"
            + (f" system={_clip(r.system_text)!r}" if r.system_text is not None else ""),
        ]
        if not self.total_rules:
            lines.append("  no rules are loaded")
        else:
            lines.append(f"  nearest rules (of {self.total_rules}):")
            for rule, reasons in self.near:
                lines.append(f"    - {rule.name} ({rule.origin}): " + "; ".join(reasons))
        lines.append("  Add a rule that matches this request, or loosen the conditions of one above.")
        return "\n".join(lines)


class Router:
    """Picks the first matching rule (higher priority first, then file order)."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: list[Rule] = []
        self._calls: dict[int, int] = {}
        self._lock = threading.Lock()
        self.add(rules)

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def add(self, rules: Iterable[Rule]) -> None:
        with self._lock:
            self._rules.extend(rules)
            # sorted() is stable: equal priorities keep the order they were added in.
            self._rules = sorted(self._rules, key=lambda r: -r.priority)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._calls.clear()

    def reset(self) -> None:
        """Forget call counts: sequences start over, `times` limits refill."""
        with self._lock:
            self._calls.clear()

    def calls(self, rule: Rule) -> int:
        return self._calls.get(id(rule), 0)

    def unused(self) -> list[Rule]:
        return [r for r in self._rules if not self.calls(r)]

    def unfinished(self) -> list[Rule]:
        """Rules with `replies` not yet all played."""
        return [r for r in self._rules if not r.cycle and self.calls(r) < len(r.replies)]

    def route(self, request: ChatRequest, endpoint: str = "chat") -> Hit | Miss:
        with self._lock:
            calls = self._calls
            for rule in self._rules:
                served = calls.get(id(rule), 0)
                if (rule.capacity is None or served < rule.capacity) and rule.accepts(request, endpoint):
                    calls[id(rule)] = served + 1
                    return Hit(rule, rule.replies[served % len(rule.replies)], served)
            # No rule: now say why, for each (only misses pay for the explanations).
            near: list[tuple[Rule, list[str]]] = []
            for rule in self._rules:
                reasons = rule.mismatches(request, endpoint)
                served = calls.get(id(rule), 0)
                if rule.capacity is not None and served >= rule.capacity:
                    what = "times" if rule.times == rule.capacity else "replies"
                    reasons.append(f"{what}: already served {served} of {rule.capacity} call(s)")
                near.append((rule, reasons))
            near.sort(key=lambda pair: len(pair[1]))  # stable: file order among equals
            return Miss(request, endpoint, near[:5], len(self._rules))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
