"""The `n` choices of one answer (chat, legacy completions), each with its own text: neutral, no wire.

A request's `n` asks for that many choices. Without the reply's `choices` key every choice is the
Call's answer, as plan.py made it (the request's limits applied once): the same object `n` times,
so a dialect can say it once. With `choices`, choice i says `choices[i % len(choices)]` (choice 0
too, with `n` 1: the reply's body key is then what the other APIs answer), followed by the reply's
tool calls, and the request's `max_tokens` and `stop` cut each choice on its own (mockllm/limits.py):
each has its own pieces, finish and completion tokens, and a shorter one ends earlier in a stream.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

from .dialects.base import ToolCallWire
from .limits import cut
from .template import values
from .tokens import count_tokens, split_tokens

if TYPE_CHECKING:
    from .dialects.base import Call
    from .request import Request
    from .script import Script

__all__ = ["CHOICE_ENDPOINTS", "Choice", "choices_of", "completion_tokens", "interleave", "stream_chunks"]

Delta = TypeVar("Delta")

CHOICE_ENDPOINTS = frozenset(("chat", "completions"))  # the APIs whose answers have `n` choices


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of an answer: what it says and how it ends."""

    content: str | None  # None: no text (tool calls only)
    pieces: tuple[str, ...]  # the text as it streams
    tools: tuple[ToolCallWire, ...]
    finish_reason: str  # the neutral finish (each dialect says it its own way)
    completion_tokens: int

    @property
    def chunks(self) -> int:
        """The stream chunks it takes: its pieces, then a head and the fragments per tool call."""
        return len(self.pieces) + sum(1 + len(t.fragments) for t in self.tools)


def choices_of(call: Call) -> tuple[Choice, ...]:
    """The request's `n` choices, in index order."""
    n, texts = call.request.n, choice_texts(call.script, call.request)
    if texts is None:
        same = Choice(call.content, call.pieces, call.tools, call.finish_reason, call.completion_tokens)
        return (same,) * n
    script, request = call.script, call.request
    # Each choice's text, then the reply's tool calls: as plan.py makes them (ids a scenario leaves out
    # derive per call), before the request's limits cut them after the body key's text. Arguments made
    # for this request (quoting it, or for the offered schema) are the call's: cut there, if the limits did.
    if any(t.template is not None or t.from_schema for t in script.tools):
        tools = call.tools
    else:
        tools = tuple(
            ToolCallWire(t.id or call.derived.call_id(i), t.name, t.arguments, t.fragments)
            for i, t in enumerate(script.tools)
        )
    tool_tokens = sum(count_tokens(t.name) + count_tokens(t.arguments) for t in tools)
    made: dict[int, Choice] = {}  # by index in `choices`: an `n` above its length repeats them
    quoting = call.script.choice_templates is not None
    for i in range(min(n, len(texts))):
        text = texts[i]
        pieces = tuple(split_tokens(text)) if quoting else _pieces(text)  # filled per call: not cached
        limited = cut(pieces, tools, request.max_tokens, request.stop)
        if limited is None:
            tokens = script.usage_completion
            if tokens is None:
                tokens = count_tokens(text) + tool_tokens
            made[i] = Choice(text, pieces, tools, script.finish_reason, tokens)
        else:
            finish = limited.finish_reason or script.finish_reason
            tokens = limited.tokens if limited.tokens is not None else 0
            made[i] = Choice("".join(limited.pieces), limited.pieces, limited.tools, finish, tokens)
    return tuple(made[i % len(texts)] for i in range(n))


def completion_tokens(choices: Sequence[Choice]) -> int:
    """The answer's completion tokens: usage counts every choice."""
    return sum(c.completion_tokens for c in choices)


def interleave(
    choices: Sequence[Choice], offsets: Sequence[float], deltas: Callable[[Choice], Iterator[Delta]]
) -> Iterator[tuple[float, int, Delta | None]]:
    """The streamed order of the choices' deltas, as (due at, choice index, delta; None: the choice's finish).

    One choice per chunk (shared/wire.md section 2, "n>1"): round j sends delta j of each choice that has
    one, in index order, due at offset j (the last one past the schedule's end); a choice finishes after
    its last round, one with no delta at once. `deltas(choice)` gives a choice's `chunks` deltas; the
    same choice object at several indexes (`n` above the texts) makes them once."""
    sources = {id(c): (deltas(c), c.chunks) for c in choices}
    lengths = [c.chunks for c in choices]
    for i, length in enumerate(lengths):
        if not length:
            yield offsets[0], i, None
    for j in range(max(lengths)):
        at = offsets[j] if j < len(offsets) else offsets[-1]
        said = {key: next(source) for key, (source, length) in sources.items() if j < length}
        for i, choice in enumerate(choices):
            if j < lengths[i]:
                yield at, i, said[id(choice)]
        for i, length in enumerate(lengths):
            if length == j + 1:
                yield at, i, None


def stream_chunks(script: Script, request: Request) -> int:
    """The chunks the longest of the request's choices streams before its limits cut any, when the reply
    gives `choices` and the API has choices (0 else): how many offsets the schedule needs (plan.py), as
    each choice's delta j is due at offset j."""
    texts = choice_texts(script, request)
    if texts is None or request.endpoint not in CHOICE_ENDPOINTS:
        return 0
    cut_up = split_tokens if script.choice_templates is not None else _pieces
    return max(len(cut_up(text)) for text in texts[: request.n]) + script.tool_chunks


def choice_texts(script: Script, request: Request) -> tuple[str, ...] | None:
    """The reply's `choices`, their placeholders filled in for `request` (mockllm/template.py)."""
    templates = script.choice_templates
    if templates is None:
        return script.choices
    given = values(request)
    return tuple(template.render(given) for template in templates)


@lru_cache(maxsize=4096)
def _pieces(text: str) -> tuple[str, ...]:
    """A choice's text as it streams (one piece a token), cut once per text, not per call."""
    return tuple(map(sys.intern, split_tokens(text)))
