"""What a request says of the conversation it continues, in every API: the facts agent-loop rules
match on (`tool_result`, `turn`, `last_role`), templates quote, and sequences count by.

An agent loop sends the same question again and again, each time with one more turn: the model's
tool call, the tool's result. What tells the steps apart is the end of the conversation (is it a
tool's result, and which tool's?) and its length (how many times has the model spoken?). Each API
writes these its own way, so each has a reader here; a reader takes a parsed request and never
raises (the dialect has checked the body's shape, and an odd one just tells less).

A conversation is told apart from another by `key`: the `x-mockllm-conversation` header when the
test sends one, else its system text and first user message (for the Responses API, through its
`previous_response_id` chain, which the request's history holds). Two runs of the same loop with
the same question are then one conversation, unless the header says otherwise.

The facts are read once per request, and only when a rule, a template or a sequence asks for them
(`conversation(request)`): most requests of most suites never do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .dialects.openai import dumps
from .request import Request, message_text

__all__ = ["CONVERSATION_HEADER", "Conversation", "ToolResult", "conversation"]

CONVERSATION_HEADER = "x-mockllm-conversation"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool's result the conversation ends with: the tool's name (None: the API did not say, and no
    earlier call of the conversation has its id) and its text."""

    name: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Conversation:
    key: str  # which conversation this request continues (see the module's docstring)
    turns: int  # the model's turns so far (consecutive model items of one response count once)
    last_role: str | None  # of the last message: user | assistant | tool | system (None: no messages)
    tool_results: tuple[ToolResult, ...]  # the results that end the conversation (parallel calls: several)


def conversation(request: Request) -> Conversation:
    """The conversation `request` continues, read once and kept on the request."""
    known = request.talk
    if known is None:
        reader = _READERS.get(request.endpoint, _plain)
        try:
            turns, last_role, results, first_user = reader(request)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError):  # a shape the dialect let through
            turns, last_role, results, first_user = 0, None, (), request.user_text
        known = request.talk = Conversation(_key(request, first_user), turns, last_role, results)
    return known


def _key(request: Request, first_user: str | None) -> str:
    given = request.headers.get(CONVERSATION_HEADER)
    if given is not None:
        return "header:" + given
    digest = hashlib.blake2b(digest_size=16)
    for text in (request.system_text, first_user):
        data = (text or "").encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little") + data)  # length-prefixed: ("a", "bc") is not ("ab", "c")
    return digest.hexdigest()


_Facts = tuple[int, "str | None", tuple[ToolResult, ...], "str | None"]  # turns, last role, results, first user


def _plain(request: Request) -> _Facts:
    """Legacy completions and embeddings: a prompt, no turns."""
    return 0, "user", (), request.user_text


