"""An index of the rules that match on the request's body (`match.body`), so that a recording of
thousands of rules routes a request in about the time a scenario of one rule takes.

Each such rule names a few body fields and their values: those are looked up, not scanned. The
rules are grouped by the fields they name (a recording's rules name the same ones), and a request's
fields, as canonical JSON (mockllm/conditions.py, `body_field`), find the candidates of each
group. The Router still tries the candidates in rule order, with all their conditions (and it tries
every rule that names no body field), so the index changes how fast, never which rule answers
(tests/test_index.py holds it to the plain scan).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from .conditions import body_field

if TYPE_CHECKING:
    from .request import Request
    from .router import Rule

__all__ = ["RuleIndex"]

# Below this many body rules the index costs more than the scan it saves.
_WORTH_IT = 16


class RuleIndex:
    """Positions of rules (in the Router's order), found by the body fields a request has."""

    def __init__(self, scanned: list[int], groups: dict[tuple[str, ...], dict[tuple[bytes, ...], list[int]]]) -> None:
        self.scanned = scanned  # the rules that name no body field: tried for every request
        self.groups = groups  # fields named -> their values -> the rules naming them so

    @classmethod
    def of(cls, rules: Sequence[Rule]) -> RuleIndex | None:
        """The index of `rules`, or None when too few of them name body fields for it to pay."""
        if sum(1 for rule in rules if rule.match.body) < _WORTH_IT:
            return None
        scanned: list[int] = []
        groups: dict[tuple[str, ...], dict[tuple[bytes, ...], list[int]]] = {}
        for i, rule in enumerate(rules):
            body = rule.match.body
            if not body:
                scanned.append(i)
                continue
            fields = tuple(key for key, _ in body)
            groups.setdefault(fields, {}).setdefault(tuple(value for _, value in body), []).append(i)
        return cls(scanned, groups)

    def candidates(self, request: Request) -> Iterator[int]:
        """The positions of the rules that may match `request`, ascending."""
        runs: list[list[int]] = [self.scanned] if self.scanned else []
        for fields, by_value in self.groups.items():
            found = by_value.get(tuple(body_field(request, key) for key in fields))
            if found:
                runs.append(found)
        if len(runs) == 1:
            return iter(runs[0])
        return heapq.merge(*runs)
