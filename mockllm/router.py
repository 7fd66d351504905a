"""Rules and the Router that picks one per request, keeping each rule's call count.

A rule matches when every condition in its `match` holds (mockllm/conditions.py) and it still
has an answer to give (`times` not reached, `replies` not played out). When none matches, the
Router says, for the nearest rules, which conditions failed and why. Rules see every API's
requests through one view (mockllm.request.Request): `endpoint` says which API a request came in on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .callbacks import describe
from .conditions import Conditions, Test, ToolResultCondition, clip, conditions, predicate
from .conversation import conversation
from .index import RuleIndex
from .request import Request
from .script import Script

__all__ = ["Conditions", "Hit", "Miss", "Router", "Rule", "ToolResultCondition"]


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
    # `match` by conditions. What to say when one fails is made again when a miss asks: a file of
    # thousands of rules would otherwise keep as many explanations that are seldom read.
    checks: tuple[Test, ...] = field(init=False, default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # `times` caps the calls in all: `replies` then play round after round until it is reached.
        # Without it, `replies` play once and `reply` answers for ever.
        capacity = self.times if self.times is not None else None if self.cycle else len(self.replies)
        object.__setattr__(self, "capacity", capacity)
        checks = conditions(self.match)[0]
        if self.when is not None:
            checks = (*checks, predicate(self.when))
        object.__setattr__(self, "checks", checks)

    def mismatches(self, request: Request) -> list[str]:
        """Why this rule does not match the request ([] when every condition holds)."""
        checks, reasons = conditions(self.match)
        out = [why(request) for check, why in zip(checks, reasons, strict=True) if not check(request)]
        if self.when is not None and not out and not predicate(self.when)(request):
            out.append(f"match: the test's predicate {describe(self.when)} returned false")
        return out


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
            f" user={clip(r.user_text) if r.user_text is not None else None!r}"
            + (f" system={clip(r.system_text)!r}" if r.system_text is not None else ""),
        ]
        if not self.total_rules:
            lines.append("  no rules are loaded: add one (a scenario file, or a rule added in the test)")
            return "\n".join(lines)
        lines.append(f"  nearest rules (of {self.total_rules}):")  # closest first
        for rule, reasons in self.near:
            # A rule added in a test is named after where it was added: say that once.
            label = rule.name if rule.name.startswith(rule.origin) else f"{rule.name} ({rule.origin})"
            lines.append(f"    - {label}: " + "; ".join(reasons))
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
        self._index: RuleIndex | None = None  # the rules that match on body fields, looked up (index.py)
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
            self._index = RuleIndex.of(self._rules)

    def remove(self, name: str) -> list[Rule]:
        """Take out every rule named `name` (the others keep their order and their counts); the rules
        taken out, [] when none has that name."""
        with self._lock:
            removed = [rule for rule in self._rules if rule.name == name]
            if not removed:
                return []
            kept = [(rule, n) for rule, n in zip(self._rules, self._served, strict=True) if rule.name != name]
            self._rules = [rule for rule, _ in kept]
            self._served = [n for _, n in kept]
            for rule in removed:
                self._talks.pop(id(rule), None)
            # The index holds positions in _rules: they moved, so it is made again.
            self._index = RuleIndex.of(self._rules)
            return removed

    def counts(self) -> list[tuple[Rule, int]]:
        """Every rule with the calls it served (in all conversations), in rule order, read at once."""
        with self._lock:
            return list(zip(self._rules, self._served, strict=True))

    def clear(self) -> None:
        with self._lock:
            self._rules = []
            self._served = []
            self._talks = {}
            self._index = None

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
            index = self._index
            if index is None:
                hit = self._first(range(len(self._rules)), request)
            else:
                hit = self._first(index.candidates(request), request)
            return hit if hit is not None else self._miss(request)

    def _first(self, positions: Iterable[int], request: Request) -> Hit | None:
        """The first rule at `positions` (ascending) that matches and has a call left, its call counted."""
        rules, served = self._rules, self._served
        for i in positions:
            rule = rules[i]
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
        return None

    def _miss(self, request: Request) -> Miss:
        """No rule: the nearest ones (fewest failed conditions), each with why (only misses pay for it,
        and only the nearest five have their reasons written)."""
        scored = []
        for i, rule in enumerate(self._rules):
            failed = sum(1 for check in rule.checks if not check(request)) + (
                self._exhausted(rule, i, request) is not None
            )
            scored.append((failed, i))
        scored.sort()  # stable: file order among equals
        near = []
        for _, i in scored[:5]:
            rule = self._rules[i]
            reasons = rule.mismatches(request)
            exhausted = self._exhausted(rule, i, request)
            if exhausted is not None:
                reasons.append(exhausted)
            near.append((rule, reasons))
        return Miss(request, near, len(self._rules))

    def _exhausted(self, rule: Rule, i: int, request: Request) -> str | None:
        """What to say when the rule has no call left (for this request's conversation), else None."""
        capacity = rule.capacity
        if capacity is None:
            return None
        what = "times" if rule.times is not None else "replies"
        if rule.per_conversation:
            k = self._talks[id(rule)].get(conversation(request).key, 0)
            return f"{what}: already served {k} of {capacity} call(s) in this conversation" if k >= capacity else None
        n = self._served[i]
        return f"{what}: already served {n} of {capacity} call(s)" if n >= capacity else None
