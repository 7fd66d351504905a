"""Rules and the Router that picks one per request, keeping each rule's call count.

A rule matches when every condition in its `match` holds and it still has an answer to
give (`times` not reached, `replies` not played out). When none matches, the Router says,
for the nearest rules, which conditions failed and why. Rules see every API's requests
through one view (mockllm.request.Request): `endpoint` says which API a request came in on.
"""

from __future__ import annotations

import difflib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from operator import attrgetter
from typing import Any

from .conversation import conversation
from .pattern import TextCondition
from .request import Request
from .scenario import Match
from .script import Script

__all__ = ["Conditions", "Hit", "Miss", "Router", "Rule", "ToolResultCondition"]


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
    tools: tuple[str, ...] | None = None  # globs, each an offered tool's name
    tool_result: ToolResultCondition | None = None
    turns: tuple[int, int | None] | None = None  # (at least, at most)
    last_role: str | None = None

    @classmethod
    def of(cls, m: Match) -> Conditions:
        turn = m.turn
        return cls(
            m.endpoints,
            m.model,
            m.stream,
            m.user.condition if m.user is not None else None,
            m.system.condition if m.system is not None else None,
            tuple((m.headers or {}).items()),
            (m.tool,) if isinstance(m.tool, str) else tuple(m.tool) if m.tool is not None else None,
            ToolResultCondition(m.tool_result.name, m.tool_result.text) if m.tool_result is not None else None,
            None if turn is None else (turn, turn) if isinstance(turn, int) else (turn.min or 0, turn.max),
            m.last_role,
        )


@dataclass(frozen=True, slots=True)
class ToolResultCondition:
    name: str | None  # a glob on the tool's name
    text: TextCondition | None


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
    per_conversation: bool = False  # `sequence: conversation`: replies and times count per conversation
    optional: bool = False  # assert_all_used does not report it
    # Python code a test gave (the plugin's `add(match=callable, reply=callable)`; never from a file):
    # `when` must also hold; `respond` makes the reply of each call (mockllm/callbacks.py runs them).
    when: Callable[[Request], Any] | None = field(default=None, compare=False)
    respond: Callable[[Request], Any] | None = field(default=None, compare=False)
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
        checks = _conditions(self.match)[0]
        if self.when is not None:
            checks = (*checks, _predicate(self.when))
        object.__setattr__(self, "checks", checks)

    def mismatches(self, request: Request) -> list[str]:
        """Why this rule does not match the request ([] when every condition holds)."""
        checks, reasons = _conditions(self.match)
        out = [why(request) for check, why in zip(checks, reasons, strict=True) if not check(request)]
        if self.when is not None and not out and not _predicate(self.when)(request):
            out.append(f"match: the test's predicate {_name_of(self.when)} returned false")
        return out


def _predicate(when: Callable[[Request], Any]) -> _Test:
    from .callbacks import call

    return lambda request: bool(call(when, request))


def _name_of(code: Callable[..., Any]) -> str:
    return getattr(code, "__qualname__", None) or repr(code)


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
    for glob in m.tools or ():
        out.append(_tool_condition(glob))
    if m.tool_result is not None:
        out.append(_tool_result_condition(m.tool_result))
    if m.turns is not None:
        out.append(_turn_condition(*m.turns))
    if m.last_role is not None:
        out.append(_last_role_condition(m.last_role))
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
        if text is None:
            return f"{role}: no {role} message"
        return f"{role}: {_clip(text)!r} {cond.refusal()}{_closeness(text, cond)}"

    return (lambda request: test(text_of(request))), why


