"""What fails a test, said: the requests no rule matched, those whose Python code raised, and (opt
in) the rules a test left unused. The MockLLM of each test gathers them (handle.py); this module
writes them as pytest shows them, each request once.
"""

from __future__ import annotations

import re

from mockllm import Entry, Router, Rule
from mockllm.asserts import count, describe, usage_problems

__all__ = ["count", "describe", "request_report", "usage_report"]


def request_report(
    unmatched: list[Entry], raised: list[Entry], failure: str, *, no_rules: bool, hint: str | None
) -> list[str]:
    """The report of the requests no rule matched and of those a test's callable raised for; a
    request whose error the test's `failure` already shows is named, not copied again."""
    said = _plain(failure)

    def told(entry: Entry) -> list[str]:
        error = (entry.error or "").rstrip("\n")
        if error and said and _plain(error) in said:
            return ["", f"{describe(entry)}: as the error above says"]
        return ["", describe(entry), error]

    out: list[str] = []
    if unmatched:
        lines = [
            f"mockllm: {count(len(unmatched), 'request')} matched no rule (answered {unmatched[0].status}"
            " no_rule_matched, which the code under test may have swallowed):"
        ]
        for entry in unmatched:
            lines += told(entry)
        if no_rules:
            lines += [
                "",
                "The test has no rules: name scenario files in @pytest.mark.mockllm(...) or the"
                " mockllm_scenarios option, or add rules with mockllm.reply(...) or mockllm.add(...).",
            ]
        lines += ["", "If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True)."]
        if hint is not None:
            lines += ["", hint]
        out.append("\n".join(lines))
    if raised:
        lines = [
            f"mockllm: the test's Python code raised for {count(len(raised), 'request')} (answered 500,"
            " which the code under test may have swallowed):"
        ]
        for entry in raised:
            lines += told(entry)
        out.append("\n".join(lines))
    return out


def usage_report(router: Router) -> list[str]:
    """The rules a test left unused, and the `replies` it did not play out (`optional: true` aside)."""
    unused = [r for r in router.unused() if not r.optional]
    unfinished = [r for r in router.unfinished() if router.calls(r) and not r.optional]
    return usage_problems(
        [(r.name, r.origin) for r in unused],
        [(r.name, r.origin, _played(router, r)) for r in unfinished],
        unused_said="never used (assert_all_used is on)",
        unfinished_said="did not play all its replies",
        advice="Use them, remove them, mark them `optional: true`,"
        " or mark the test @pytest.mark.mockllm(assert_all_used=False).",
    )


def _plain(text: str) -> str:
    """Text with each line stripped, and the `E` pytest puts before an exception's lines dropped."""
    return "\n".join(_FAILURE_MARK.sub("", line).strip() for line in text.splitlines())


_FAILURE_MARK = re.compile(r"^E\s+")


def _played(router: Router, rule: Rule) -> str:
    if rule.per_conversation:
        return f"a conversation stopped before the last of its {len(rule.replies)} replies"
    return f"played {router.calls(rule)} of {len(rule.replies)}"
