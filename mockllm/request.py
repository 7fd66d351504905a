"""A chat request, parsed and checked as OpenAI checks it (same messages, same params)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import RequestError
from .tokens import count_tokens

__all__ = ["ChatRequest", "parse_chat"]

_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_KNOWN_ROLES = frozenset(_ROLES)


@dataclass(slots=True)  # not frozen: a frozen init costs a setattr call per field, on every request
class ChatRequest:
    """What the router and the reply builder need to know of a chat request (read-only by convention)."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    include_obfuscation: bool
    headers: Mapping[str, str]  # lower-case names
    user_text: str | None  # the last user message
    system_text: str | None  # the first system or developer message
    prompt_tokens: int  # counted as OpenAI's cookbook does: 3 per message, 3 to prime the reply


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: a string, or the text parts of a list of parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object" if isinstance(value, dict) else "null" if value is None else type(value).__name__
    )


def _invalid_type(param: str, expected: str, value: Any) -> RequestError:
    return RequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _bad_role(i: int, message: dict[str, Any]) -> RequestError:
    if "role" not in message:
        return RequestError(
            f"Missing required parameter: 'messages[{i}].role'.",
            param=f"messages[{i}].role",
            code="missing_required_parameter",
        )
    return RequestError(
        f"Invalid value: {json.dumps(message['role'])}. Supported values are: {', '.join(repr(r) for r in _ROLES)}.",
        param=f"messages[{i}].role",
        code="invalid_value",
    )


def _bad_model_or_messages(body: dict[str, Any], model: Any) -> RequestError:
    if model is None:
        return RequestError("you must provide a model parameter", param="model", code="missing_required_parameter")
    if not isinstance(model, str):
        return _invalid_type("model", "a string", model)
    if "messages" not in body:
        return RequestError(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        return _invalid_type("messages", "an array", messages)
    return RequestError(
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        param="messages",
        code="empty_array",
    )


def parse_chat(raw: bytes, headers: Mapping[str, str], default_model: str | None = None) -> ChatRequest:
    """Parse and check a Chat Completions body; raise RequestError as OpenAI would answer."""
    try:
        # orjson: strict UTF-8, no lone surrogates (they could not be echoed back), a depth limit,
        # and several times faster than json.loads on the path every request takes.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(_JSON_HINT) from None
    if not isinstance(body, dict):
        raise RequestError(
            f"Invalid type for request body: expected an object, but got {_type_name(body)} instead.",
            code="invalid_type",
        )
    model = body.get("model", default_model)
    messages = body.get("messages")
    if type(model) is not str or type(messages) is not list or not messages:
        raise _bad_model_or_messages(body, model)
    user_text: str | None = None
    system_text: str | None = None
    prompt_tokens = 3
    for message in messages:
        if type(message) is not dict:
            raise _invalid_type(f"messages[{messages.index(message)}]", "an object", message)
        role = message.get("role")
        content = message.get("content")
        if type(role) is not str or role not in _KNOWN_ROLES:  # a missing role is None
            raise _bad_role(messages.index(message), message)
        if type(content) is str:
            text = content
        elif content is None or isinstance(content, list):
            text = message_text(message)
        else:
            i = messages.index(message)
            raise _invalid_type(f"messages[{i}].content", "one of a string or array of objects", content)
        if role == "user":
            user_text = text
        elif system_text is None and (role == "system" or role == "developer"):
            system_text = text
        prompt_tokens += 3 + count_tokens(text)
        if len(message) > 2 or "content" not in message:  # keys beside role and content: a name, tool calls
            prompt_tokens += _more_tokens(message)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise _invalid_type("stream_options", "an object", options)
        if not stream:
            raise RequestError(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
            )
        return ChatRequest(
            body,
            model,
            messages,
            stream,
            options.get("include_usage") is True,
            options.get("include_obfuscation", True) is not False,
            headers,
            user_text,
            system_text,
            prompt_tokens,
        )
    return ChatRequest(body, model, messages, stream, False, True, headers, user_text, system_text, prompt_tokens)


def _more_tokens(message: dict[str, Any]) -> int:
    """The tokens of a message's name and tool calls (the cookbook's count)."""
    total = 0
    if "name" in message and isinstance(message["name"], str):
        total += 1 + count_tokens(message["name"])
    calls = message.get("tool_calls")
    for call in calls if type(calls) is list else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            total += count_tokens(str(function.get("name", ""))) + count_tokens(str(function.get("arguments", "")))
    return total