def _text(value: Any) -> str:
    """A tool result's text: a string, the text parts of a list, else the value as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, Mapping) for p in value):
        return "".join(str(p["text"]) for p in value if isinstance(p.get("text"), str))
    return dumps(value)


def _chat(request: Request) -> _Facts:
    messages = [m for m in request.body.get("messages") or () if isinstance(m, Mapping)]
    names: dict[str, str] = {}  # tool call id -> the tool's name, from the assistant's calls
    turns, first_user = 0, None
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            turns += 1
            for call in message.get("tool_calls") or ():
                if isinstance(call, Mapping) and isinstance(call.get("id"), str):
                    name = (call.get("function") or {}).get("name")
                    if isinstance(name, str):
                        names[call["id"]] = name
        elif role == "user" and first_user is None:
            first_user = message_text(message)
    results: list[ToolResult] = []
    for message in reversed(messages):
        role = message.get("role")
        if role == "tool":
            results.append(ToolResult(names.get(str(message.get("tool_call_id"))), _text(message.get("content"))))
        elif role == "function":  # the deprecated function-calling form names its function
            name = message.get("name")
            results.append(ToolResult(name if isinstance(name, str) else None, _text(message.get("content"))))
        else:
            break
    results.reverse()
    last = messages[-1].get("role") if messages else None
    return turns, _ROLE.get(last, last) if isinstance(last, str) else None, tuple(results), first_user


_ROLE = {"tool": "tool", "function": "tool", "developer": "system", "model": "assistant"}


def _responses_role(item: Mapping[str, Any]) -> str | None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        return _ROLE.get(role, role) if isinstance(role, str) else None
    if isinstance(kind, str) and kind.endswith("_output"):  # function_call_output, custom_tool_call_output...
        return "tool"
    return "assistant"  # function_call, reasoning, web_search_call...: what a response outputs


def _responses(request: Request) -> _Facts:
    items = [item for item in request.history if isinstance(item, Mapping)]
    names = {
        item["call_id"]: item["name"]
        for item in items
        if item.get("type") in ("function_call", "custom_tool_call")
        and isinstance(item.get("call_id"), str)
        and isinstance(item.get("name"), str)
    }
    turns, first_user, previous = 0, None, None
    for item in items:
        role = _responses_role(item)
        if role == "assistant" and previous != "assistant":  # a response's output items are one turn
            turns += 1
        elif role == "user" and first_user is None:
            first_user = message_text(item)
        previous = role
    results: list[ToolResult] = []
    for item in reversed(items):
        if _responses_role(item) != "tool":
            break
        results.append(ToolResult(names.get(str(item.get("call_id"))), _text(item.get("output"))))
    results.reverse()
    return turns, _responses_role(items[-1]) if items else None, tuple(results), first_user


def _blocks(content: Any) -> Iterable[Mapping[str, Any]]:
    return (block for block in content if isinstance(block, Mapping)) if isinstance(content, list) else ()


def _anthropic(request: Request) -> _Facts:
    messages = [m for m in request.body.get("messages") or () if isinstance(m, Mapping)]
    names: dict[str, str] = {}
    turns, first_user = 0, None
    for message in messages:
        content = message.get("content")
        if message.get("role") == "assistant":
            turns += 1
            for block in _blocks(content):
                if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    names[block["id"]] = str(block.get("name"))
        elif first_user is None and not any(b.get("type") == "tool_result" for b in _blocks(content)):
            first_user = message_text(message)
    if not messages:
        return 0, None, (), None
    last = messages[-1]
    results = tuple(
        ToolResult(names.get(str(block.get("tool_use_id"))), _text(block.get("content", "")))
        for block in _blocks(last.get("content"))
        if block.get("type") == "tool_result"
    )
    role = "tool" if results else "assistant" if last.get("role") == "assistant" else "user"
    return turns, role, results, first_user


def _gemini_get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = mapping.get(camel)
    return mapping.get(snake) if value is None else value


def _gemini_result(response: Any) -> str:
    """A functionResponse's `response` as text: its one string value when it has just one (the SDKs
    wrap a plain result as `{"result": ...}` or `{"output": ...}`), else compact JSON."""
    if isinstance(response, Mapping) and len(response) == 1:
        (value,) = response.values()
        if isinstance(value, str):
            return value
    return dumps(response)


def _gemini(request: Request) -> _Facts:
    contents = [c for c in request.body.get("contents") or () if isinstance(c, Mapping)]
    turns, first_user = 0, None
    for content in contents:
        parts = [p for p in content.get("parts") or () if isinstance(p, Mapping)]
        if content.get("role") == "model":
            turns += 1
        elif first_user is None and not any(_gemini_get(p, "functionResponse", "function_response") for p in parts):
            first_user = "".join(str(p["text"]) for p in parts if isinstance(p.get("text"), str))
    if not contents:
        return 0, None, (), None
    last = contents[-1]
    responses = [
        _gemini_get(p, "functionResponse", "function_response")
        for p in last.get("parts") or ()
        if isinstance(p, Mapping)
    ]
    results = tuple(
        ToolResult(r.get("name") if isinstance(r.get("name"), str) else None, _gemini_result(r.get("response")))
        for r in responses
        if isinstance(r, Mapping)
    )
    role = "tool" if results else "assistant" if last.get("role") == "model" else "user"
    return turns, role, results, first_user


_READERS: dict[str, Callable[[Request], _Facts]] = {
    "chat": _chat,
    "responses": _responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
}
