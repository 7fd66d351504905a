"""A rule's conditions: what `match` says, kept in slots, and for each condition a test of a
request and what to say when it fails (the near-miss report's reasons).

The tests are the hot path: made once per rule (those rules often share, once per value), and
each a plain callable of the request. The reasons are made again when a miss asks for them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from operator import attrgetter
from typing import Any

import orjson

from .conversation import conversation
from .pattern import TextCondition
from .request import Request
from .scenario import Match

__all__ = [
    "Conditions",
    "Reason",
    "Test",
    "ToolResultCondition",
    "body_field",
    "canonical",
    "clip",
    "conditions",
    "predicate",
]


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
    body: tuple[tuple[str, bytes], ...] = ()  # (field, its value as canonical JSON), by field name

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
            tuple(sorted((key, canonical(value)) for key, value in m.body.items())) if m.body else (),
        )


@dataclass(frozen=True, slots=True)
class ToolResultCondition:
    name: str | None  # a glob on the tool's name
    text: TextCondition | None


Test = Callable[[Request], bool]
Reason = Callable[[Request], str]


def conditions(m: Conditions) -> tuple[tuple[Test, ...], tuple[Reason, ...]]:
    """The conditions of `m`: a test for each, and what to say when it fails."""
    out: list[tuple[Test, Reason]] = []
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
    for key, value in m.body:
        out.append(_body_condition(key, value))
    return tuple(test for test, _ in out), tuple(why for _, why in out)


# The tests of the conditions that rules often share (the APIs, the model, stream) are made once per
# value, not once per rule: a recording of thousands of rules names a handful of models.
@lru_cache(maxsize=1024)
def _endpoint_test(endpoints: tuple[str, ...]) -> Test:
    wanted = frozenset(endpoints)
    return lambda request: request.endpoint in wanted


@lru_cache(maxsize=1024)
def _model_test(glob: str) -> Test:
    if not any(ch in glob for ch in "*?["):
        return lambda request: request.model == glob
    return lambda request: fnmatchcase(request.model, glob)


@lru_cache(maxsize=2)
def _stream_test(stream: bool) -> Test:
    return lambda request: request.stream == stream


_USER_TEXT = attrgetter("user_text")
_SYSTEM_TEXT = attrgetter("system_text")


def _text_condition(role: str, cond: TextCondition, text_of: Callable[[Request], str | None]) -> tuple[Test, Reason]:
    test = cond.test

    def why(request: Request) -> str:
        text = text_of(request)
        if text is None:
            return f"{role}: no {role} message"
        return f"{role}: {clip(text)!r} {cond.refusal()}{_closeness(text, cond)}"

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
        return f" (close: {clip(best)!r} first differs at character {at + 1})"
    return ""


def _header_condition(name: str, wanted: str) -> tuple[Test, Reason]:
    key = name.lower()

    def why(request: Request) -> str:
        got = request.headers.get(key)
        return f"header {name}: wanted {wanted!r}, got {'missing' if got is None else repr(got)}"

    return (lambda request: request.headers.get(key) == wanted), why


def _glob_test(glob: str) -> Callable[[str | None], bool]:
    if not any(ch in glob for ch in "*?["):
        return lambda name: name == glob
    return lambda name: name is not None and fnmatchcase(name, glob)


def _tool_condition(glob: str) -> tuple[Test, Reason]:
    test = _glob_test(glob)

    def why(request: Request) -> str:
        offered = ", ".join(request.tools) if request.tools else "none"
        return f"tool: no offered tool is named {glob!r} (offered: {offered})"

    return (lambda request: any(test(name) for name in request.tools)), why


def _tool_result_condition(cond: ToolResultCondition) -> tuple[Test, Reason]:
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
                said.append(f"{clip(result.text)!r} {text.refusal()}")
        return "tool_result: " + "; ".join(said)

    return holds, why


def _a(role: str) -> str:
    return "an assistant" if role == "assistant" else f"a {role}"


def _turn_condition(least: int, most: int | None) -> tuple[Test, Reason]:
    wanted = str(least) if most == least else f"at least {least}" if most is None else f"{least} to {most}"

    def holds(request: Request) -> bool:
        turns = conversation(request).turns
        return least <= turns and (most is None or turns <= most)

    def why(request: Request) -> str:
        turns = conversation(request).turns
        return f"turn: wanted {wanted} model turn(s) before this request, the conversation has {turns}"

    return holds, why


def _last_role_condition(role: str) -> tuple[Test, Reason]:
    def why(request: Request) -> str:
        return f"last_role: wanted {role}, the last message is {conversation(request).last_role or 'missing'}"

    return (lambda request: conversation(request).last_role == role), why


def canonical(value: Any) -> bytes:
    """A JSON value's canonical text: keys sorted, no spaces. Two values are equal as JSON when their
    canonical texts are (1 and 1.0, or true and 1, are not)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


_ABSENT = b""  # no JSON text is empty: what a field the body lacks is


def body_field(request: Request, key: str) -> bytes:
    """A field of the request's body as canonical JSON (kept on the request: each rule of a recording
    asks for the same few fields)."""
    known = request.canonical
    if known is None:
        known = request.canonical = {}
    text = known.get(key)
    if text is None:
        body = request.body if request.sent_body is None else request.sent_body
        text = known[key] = canonical(body[key]) if key in body else _ABSENT
    return text


def _body_condition(key: str, wanted: bytes) -> tuple[Test, Reason]:
    def why(request: Request) -> str:
        body = request.body if request.sent_body is None else request.sent_body
        if key not in body:
            return f"body.{key}: the request has no {key!r}"
        return f"body.{key}: {_difference(orjson.loads(wanted), body[key], key)}"

    return (lambda request: body_field(request, key) == wanted), why


def _difference(wanted: Any, got: Any, at: str) -> str:
    """Where two JSON values first differ, and how."""
    if isinstance(wanted, dict) and isinstance(got, dict):
        for key in wanted.keys() | got.keys():
            if key not in got:
                return f"{at}.{key} is missing"
            if key not in wanted:
                return f"{at}.{key} is not in the rule"
            if canonical(wanted[key]) != canonical(got[key]):
                return _difference(wanted[key], got[key], f"{at}.{key}")
    if isinstance(wanted, list) and isinstance(got, list):
        for n, (a, b) in enumerate(zip(wanted, got, strict=False)):
            if canonical(a) != canonical(b):
                return _difference(a, b, f"{at}[{n}]")
        if len(wanted) != len(got):
            return f"{at} has {len(got)} items, the rule {len(wanted)}"
    return f"{at} is {clip(repr(got))}, the rule says {clip(repr(wanted))}"


def predicate(when: Callable[[Request], Any]) -> Test:
    from .callbacks import call

    return lambda request: bool(call(when, request))


def clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
