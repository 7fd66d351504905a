"""What the request's own limits do to an answer: a token cap and stop sequences, in every API.

A real model stops where the request says: at `max_tokens` (`max_completion_tokens`,
`max_output_tokens`, Anthropic's `max_tokens`, Gemini's `maxOutputTokens`), the answer cut there
with the finish `length`; or before the first stop sequence (`stop`, Anthropic's `stop_sequences`,
Gemini's `stopSequences`), the text cut before it with the finish `stop`. Both are edge cases apps
often mishandle, so the fake applies them to the scripted reply (a scenario that wants to say
`length` itself still can: `finish_reason: length`). Usage then counts what was sent.

Neutral: the text pieces and tool calls of a Call go in, the cut ones come out; each dialect says
the finish its own way (Anthropic also names the stop sequence that matched).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .dialects.base import ToolCallWire
from .tokens import count_tokens, split_tokens

__all__ = ["Cut", "cut"]


class Cut(NamedTuple):
    """The answer as the request's limits leave it."""

    pieces: tuple[str, ...]
    tools: tuple[ToolCallWire, ...]
    finish_reason: str | None  # None: the reply's own
    stop_sequence: str | None  # the stop sequence the text ended before
    tokens: int | None  # the completion tokens sent (None: not cut, the reply's own count stands)


def cut(pieces: tuple[str, ...], tools: tuple[ToolCallWire, ...], cap: int | None, stops: Sequence[str]) -> Cut | None:
    """The answer cut by `stops`, then by `cap` tokens; None when neither changes it."""
    stop_sequence = None
    if stops and pieces:
        text = "".join(pieces)
        found = [(at, s) for s in stops if s and (at := text.find(s)) >= 0]
        if found:
            at, stop_sequence = min(found)
            pieces = _prefix(pieces, at)
            tools = ()  # the model stopped in its text: no call follows
    if cap is not None:
        capped = _capped(pieces, tools, cap)
        if capped is not None:
            return capped
    if stop_sequence is None:
        return None
    tokens = sum(count_tokens(p) for p in pieces) + sum(count_tokens(t.name) + count_tokens(t.arguments) for t in tools)
    return Cut(pieces, tools, "stop", stop_sequence, tokens)


def _prefix(pieces: tuple[str, ...], end: int) -> tuple[str, ...]:
    """The pieces that make up the text's first `end` characters (the last one trimmed)."""
    out: list[str] = []
    left = end
    for piece in pieces:
        if left <= 0:
            break
        out.append(piece if len(piece) <= left else piece[:left])
        left -= len(piece)
    return tuple(out)


def _capped(pieces: tuple[str, ...], tools: tuple[ToolCallWire, ...], cap: int) -> Cut | None:
    """The answer cut after `cap` tokens, or None when it fits."""
    left = cap
    kept: list[str] = []
    for piece in pieces:
        size = count_tokens(piece)
        if size <= left:
            kept.append(piece)
            left -= size
            continue
        # A piece of several tokens (a scenario's `chunks`) is cut inside, at a token boundary.
        part = "".join(split_tokens(piece)[:left])
        if part:
            kept.append(part)
        return Cut(tuple(kept), (), "length", None, cap)
    calls: list[ToolCallWire] = []
    for tool in tools:
        size = count_tokens(tool.name) + count_tokens(tool.arguments)
        if size <= left:
            calls.append(tool)
            left -= size
            continue
        # The cap falls inside this call's arguments: they end where it falls (not valid JSON), as a
        # real model's do, and no call follows.
        left -= count_tokens(tool.name)
        fragments: list[str] = []
        for fragment in tool.fragments:
            if left <= 0:
                break
            took = split_tokens(fragment)[: max(left, 0)]
            fragments.append("".join(took))
            left -= len(took)
        arguments = "".join(fragments)
        calls.append(ToolCallWire(tool.id, tool.name, arguments, tuple(fragments) or ("",)))
        return Cut(tuple(kept), tuple(calls), "length", None, cap)
    return None