def _closeness(text: str, cond: TextCondition) -> str:
    """A hint when `text` nearly meets an equals or contains condition: the usual near misses are
    case, spacing, and a typo."""
    if cond.kind == "regex" or not cond.text:
        return ""
    wanted, text = cond.text, text[:2000]  # a hint is not worth a long scan
    if cond.kind == "equals":
        candidates = [text]
    else:  # the windows of the wanted length, at each word's start
        size = len(wanted)
        starts = [0, *(i + 1 for i, ch in enumerate(text) if ch.isspace())][:200]
        candidates = [text[i : i + size] for i in starts] or [text]
    for got in candidates:
        if got.casefold() == wanted.casefold():
            return f" (close: {got!r} differs only in case)"
        if " ".join(got.split()) == " ".join(wanted.split()):
            return f" (close: {got!r} differs only in spacing)"
    best = max(candidates, key=lambda got: difflib.SequenceMatcher(None, got, wanted).ratio())
    if difflib.SequenceMatcher(None, best, wanted).ratio() >= 0.8:
        at = next(
            (i for i, (a, b) in enumerate(zip(best, wanted, strict=False)) if a != b), min(len(best), len(wanted))
        )
        return f" (close: {_clip(best)!r} first differs at character {at + 1})"
    return ""


def _header_condition(name: str, wanted: str) -> tuple[_Test, _Reason]:
    key = name.lower()

    def why(request: Request) -> str:
        got = request.headers.get(key)
        return f"header {name}: wanted {wanted!r}, got {'missing' if got is None else repr(got)}"

    return (lambda request: request.headers.get(key) == wanted), why


def _glob_test(glob: str) -> Callable[[str | None], bool]:
    if not any(ch in glob for ch in "*?["):
        return lambda name: name == glob
    return lambda name: name is not None and fnmatchcase(name, glob)


def _tool_condition(glob: str) -> tuple[_Test, _Reason]:
    test = _glob_test(glob)

    def why(request: Request) -> str:
        offered = ", ".join(request.tools) if request.tools else "none"
        return f"tool: no offered tool is named {glob!r} (offered: {offered})"

    return (lambda request: any(test(name) for name in request.tools)), why


def _tool_result_condition(cond: ToolResultCondition) -> tuple[_Test, _Reason]:
    name_test = _glob_test(cond.name) if cond.name is not None else None
    text = cond.text

    def holds(request: Request) -> bool:
        return any(
            (name_test is None or name_test(result.name)) and (text is None or text.test(result.text))
            for result in conversation(request).tool_results
        )

    def why(request: Request) -> str:
        talk = conversation(request)
        if not talk.tool_results:
            last = talk.last_role
            return "tool_result: " + (
                "no messages" if last is None else f"the last message is {_a(last)} message, not a tool's result"
            )
        said = []
        for result in talk.tool_results:
            if name_test is not None and not name_test(result.name):
                said.append(f"the result is of {result.name or 'an unnamed tool'!r}, not {cond.name!r}")
            elif text is not None:
                said.append(f"{_clip(result.text)!r} {text.refusal()}")
        return "tool_result: " + "; ".join(said)

    return holds, why


def _a(role: str) -> str:
    return "an assistant" if role == "assistant" else f"a {role}"


def _turn_condition(least: int, most: int | None) -> tuple[_Test, _Reason]:
    wanted = str(least) if most == least else f"at least {least}" if most is None else f"{least} to {most}"

    def holds(request: Request) -> bool:
        turns = conversation(request).turns
        return least <= turns and (most is None or turns <= most)

    def why(request: Request) -> str:
        turns = conversation(request).turns
        return f"turn: wanted {wanted} model turn(s) before this request, the conversation has {turns}"

    return holds, why


def _last_role_condition(role: str) -> tuple[_Test, _Reason]:
    def why(request: Request) -> str:
        return f"last_role: wanted {role}, the last message is {conversation(request).last_role or 'missing'}"

    return (lambda request: conversation(request).last_role == role), why


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
            lines.append("  no rules are loaded: add one (a scenario file, or a rule added in the test)")
            return "\n".join(lines)
        lines.append(f"  nearest rules (of {self.total_rules}):")  # closest first
        for rule, reasons in self.near:
            lines.append(f"    - {rule.name} ({rule.origin}): " + "; ".join(reasons))
        closest = self.near[0][1] if self.near else []
        if closest and all(reason.startswith(("replies:", "times:")) for reason in closest):
            lines.append(
                "  The closest rule matches but has served all its calls: give it more replies, a `times`, "
                "or `sequence: conversation` (each conversation then plays its replies from the start)."
            )
        else:
            lines.append("  Add a rule that matches this request, or loosen the conditions of one above.")
        return "\n".join(lines)


