"""Anthropic's message threads (the `message-threads-2026-08-12` beta): the server holds a
conversation, so each turn sends only its new messages.

The anthropic SDK's tool runner threads by default (anthropic 2.15, anthropic/lib/threads/
_thread_state.py): its first request says `thread: {"type": "create"}` with the whole request; each
later one `{"type": "continue", "previous_message_id": <the last reply's id>}` with only the new
messages (a tool result), and neither `system` nor `tools`, which the thread holds
(`CREATE_ONLY_FIELDS`). "The response shape is unchanged" (types/beta/beta_message_thread_param.py).

So the fake keeps, under each threaded reply's id, the conversation up to and with that reply, and
the thread's `system` and `tools`; a `continue` is answered as the whole request it stands for, and
rules see the whole conversation (its tool results, its turns, its offered tools). A `continue` from
an id it does not hold gets `thread_not_found` in `error.details.error_code`, on which the SDK sends
the whole history again under a new thread (`_replay_reason`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..errors import RequestError

__all__ = ["CREATE_ONLY", "ThreadStore", "resolve"]

CREATE_ONLY = ("system", "tools")  # what a thread holds and a `continue` may not send again


class ThreadStore:
    """The threaded conversations of one engine, by the id of their last reply, the oldest forgotten first."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._kept: OrderedDict[str, tuple[tuple[Any, ...], dict[str, Any]]] = OrderedDict()

    def put(self, message_id: str, messages: tuple[Any, ...], held: dict[str, Any]) -> None:
        """Keep the conversation `messages` (the reply's included) and the thread's `held` fields."""
        self._kept[message_id] = (messages, held)
        if len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def get(self, message_id: str) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        return self._kept.get(message_id)


def resolve(body: dict[str, Any], store: ThreadStore) -> dict[str, Any]:
    """The whole request a threaded one stands for (`body` itself for `create`), or the RequestError
    Anthropic answers."""
    thread = body["thread"]
    if not isinstance(thread, Mapping) or thread.get("type") not in ("create", "continue"):
        raise RequestError(
            'thread: Input should be {"type": "create"} or {"type": "continue", "previous_message_id": ...}',
            type="invalid_request_error",
        )
    if thread["type"] == "create":
        return body
    previous = thread.get("previous_message_id")
    if not isinstance(previous, str):
        raise RequestError("thread.previous_message_id: Field required", type="invalid_request_error")
    repeated = [field for field in CREATE_ONLY if field in body]
    if repeated:
        raise RequestError(
            f"{repeated[0]}: a thread holds it from the request that created it; a `continue` may not send it",
            type="invalid_request_error",
        )
    kept = store.get(previous)
    if kept is None:
        raise RequestError(
            f"thread: no thread holds the message {previous!r} (mockllm keeps the last {store.limit} threaded "
            "replies of this server, until it restarts or its engine resets)",
            status=404,
            type="not_found_error",
            code="thread_not_found",
        )
    messages, held = kept
    given = body.get("messages")
    return {**held, **body, "messages": [*messages, *(given if isinstance(given, list) else ())]}
