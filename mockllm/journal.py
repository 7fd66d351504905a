"""The journal: every request the fake received, what answered it, and when bytes left."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = ["REDACTED_HEADERS", "Entry", "Journal"]

# Headers that carry credentials: the JSON of an entry (the control API, the inspector) shows them so.
REDACTED_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"})
_TEXT_LIMIT = 2000  # characters of each write shown in an entry's JSON


@dataclass(slots=True)
class Entry:
    """One request and its answer, as the fake saw them."""

    index: int
    endpoint: str  # the API: "chat", "responses", ...
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    status: int = 0
    rule: str | None = None  # the name of the rule that answered; None when none matched
    call_index: int | None = None  # which call of that rule this was
    stream: bool = False
    user_text: str | None = None  # the last user input, as the rules saw it (None: none, or not parsed)
    error: str | None = None  # why the request was refused, or what no rule matched
    sent: list[float] = field(default_factory=list)  # seconds from arrival, per network write
    aborted: bool = False  # the connection was dropped on purpose (a fault)
    raised: bool = False  # a test's Python match or reply raised: `error` holds its traceback (status 500)
    method: str = "POST"  # every API's answering route is a POST
    arrived: float = 0.0  # unix seconds (time.time()) when the journal opened it
    origin: str | None = None  # the answering rule's file:line (None: none answered, or not told)
    # What was handed to the network: (scheduled seconds from arrival, bytes, False) per write (the answer's
    # own mockllm.sse.Write); a whole answer's body is one write, at its delay. `sent` has the actual
    # times of a stream's writes, in the same order.
    writes: list[tuple[float, bytes, bool]] = field(default_factory=list)
    # Backoff verdicts (mockllm/backoff.py): the seconds this answer asked the client to wait (retry-after), and,
    # for a request that retries a refused one, {"after": its index, "asked", "waited" (s), "honoured": bool}.
    retry_after: float | None = None
    backoff: dict[str, Any] | None = None
    ended: float | None = None  # seconds from arrival when the answer ended (its last byte, or the cut); None: not yet

    @property
    def json(self) -> Any:
        """The request body, parsed (None when it was not JSON)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    @property
    def matched(self) -> bool:
        return self.rule is not None

    def __repr__(self) -> str:
        return f"<Entry #{self.index} {self.endpoint} status={self.status} rule={self.rule!r}>"

    def to_json(self, origin: str | None = None) -> dict[str, Any]:
        """The entry as the control API shows it (mockllm/control.py), credential headers redacted;
        `origin`: the rule's file:line, when the entry does not hold it."""
        sent = self.sent
        writes = [
            {
                "at": at,
                "sent": sent[i] if i < len(sent) else None,  # a whole answer's one write: not timed
                "size": len(data),
                "text": data[: _TEXT_LIMIT * 4].decode("utf-8", "replace")[:_TEXT_LIMIT],
            }
            for i, (at, data, _) in enumerate(self.writes)
        ]
        headers = {k: "[redacted]" if k in REDACTED_HEADERS else v for k, v in self.headers.items()}
        return {
            "index": self.index,
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "rule": self.rule,
            "origin": self.origin or (origin if self.rule is not None else None),
            "call_index": self.call_index,
            "stream": self.stream,
            "user_text": self.user_text,
            "error": self.error,
            "arrived": self.arrived,
            "request": self.json,
            "headers": headers,
            "writes": writes,
            "aborted": self.aborted,
            "raised": self.raised,
            # The backoff verdicts' (mockllm/backoff.py): what this answer asked to wait, and a retry's verdict.
            "retry_after": self.retry_after,
            "backoff": self.backoff,
            "ended": self.ended,
        }


class Journal:
    """A thread-safe list of entries, in arrival order.

    `limit` keeps only the newest entries (a long-running `mockllm serve` must not grow
    without bound); tests keep them all.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def keeps(self) -> bool:
        """Whether it keeps any entry (a limit of 0 keeps none: the engine then makes none)."""
        return self._entries.maxlen != 0

    def open(self, endpoint: str, path: str, headers: Mapping[str, str], body: bytes) -> Entry:
        with self._lock:
            entry = Entry(self._count, endpoint, path, headers, body, arrived=time.time())
            self._count += 1
            self._entries.append(entry)
            return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._count = 0

    @property
    def next_index(self) -> int:
        """The index the next request will get (a poller asks for `since=next_index` next time)."""
        return self._count

    def select(
        self,
        *,
        rule: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """The entries that pass every filter given, oldest first; `since`: index `since` and later;
        `limit`: the newest `limit` of those."""
        with self._lock:
            entries = list(self._entries)
        if since is not None:
            entries = [e for e in entries if e.index >= since]
        if rule is not None:
            entries = [e for e in entries if e.rule == rule]
        if endpoint is not None:
            entries = [e for e in entries if e.endpoint == endpoint]
        if status is not None:
            entries = [e for e in entries if e.status == status]
        if limit is not None:
            entries = entries[len(entries) - limit :] if limit > 0 else []
        return entries

    @property
    def last(self) -> Entry:
        if not self._entries:
            raise LookupError("the journal is empty: no request reached mockllm")
        return self._entries[-1]

    @property
    def unmatched(self) -> list[Entry]:
        return [e for e in self._entries if e.error is not None and e.status == 418]

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> list[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | list[Entry]:
        if isinstance(index, slice):
            return list(self._entries)[index]
        return self._entries[index]

    def __bool__(self) -> bool:
        return bool(self._entries)
