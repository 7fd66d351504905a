"""The Responses API's response object: its ids, its keys in real traffic's order with the
request's own values echoed, its output items (the message with its text or refusal part, the
function calls), its usage; and the body of a plain text reply, compiled once (`body_template`).

The stream (mockllm/dialects/responses.py) sends the same objects, piece by piece.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from .base import Call
from .openai import logprob_entries

if TYPE_CHECKING:
    from ..derive import Derived
    from ..script import Script

__all__ = [
    "BodyTemplate",
    "body_template",
    "function_call_item",
    "has_message",
    "keep",
    "message_item",
    "message_item_id",
    "output_items",
    "refusal_part",
    "response_ids",
    "response_object",
    "status_of",
    "text_logprobs",
    "text_part",
    "usage_object",
]

_INDENT = orjson.OPT_INDENT_2
# finish -> (status, incomplete_details.reason); shared/dialects.md section 7
_STATUS = {"length": ("incomplete", "max_output_tokens"), "content_filter": ("incomplete", "content_filter")}


def response_ids(call: Call) -> tuple[str, str, list[str]]:
    """The response's id, its message item's, and one per function call: 48 hex digits each, or the
    reply's own (a recording's: the client sends them back, as previous_response_id or input items)."""
    derived, script = call.derived, call.script
    response_id, message_id = top_ids(script, derived)
    given = script.tools
    return (
        response_id,
        message_id,
        [
            (given[i].item_id if i < len(given) else None) or "fc_" + derived.hex(f"function-call-{i}", 24)
            for i in range(len(call.tools))
        ],
    )


def top_ids(script: Script, derived: Derived) -> tuple[str, str]:
    """The response's id and its message item's: the reply's own, else derived."""
    response_hex = derived.core[:24].hex()  # the digest every answer makes already
    return (
        script.answer_id or "resp_" + response_hex,
        script.message_id or message_item_id(derived, response_hex),
    )


def message_item_id(derived: Derived, response_hex: str) -> str:
    """`msg_` + 48 hex digits: 16 of the call's digest that no other id uses, then the response id's
    last 32, as real item ids share their response's tail (shared/dialects.md section 1, "IDs")."""
    return "msg_" + derived.core[53:61].hex() + response_hex[16:]


# The response object's keys in the order real traffic has them (shared/dialects.md section 1),
# with the values it has when the request sets none; a request's own values are echoed. Copied per
# answer (a C-level copy keeps the order); the nested defaults are shared, and never changed.
_RESPONSE: dict[str, Any] = {
    "id": None,
    "object": "response",
    "created_at": None,
    "status": None,
    "background": False,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "model": None,
    "output": None,
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "prompt_cache_key": None,
    "reasoning": {"effort": None, "summary": None},
    "safety_identifier": None,
    "service_tier": "default",
    "store": True,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}, "verbosity": "medium"},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": 0,
    "top_p": 1.0,
    "truncation": "disabled",
    "usage": None,
    "user": None,
    "metadata": {},
}
_MADE = {"id", "object", "created_at", "status", "error", "incomplete_details", "model", "output", "usage"}
_ECHOED = frozenset(_RESPONSE) - _MADE - {"reasoning", "service_tier", "text"}  # these three: below