class Router:
    """Picks the first matching rule (higher priority first, then file order)."""

    # Conversations a `sequence: conversation` rule remembers, the least recent forgotten first: a
    # client that opens a new conversation per request must not grow the server without bound.
    CONVERSATIONS = 10_000

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: list[Rule] = []
        # Calls served per rule, by the rule's place in _rules (the hot path indexes a list).
        self._served: list[int] = []
        # Per conversation, for the rules whose sequences count so: by id(rule), conversation key -> calls.
        self._talks: dict[int, OrderedDict[str, int]] = {}
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
            for rule in self._rules:
                if rule.per_conversation:
                    self._talks.setdefault(id(rule), OrderedDict())

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self._served = []
            self._talks = {}

    def reset(self) -> None:
        """Forget call counts: sequences start over, `times` limits refill."""
        with self._lock:
            self._served = [0] * len(self._rules)
            self._talks = {id(rule): OrderedDict() for rule in self._rules if rule.per_conversation}

    def calls(self, rule: Rule) -> int:
        with self._lock:
            return sum(n for r, n in zip(self._rules, self._served, strict=True) if r is rule)

    def unused(self) -> list[Rule]:
        with self._lock:
            return [r for r, n in zip(self._rules, self._served, strict=True) if not n]

    def unfinished(self) -> list[Rule]:
        """Rules with `replies` not yet all played (per conversation: in a conversation that began them)."""
        with self._lock:
            out = []
            for rule, n in zip(self._rules, self._served, strict=True):
                if rule.cycle:
                    continue
                if rule.per_conversation:
                    if any(0 < calls < len(rule.replies) for calls in self._talks[id(rule)].values()):
                        out.append(rule)
                elif n < len(rule.replies):
                    out.append(rule)
            return out

    def route(self, request: Request) -> Hit | Miss:
        with self._lock:
            served = self._served
            for i, rule in enumerate(self._rules):
                n = served[i]
                capacity = rule.capacity
                if capacity is not None and n >= capacity and not rule.per_conversation:
                    continue
                for check in rule.checks:  # all() over a generator costs more: this loop runs on every request
                    if not check(request):
                        break
                else:
                    if rule.per_conversation:
                        talks, key = self._talks[id(rule)], conversation(request).key
                        k = talks.get(key, 0)
                        if capacity is not None and k >= capacity:
                            continue
                        talks[key] = k + 1
                        talks.move_to_end(key)
                        if len(talks) > self.CONVERSATIONS:
                            talks.popitem(last=False)
                        served[i] = n + 1
                        # The call's derived values (ids) count every call of the rule, so that two
                        # conversations never share a response id; the reply counts this conversation's.
                        return Hit(rule, rule.replies[k % len(rule.replies)], n)
                    served[i] = n + 1
                    return Hit(rule, rule.replies[n % len(rule.replies)], n)
            # No rule: now say why, for each (only misses pay for the explanations).
            near: list[tuple[Rule, list[str]]] = []
            for rule, n in zip(self._rules, served, strict=True):
                reasons = rule.mismatches(request)
                what = "times" if rule.times is not None else "replies"
                if rule.per_conversation and rule.capacity is not None:
                    k = self._talks[id(rule)].get(conversation(request).key, 0)
                    if k >= rule.capacity:
                        reasons.append(f"{what}: already served {k} of {rule.capacity} call(s) in this conversation")
                elif rule.capacity is not None and n >= rule.capacity:
                    reasons.append(f"{what}: already served {n} of {rule.capacity} call(s)")
                near.append((rule, reasons))
            near.sort(key=lambda pair: len(pair[1]))  # stable: file order among equals
            return Miss(request, near[:5], len(self._rules))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
