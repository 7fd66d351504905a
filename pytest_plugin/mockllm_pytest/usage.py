"""`assert_all_used = session`: which rules the session's tests used, and what to say at its end.

Per test, assert_all_used fails a test for the rules it left unused, which a scenario file shared by
many tests (the `mockllm_scenarios` option's, say) makes useless: each test uses a few of its rules.
The session mode tallies every test's rules instead and checks once, after the last test: a rule
counts as used if any test used it, and a sequence as played out if any test played all of it.

A rule is known by its origin and name (`scenario.yaml:6`, `farewell`): the rule of a file that many
tests load, or the one each run of a parametrized test adds at the same line, is one rule. Under
pytest-xdist each worker tallies its own tests and hands the tally to the controller, which checks.

Only the rules of tests that passed (and whose marker does not say `assert_all_used=False`) are
checked, and rules marked `optional: true` never are. A run that failed, stopped early (-x) or
deselected tests (-k, -m, --lf...) is not checked at all: the rules the other tests use would show
up as unused. Nor can a run of a part of the suite by path be told apart from the whole: there, turn
the check off (`-o mockllm_assert_all_used=false`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mockllm import Router
from mockllm.asserts import usage_problems

__all__ = ["SessionUsage", "Tally"]


@dataclass
class Tally:
    """One rule over the session."""

    name: str
    origin: str
    replies: int  # how many replies it plays in order (0: a `reply:`, which answers every call)
    checked: bool = False  # a checked test had it, and it is not `optional: true`
    used: int = 0  # tests that called it
    played_out: int = 0  # tests that called it and played all its replies


class SessionUsage:
    """The tally of every test's rules: `record` after each test, `problems` after the last."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.deselected = 0  # tests pytest deselected: the check then does not run

    def record(self, router: Router, *, checked: bool) -> None:
        """Add one test's rules: which it called, and which sequences it left unfinished."""
        unused = {id(rule) for rule in router.unused()}
        unfinished = {id(rule) for rule in router.unfinished()}
        for rule in router.rules:
            key = (rule.origin, rule.name)
            tally = self.tallies.get(key)
            if tally is None:
                replies = 0 if rule.cycle else len(rule.replies)
                tally = self.tallies[key] = Tally(rule.name, rule.origin, replies)
            tally.checked = tally.checked or (checked and not rule.optional)
            if id(rule) not in unused:
                tally.used += 1
                if id(rule) not in unfinished:
                    tally.played_out += 1

    # -- across xdist workers: plain data, as execnet sends it -------------------------------

    def dump(self) -> dict[str, Any]:
        rows = [[t.name, t.origin, t.replies, t.checked, t.used, t.played_out] for t in self.tallies.values()]
        return {"rules": rows, "deselected": self.deselected}

    def merge(self, dumped: dict[str, Any]) -> None:
        """Add a worker's tally (every worker collects, and deselects, the same tests)."""
        self.deselected = max(self.deselected, int(dumped["deselected"]))
        for name, origin, replies, checked, used, played_out in dumped["rules"]:
            tally = self.tallies.setdefault((origin, name), Tally(name, origin, replies))
            tally.checked = tally.checked or checked
            tally.used += used
            tally.played_out += played_out

    # -- the check ---------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What to report: checked rules no test used, and sequences no test played out."""
        checked = [t for t in self.tallies.values() if t.checked]
        unused = [t for t in checked if not t.used]
        unfinished = [t for t in checked if t.used and t.replies and not t.played_out]
        return usage_problems(
            [(t.name, t.origin) for t in unused],
            [(t.name, t.origin, f"{t.replies} replies") for t in unfinished],
            unused_said="never used by any test (assert_all_used=session)",
            unfinished_said="whose replies no test played to the end",
            advice="Use them, remove them, or mark them `optional: true`.",
        )

    def checked_rules(self) -> int:
        return sum(t.checked for t in self.tallies.values())