def response_object(call: Call, response_id: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    """The response object: the defaults copied (in order), then this call's values and the request's own."""
    response = _RESPONSE.copy()
    response["id"] = response_id
    response["created_at"] = call.derived.created
    response["status"] = status
    if status == "incomplete":
        response["incomplete_details"] = {"reason": _STATUS[call.finish_reason][1]}
    response["model"] = call.model
    response["output"] = output
    response["usage"] = usage
    body = call.request.body
    if len(body) > 2:  # more than model and input: echo what the request set
        for key in _ECHOED.intersection(body):
            response[key] = body[key]
        if isinstance(body.get("tools"), list):
            response["tools"] = [_tool(tool) for tool in body["tools"]]
        if body.get("reasoning"):
            response["reasoning"] = body["reasoning"]
        if body.get("service_tier", "auto") != "auto":
            response["service_tier"] = body["service_tier"]
        if isinstance(body.get("text"), dict):
            response["text"] = {**_RESPONSE["text"], **body["text"]}
    return response


def _tool(tool: Any) -> Any:
    """A function tool as the response echoes it: every field, `strict` true unless turned off."""
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        return tool
    return {
        "type": "function",
        "description": tool.get("description"),
        "name": tool.get("name"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict", True),
    }


def usage_object(call: Call) -> dict[str, Any]:
    return {
        "input_tokens": call.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": call.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": call.prompt_tokens + call.completion_tokens,
    }


def status_of(call: Call) -> str:
    return _STATUS[call.finish_reason][0] if call.finish_reason in _STATUS else "completed"


def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": logprobs or [], "text": text}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def text_logprobs(call: Call) -> list[dict[str, Any]] | None:
    """The text's logprobs, when the request asked for them (`include`), else None."""
    top = call.request.logprobs
    return None if top is None else logprob_entries(call.pieces, call.derived.seed, top)


def message_item(message_id: str, status: str, content: list[Any]) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def function_call_item(item_id: str, status: str, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def has_message(call: Call) -> bool:
    return call.content is not None or not call.tools


def output_items(call: Call, message_id: str, call_ids: list[str], status: str) -> list[dict[str, Any]]:
    out = []
    if has_message(call):
        part = (
            refusal_part(call.content or "")
            if call.script.refusal
            else text_part(call.content or "", text_logprobs(call))
        )
        out.append(message_item(message_id, status, [part]))
    for item_id, tool in zip(call_ids, call.tools, strict=True):
        out.append(function_call_item(item_id, "completed", tool.id, tool.name, tool.arguments))
    return out


def keep(call: Call, response: dict[str, Any], body: bytes | None = None) -> None:
    """Remember the answer (unless `store: false`), with the conversation it answered."""
    if response["store"] is not False:
        call.state.put(response["id"], response if body is None else body, call.request.history)


class BodyTemplate(NamedTuple):
    """A text reply's whole body made at load, cut where each answer fills in its own values."""

    parts: tuple[str, ...]  # 7 pieces around: id, created_at, model, message id, input and total tokens
    completion_tokens: int


_SLOTS = tuple(chr(0xE000 + i) for i in range(6))  # private-use characters: no JSON text has them


def body_template(script: Script) -> BodyTemplate | None:
    """The body of a reply with fixed text and nothing else, for a request that sets only `model`
    and `input` (the defaults are echoed): None for any other reply."""
    if script.generate is not None or script.tools or script.transcript is not None or script.error is not None:
        return None
    if script.refusal:
        return None  # the general path says it
    if script.completion_tokens is None or script.content is None:
        return None
    status = _STATUS[script.finish_reason][0] if script.finish_reason in _STATUS else "completed"
    response = _RESPONSE.copy()
    response["id"], response["created_at"], response["model"] = _SLOTS[0], _SLOTS[1], _SLOTS[2]
    response["status"] = status
    if status == "incomplete":
        response["incomplete_details"] = {"reason": _STATUS[script.finish_reason][1]}
    response["output"] = [message_item(_SLOTS[3], status, [text_part(script.content)])]
    response["usage"] = {
        "input_tokens": _SLOTS[4],
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": script.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": _SLOTS[5],
    }
    text = orjson.dumps(response, option=_INDENT).decode()
    parts = []
    for slot in _SLOTS:
        before, text = text.split(f'"{slot}"')
        parts.append(before)
    # Every part but the one holding the text is the same for most replies: one copy of each for all
    # (a recording's thousands of replies would otherwise keep thousands of copies of the defaults).
    return BodyTemplate(tuple(sys.intern(part) for part in (*parts, text)), script.completion_tokens)
