"""The journal: every request the fake received, what answered it, and when bytes left."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = ["Entry", "Journal"]


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
            entry = Entry(self._count, endpoint, path, headers, body)
            self._count += 1
            self._entries.append(entry)
            return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._count = 0

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
