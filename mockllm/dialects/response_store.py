"""The responses an engine produced, kept for `previous_response_id` chains and GET /v1/responses/{id}."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import orjson

__all__ = ["ResponseStore"]

_INDENT = orjson.OPT_INDENT_2


class ResponseStore:
    """The responses an engine produced, newest last, at most `limit` of them, each with the
    conversation it answered (so that a chain's history is that, then the response's output).

    A response is kept as the body it was sent as (bytes) when there is one, else as the object
    a stream ended on: keeping bytes costs no copy, and they are parsed only when a chain or a
    GET asks for them.
    """

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._kept: OrderedDict[str, tuple[bytes | dict[str, Any], tuple[dict[str, Any], ...]]] = OrderedDict()

    def put(self, response_id: str, response: bytes | dict[str, Any], answered: tuple[dict[str, Any], ...]) -> None:
        kept = self._kept
        kept[response_id] = (response, answered)
        if len(kept) > self.limit:
            kept.popitem(last=False)

    def get(self, response_id: str) -> dict[str, Any] | None:
        kept = self._kept.get(response_id)
        if kept is None:
            return None
        return orjson.loads(kept[0]) if isinstance(kept[0], bytes) else kept[0]

    def body(self, response_id: str) -> bytes | None:
        """The response as GET /v1/responses/{id} sends it (pretty JSON), or None."""
        kept = self._kept.get(response_id)
        if kept is None:
            return None
        return kept[0] if isinstance(kept[0], bytes) else orjson.dumps(kept[0], option=_INDENT)

    def history(self, response_id: str) -> tuple[dict[str, Any], ...] | None:
        """The conversation up to and with that response (its output as input items), or None."""
        kept = self._kept.get(response_id)
        if kept is None:
            return None
        response = self.get(response_id)
        assert response is not None
        said = tuple(
            {"role": "assistant", "content": item["content"]} if item["type"] == "message" else item
            for item in response["output"]
        )
        return (*kept[1], *said)
