"""Rules and the Router that picks one per request, keeping each rule's call count.

A rule matches when every condition in its `match` holds and it still has an answer to
give (`times` not reached, `replies` not played out). When none matches, the Router says,
for the nearest rules, which conditions failed and why. Rules see every API's requests
through one view (mockllm.request.Request): `endpoint` says which API a request came in on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from operator import attrgetter

from .request import Request
from .scenario import Match, TextCondition
from .script import Script

__all__ = ["Conditions", "Hit", "Miss", "Router", "Rule"]


@dataclass(frozen=True, slots=True)
class Conditions:
    """A rule's `match` as the router keeps it: what `Match` validated, in slots (a pydantic model
    costs ~1 KB, and a recording keeps one per rule). Left out (None): holds always."""

    endpoints: tuple[str, ...] | None = None
    model: str | None = None  # a glob
    stream: bool | None = None
    user: TextCondition | None = None
    system: TextCondition | None = None
    headers: tuple[tuple[str, str], ...] = ()  # (name as written, value)

    @classmethod
    def of(cls, m: Match) -> Conditions:
        return cls(
            m.endpoints,
            m.model,
            m.stream,
            m.user.condition if m.user is not None else None,
            m.system.condition if m.system is not None else None,
            tuple((m.headers or {}).items()),
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a scenario, with defaults merged into its replies."""

    name: str
    key: str  # stable identity for derived values (file name, index, name)
    origin: str  # "file:line", for diagnostics
    match: Conditions
    replies: tuple[Script, ...]
    cycle: bool = True  # `reply:` answers every call; `replies:` plays each once (with `times`: round after round)
    times: int | None = None
    priority: int = 0
    seed: int | None = None
    time_scale: float | None = None  # the scenario's own, over the server's
    capacity: int | None = field(init=False, default=None)  # calls it may serve in all (None: no limit)
    # One test per condition the rule has (the hot path skips the ones it has not), made once from
    # `match` by _conditions. What to say when one fails is made again when a miss asks: a file of
    # thousands of rules would otherwise keep as many explanations that are seldom read.
    checks: tuple[_Test, ...] = field(init=False, default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # `times` caps the calls in all: `replies` then play round after round until it is reached.
        # Without it, `replies` play once and `reply` answers for ever.
        capacity = self.times if self.times is not None else None if self.cycle else len(self.replies)
        object.__setattr__(self, "capacity", capacity)
        object.__setattr__(self, "checks", _conditions(self.match)[0])

    def mismatches(self, request: Request) -> list[str]:
        """Why this rule does not match the request ([] when every condition holds)."""
        checks, reasons = _conditions(self.match)
        return [why(request) for check, why in zip(checks, reasons, strict=True) if not check(request)]


_Test = Callable[[Request], bool]
_Reason = Callable[[Request], str]


def _conditions(m: Conditions) -> tuple[tuple[_Test, ...], tuple[_Reason, ...]]:
    """The conditions of `m`: a test for each, and what to say when it fails."""
    out: list[tuple[_Test, _Reason]] = []
    endpoints = m.endpoints
    if endpoints is not None:
        wanted = " or ".join(endpoints)
        out.append(
            (_endpoint_test(tuple(endpoints)), lambda request: f"endpoint: wanted {wanted}, got {request.endpoint}")
        )
    if m.model is not None:
        glob = m.model
        out.append((_model_test(glob), lambda request: f"model: {request.model!r} does not match {glob!r}"))
    if m.stream is not None:
        stream = m.stream
        out.append(
            (
                _stream_test(stream),
                lambda request: f"stream: wanted {str(stream).lower()}, got {str(request.stream).lower()}",
            )
        )
    if m.user is not None:
        out.append(_text_condition("user", m.user, _USER_TEXT))
    if m.system is not None:
        out.append(_text_condition("system", m.system, _SYSTEM_TEXT))
    for name, wanted in m.headers:
        out.append(_header_condition(name, wanted))
    return tuple(test for test, _ in out), tuple(why for _, why in out)


# The tests of the conditions that rules often share (the APIs, the model, stream) are made once per
# value, not once per rule: a recording of thousands of rules names a handful of models.
@lru_cache(maxsize=1024)
def _endpoint_test(endpoints: tuple[str, ...]) -> _Test:
    wanted = frozenset(endpoints)
    return lambda request: request.endpoint in wanted


@lru_cache(maxsize=1024)
def _model_test(glob: str) -> _Test:
    if not any(ch in glob for ch in "*?["):
        return lambda request: request.model == glob
    return lambda request: fnmatchcase(request.model, glob)


@lru_cache(maxsize=2)
def _stream_test(stream: bool) -> _Test:
    return lambda request: request.stream == stream


_USER_TEXT = attrgetter("user_text")
_SYSTEM_TEXT = attrgetter("system_text")


def _text_condition(role: str, cond: TextCondition, text_of: Callable[[Request], str | None]) -> tuple[_Test, _Reason]:
    test = cond.test

    def why(request: Request) -> str:
        text = text_of(request)
        return f"{role}: " + (f"no {role} message" if text is None else f"{_clip(text)!r} {cond.refusal()}")

    return (lambda request: test(text_of(request))), why


def _header_condition(name: str, wanted: str) -> tuple[_Test, _Reason]:
    key = name.lower()

    def why(request: Request) -> str:
        got = request.headers.get(key)
        return f"header {name}: wanted {wanted!r}, got {'missing' if got is None else repr(got)}"

    return (lambda request: request.headers.get(key) == wanted), why


@dataclass(slots=True)  # not frozen: made on every request, and a frozen init costs more
class Hit:
    """The rule that answers, the reply it gives, and which call of that rule this is."""

    rule: Rule
    reply: Script
    call_index: int


@dataclass(frozen=True, slots=True)
class Miss:
    """No rule matched: the nearest rules, each with why it did not."""

    request: Request
    near: list[tuple[Rule, list[str]]] = field(default_factory=list)
    total_rules: int = 0

    def explain(self) -> str:
        r = self.request
        lines = [
            f"mockllm: no rule matched this {r.endpoint} request",
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
        # Calls served per rule, by the rule's place in _rules (the hot path indexes a list).
        self._served: list[int] = []
        self._lock = threading.Lock()
        self.add(rules)

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def add(self, rules: Iterable[Rule]) -> None:
        with self._lock:
            counted = [*zip(self._rules, self._served, strict=True), *((rule, 0) for rule in rules)]
            # sorted() is stable: equal priorities keep the order they were added in.
            counted.sort(key=lambda pair: -pair[0].priority)
            self._rules = [rule for rule, _ in counted]
            self._served = [served for _, served in counted]

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self._served = []

    def reset(self) -> None:
        """Forget call counts: sequences start over, `times` limits refill."""
        with self._lock:
            self._served = [0] * len(self._rules)

    def calls(self, rule: Rule) -> int:
        with self._lock:
            return sum(n for r, n in zip(self._rules, self._served, strict=True) if r is rule)

    def unused(self) -> list[Rule]:
        with self._lock:
            return [r for r, n in zip(self._rules, self._served, strict=True) if not n]

    def unfinished(self) -> list[Rule]:
        """Rules with `replies` not yet all played."""
        with self._lock:
            return [r for r, n in zip(self._rules, self._served, strict=True) if not r.cycle and n < len(r.replies)]

    def route(self, request: Request) -> Hit | Miss:
        with self._lock:
            served = self._served
            for i, rule in enumerate(self._rules):
                n = served[i]
                capacity = rule.capacity
                if capacity is not None and n >= capacity:
                    continue
                for check in rule.checks:  # all() over a generator costs more: this loop runs on every request
                    if not check(request):
                        break
                else:
                    served[i] = n + 1
                    return Hit(rule, rule.replies[n % len(rule.replies)], n)
            # No rule: now say why, for each (only misses pay for the explanations).
            near: list[tuple[Rule, list[str]]] = []
            for rule, n in zip(self._rules, served, strict=True):
                reasons = rule.mismatches(request)
                if rule.capacity is not None and n >= rule.capacity:
                    what = "times" if rule.times is not None else "replies"
                    reasons.append(f"{what}: already served {n} of {rule.capacity} call(s)")
                near.append((rule, reasons))
            near.sort(key=lambda pair: len(pair[1]))  # stable: file order among equals
            return Miss(request, near[:5], len(self._rules))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
