"""Text conditions (`equals`, `contains`, `regex`) as rules keep them, and `regex` on RE2.

RE2's matching time is linear in the text: a pattern such as `(a+)+$` that backtracks for hours in
Python's `re` answers at once, so no pattern and no request can hold the server up. RE2 reads
Python's syntax but for what needs backtracking (backreferences, lookaround, atomic groups); those
patterns are refused at load, each with what to write instead (see _re2_hint).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

__all__ = ["Pattern", "TextCondition"]


@dataclass(frozen=True, slots=True)
class TextCondition:
    """A TextMatch as a loaded rule keeps it: a file of thousands of rules keeps thousands, and a
    slotted object costs a tenth of a pydantic model."""

    kind: str  # equals | contains | regex
    text: str
    pattern: Pattern | None  # for regex

    def test(self, text: str | None) -> bool:
        if text is None:
            return False
        if self.kind == "equals":
            return text == self.text
        if self.kind == "contains":
            return self.text in text
        assert self.pattern is not None
        return self.pattern.search(text)

    def refusal(self) -> str:
        """The condition, negated: what a text that fails it does not do."""
        if self.kind == "equals":
            return f"is not {self.text!r}"
        if self.kind == "contains":
            return f"does not contain {self.text!r}"
        return f"does not match regex {self.text!r}"


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr: the ValueError says it
    return options


_RE2_OPTIONS = _re2_options()
# What RE2 says of a Python pattern it cannot run (the start of its message), and what to write instead.
_RE2_HINTS: tuple[tuple[str, str], ...] = (
    ("invalid perl operator: (?=", "RE2 has no lookahead: use contains/equals, or two rules"),
    ("invalid perl operator: (?!", "RE2 has no negative lookahead: put a rule for the texts to leave out first"),
    ("invalid perl operator: (?<=", "RE2 has no lookbehind: match the text before as part of the pattern"),
    ("invalid perl operator: (?<!", "RE2 has no negative lookbehind: put a rule for the texts to leave out first"),
    # (?P<name>...) groups compile: a (?P that fails is a (?P=name) backreference.
    ("invalid perl operator: (?P", "RE2 has no backreferences: spell the repeated text out, or use contains"),
    ("invalid escape sequence: \\Z", "RE2 writes Python's \\Z (end of text) as \\z"),
    ("invalid escape sequence: \\u", "write the character itself, or \\x{00e9} for U+00E9"),
    ("invalid escape sequence: \\U", "write the character itself, or \\x{1f600} for U+1F600"),
    ("invalid escape sequence: \\N", "write the character itself, or \\x{...} with its code point"),
    ("invalid perl operator: (?>", "RE2 never backtracks, so an atomic group is a plain one: write (?:...)"),
    ("invalid perl operator: (?x", "RE2 has no verbose mode: write the pattern without its spaces and comments"),
    ("invalid perl operator: (?#", "RE2 has no (?#...) comments: leave them out"),
    ("invalid perl operator: (?(", "RE2 has no conditional groups: use two rules"),
    ("invalid perl operator: (?", "RE2 knows the inline flags i, m, s and U, and (?:...) and (?P<name>...) groups"),
    ("bad repetition operator: ", "RE2 has no possessive quantifiers (*+ ++ ?+): drop the last +"),
    ("invalid repetition size", "RE2 repeats at most 1000 times, nested repeats included: use a smaller count"),
    ("pattern too large", "the pattern needs more memory than RE2 allows (8 MB): use a shorter one"),
)


def _re2_hint(message: str) -> str:
    if message.startswith("invalid escape sequence: \\") and message[-1:].isdigit():
        return "RE2 has no backreferences: spell the repeated text out, or use contains"
    for start, hint in _RE2_HINTS:
        if message.startswith(start):
            return hint
    return "see https://github.com/google/re2/wiki/Syntax for what RE2 reads"


class Pattern:
    """A `regex` compiled by RE2 once, at load; equal to another of the same pattern (for model equality)."""

    __slots__ = ("_compiled", "_dollar", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            re.compile(pattern)
        except re.error as exc:
            # Python's message points at the place ("at position 9"); RE2's does not.
            raise ValueError(f"regex {pattern!r} does not compile: {exc}") from None
        try:
            self._compiled = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            raw = exc.args[0] if exc.args else exc
            message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise ValueError(
                f"regex {pattern!r} cannot run on RE2, the linear-time engine of regex conditions"
                f" ({message}): {_re2_hint(message)}"
            ) from None
        # Python's `$` also matches before a last "\n", RE2's only at the end: see search().
        self._dollar = "$" in pattern
        if _EMPTY_MIN.search(pattern):
            # Both compile it, but Python reads {,3} as {0,3} and RE2 as the text "{,3}": refuse the surprise.
            raise ValueError(f"regex {pattern!r}: RE2 reads {{,n}} as plain text, not as up to n times: write {{0,n}}")

    def search(self, text: str) -> bool:
        # Bytes: RE2 works on UTF-8, and given a str the binding also maps every offset back to characters,
        # which a yes/no answer does not need. surrogatepass: a lone surrogate must not raise here.
        data = text.encode("utf-8", "surrogatepass")
        if self._compiled.search(data) is not None:
            return True
        # A text ending in "\n" ("hello\n" for `^hello$`): Python's `$` matches before that newline too.
        # Searching the text without it adds exactly those matches: Python refuses \z and RE2 \Z, so `$`
        # is the one anchor that sees the end, and no other construct matches differently there.
        return self._dollar and data.endswith(b"\n") and self._compiled.search(data[:-1]) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Pattern({self.pattern!r})"


# `{,n}` not after a backslash that escapes its brace (an even run of backslashes escapes nothing).
_EMPTY_MIN = re.compile(r"(?<!\\)(?:\\\\)*\{,\d+\}")
