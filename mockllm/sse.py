"""Server-sent events framing: events in, network writes (bytes at a deadline) out.

The default is OpenAI's framing (`data: <json>\\n\\n`, after an `event: <name>` line for the APIs
that name their events: Responses, Anthropic). A scenario's `framing` changes
line endings, the `data:` prefix, the last blank line, keep-alive comments, and how
events are cut into or packed together into writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .scenario import Framing

__all__ = ["Event", "Write", "frame", "transcript_events"]

_EOL = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


class Event(NamedTuple):
    """One SSE event due at `at` seconds: a data payload, a verbatim text, or the end."""

    at: float
    text: str
    kind: str = "data"  # data | raw (sent as is) | abort (drop the connection)
    name: str | None = None  # the `event:` line's name, for a data event
    part: str = "head"  # what the fault layer sees (mockllm/dialects/base.py, Stream)


class Write(NamedTuple):
    """Bytes to hand to the network at `at` seconds; `abort` drops the connection instead."""

    at: float
    data: bytes
    abort: bool = False


def transcript_events(transcript: str) -> list[str]:
    """Cut a verbatim SSE transcript into events, each with its own blank line."""
    text = transcript.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n\n"):
        # YAML's `|` keeps one final newline; the capture had a blank line after the last event.
        text = text + ("\n" if text.endswith("\n") else "\n\n")
    parts = text.split("\n\n")
    return [p + "\n\n" for p in parts[:-1] if p.strip("\n")]


def frame(events: Iterable[Event], framing: Framing | None, eol: str = "\n") -> Iterator[Write]:
    """The events as network writes: each API's own way (`eol`: its line ending), or the scenario's
    `framing` (whose line ending, when it sets none, is the API's)."""
    if framing is None:
        for ev in events:
            if ev.kind == "data":
                if ev.name is None:
                    yield Write(ev.at, f"data: {ev.text}{eol}{eol}".encode())
                else:
                    yield Write(ev.at, f"event: {ev.name}{eol}data: {ev.text}{eol}{eol}".encode())
            elif ev.kind == "raw":
                yield Write(ev.at, ev.text.encode())
            else:
                yield Write(ev.at, b"", True)
        return
    if "line_ending" in framing.model_fields_set:
        eol = _EOL[framing.line_ending]
    # Keep-alives go in after coalescing: packed into a group, one would wait for the group's last event.
    writes = _coalesce(_encode(events, framing, eol), framing.coalesce)
    yield from _split(_keepalive(writes, framing, eol), framing.split)


def _encode(events: Iterable[Event], framing: Framing, eol: str) -> Iterator[Write]:
    pending: Write | None = None  # one event of lookahead, to know which is the last
    for ev in events:
        if ev.kind == "abort":
            if pending is not None:
                yield pending
                pending = None
            yield Write(ev.at, b"", True)
            continue
        if ev.kind == "data":
            text = f"{framing.data_prefix}{ev.text}{eol}{eol}"
            if ev.name is not None:
                text = f"event: {ev.name}{eol}{text}"
        else:
            text = ev.text.replace("\n", eol) if eol != "\n" else ev.text
        if pending is not None:
            yield pending
        pending = Write(ev.at, text.encode())
    if pending is not None:
        if not framing.trailing_blank_line:
            cut = len(eol.encode())
            pending = Write(
                pending.at, pending.data[:-cut] if pending.data.endswith(eol.encode() * 2) else pending.data
            )
        yield pending


def _keepalive(writes: Iterator[Write], framing: Framing, eol: str) -> Iterator[Write]:
    if framing.keepalive is None:
        yield from writes
        return
    comment = f": {framing.keepalive.text}{eol}{eol}".encode()
    every = framing.keepalive.every_ms / 1000
    last = 0.0
    yield Write(0.0, comment)  # at once, as proxies that announce "processing" do
    for write in writes:
        while write.at - last > every + 1e-9:  # no comment just before an event due exactly `every` later
            last += every
            yield Write(last, comment)
        last = max(last, write.at)
        yield write


def _coalesce(writes: Iterator[Write], size: int | None) -> Iterator[Write]:
    if not size or size == 1:
        yield from writes
        return
    group: list[Write] = []
    for write in writes:
        if write.abort:
            if group:
                yield Write(group[-1].at, b"".join(w.data for w in group))
                group = []
            yield write
            continue
        group.append(write)
        if len(group) == size:
            yield Write(write.at, b"".join(w.data for w in group))
            group = []
    if group:
        yield Write(group[-1].at, b"".join(w.data for w in group))


def _split(writes: Iterator[Write], size: int | None) -> Iterator[Write]:
    if not size:
        yield from writes
        return
    for write in writes:
        if write.abort or len(write.data) <= size:
            yield write
            continue
        for start in range(0, len(write.data), size):
            yield Write(write.at, write.data[start : start + size])
