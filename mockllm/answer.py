"""What the core hands to an adapter: a status, headers, and a body or timed writes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .journal import Entry
    from .sse import Write

__all__ = ["Answer", "Header"]

Header = tuple[bytes, bytes]  # a name (lower case) and a value, as they go on the wire (latin-1)


@dataclass(slots=True)
class Answer:
    """What to send: after `delay` seconds a whole `body`, or `writes` each at its time."""

    status: int
    headers: list[Header]  # no content-length (the adapters add it to a whole body)
    body: bytes = b""
    delay: float = 0.0
    writes: Iterator[Write] | None = None
    abort: bool = False  # drop the connection at `delay` instead of answering
    entry: Entry | None = field(default=None, repr=False)
