"""What an upstream answered, in neutral terms: a `Heard` (for `mockllm record`).

mockllm/answer_reader.py reads each API's answer into one; mockllm/recorded_reply.py makes a reply of
it. Also here: a stream's SSE events with their arrival times, and the checks the readers share.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "Heard",
    "HeardTool",
    "SseEvent",
    "Unreadable",
    "add_text",
    "as_object",
    "count",
    "known_keys",
    "parse_json",
    "sse_events",
]


class Unreadable(Exception):
    """The answer holds something a reply's structured keys cannot say (the message says what)."""


@dataclass(slots=True)
class HeardTool:
    id: str | None
    name: str
    at: float  # when the call's first part arrived
    fragments: list[tuple[float, str]] = field(default_factory=list)  # its arguments as they came
    whole: Any = None  # arguments that came whole, as JSON data (Anthropic's and Gemini's whole bodies)
    item_id: str | None = None  # Responses: the function_call item's id

    @property
    def arguments(self) -> str:
        return "".join(text for _, text in self.fragments)


@dataclass(slots=True)
class Heard:
    """An answer, in the neutral terms of a reply."""

    pieces: list[tuple[float, str]] = field(default_factory=list)  # text deltas (or the whole text, once)
    tools: list[HeardTool] = field(default_factory=list)
    whole: bool = False  # a whole body: the text is `content`, not chunks
    refusal: bool = False  # the text is a refusal (whole bodies only)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish: str | None = None  # stop | length | tool_calls | content_filter
    model: str | None = None
    fingerprint: str | None = None
    answer_id: str | None = None  # the answer's own id (chatcmpl-, resp_, msg_, responseId)
    message_id: str | None = None  # Responses: the output message item's id
    ended: bool = False  # the API's terminator came ([DONE], response.completed, message_stop)
    error_event: str | None = None  # a mid-stream error event's message


@dataclass(frozen=True, slots=True)
class SseEvent:
    at: float  # when its blank line arrived
    name: str | None  # its `event:` line
    data: str | None  # its `data:` lines joined (None: a comment-only event)
    text: str  # as it came, line endings made \n, with its blank line


def sse_events(chunks: Iterable[tuple[float, bytes]]) -> list[SseEvent]:
    """The events of a stream, each with the arrival time of the chunk that completed it."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    events: list[SseEvent] = []
    buffer = ""
    last = 0.0
    for at, data in chunks:
        last = at
        buffer += decoder.decode(data)
        held = buffer.endswith("\r")  # a \r\n may straddle two chunks
        text, buffer = (buffer[:-1], "\r") if held else (buffer, "")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        parts = text.split("\n\n")
        for part in parts[:-1]:
            if part.strip("\n"):
                events.append(_event(at, part))
        buffer = parts[-1] + buffer
    rest = (buffer + decoder.decode(b"", final=True)).replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if rest:  # a last event without its blank line
        events.append(_event(last, rest))
    return events


def _event(at: float, text: str) -> SseEvent:
    name: str | None = None
    data: list[str] = []
    for line in text.strip("\n").split("\n"):
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "event":
            name = value
        elif key == "data":
            data.append(value)
    return SseEvent(at, name, "\n".join(data) if data else None, text.strip("\n") + "\n\n")


def parse_json(text: str | None) -> Any:
    try:
        return orjson.loads(text or "")
    except orjson.JSONDecodeError:
        raise Unreadable("not JSON") from None


def as_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unreadable(f"{what} is not an object")
    return value


def known_keys(keys: Iterable[str], known: set[str], what: str) -> None:
    unknown = set(keys) - known
    if unknown:
        raise Unreadable(f"{what} has {', '.join(sorted(unknown))}")


def count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def add_text(heard: Heard, at: float, text: str) -> None:
    if heard.tools:
        raise Unreadable("text after a tool call")  # a reply sends its text first
    heard.pieces.append((at, text))
