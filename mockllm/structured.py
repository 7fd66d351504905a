"""Structured output: what a request asks for (`asked`), and seeded JSON valid against a schema
(`instance`, `tool_arguments`).

`asked` reads each API's request body: a JSON answer with a schema (chat `response_format`,
Responses `text.format`, Anthropic `output_config.format`, Gemini `responseMimeType` with
`responseSchema` / `responseJsonSchema`), or a forced call (`tool_choice` "required" / a named
function, Anthropic `any` / `tool`, Gemini `mode: ANY`). A forced call wins over a JSON answer, as
the tool call is what the model must send first.

The JSON itself is made by mockllm/fakejson.py (why no library from PyPI does it, and its
bounds, are said there).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .conversation import conversation
from .dialects.openai import dumps
from .fakejson import instance
from .request import Request

__all__ = [
    "Asked",
    "agent_turn",
    "asked",
    "instance",
    "json_text",
    "offered_schemas",
    "schema_in_text",
    "tool_arguments",
]

_ANY_OBJECT = {"type": "object", "additionalProperties": {"type": "string"}}


@dataclass(frozen=True, slots=True)
class Asked:
    """What structured output a request asks for. kind "json": a JSON text answer valid against
    `schema` (None: any JSON object, as `json_object` asks), `name` the schema's name if it has one;
    kind "tool": a call to the tool `name` with arguments valid against `schema` (None: the tool
    declares no parameters). `strict`: the request marked the schema strict."""

    kind: Literal["json", "tool"]
    schema: Mapping[str, Any] | None = field(default=None, hash=False)
    name: str | None = None
    strict: bool = False


def json_text(schema: Mapping[str, Any] | None, seed: int) -> str:
    """Compact JSON text for a JSON answer; when `schema` is None (`json_object`), an object of one or
    two words mapped to sentences."""
    return dumps(instance(schema if schema is not None else _ANY_OBJECT, seed))


def tool_arguments(schema: Mapping[str, Any] | None, seed: int) -> str:
    """Compact JSON text of arguments valid for a tool's parameter schema (`{}` when none)."""
    if not isinstance(schema, Mapping) or not schema:
        return "{}"
    value = instance(schema, seed)
    return dumps(value) if isinstance(value, dict) else "{}"


def schema_in_text(text: str) -> Mapping[str, Any] | None:
    """The first JSON object in `text` that reads as a JSON schema, for the modes that ask for JSON
    in the prompt only (`json_object`, or no format at all): instructor's JSON / MD_JSON modes and
    pydantic-ai's PromptedOutput put the model's schema in the system prompt. Reads the first
    100,000 characters and tries at most 16 braces."""
    decoder, start = json.JSONDecoder(), 0
    text = text[:100_000]
    for _ in range(16):
        start = text.find("{", start)
        if start < 0:
            return None
        try:
            found, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            start += 1
            continue
        if isinstance(found, dict) and any(key in found for key in ("properties", "$defs", "anyOf", "items")):
            return found
        start += 1
    return None


# -- reading the request ------------------------------------------------------------------------


def asked(endpoint: str, body: Mapping[str, Any]) -> Asked | None:
    """The structured output `body` (a parsed request of the dialect `endpoint`) asks for, or None
    when it asks for none or its shape is not one the API takes. Never raises."""
    reader = _READERS.get(endpoint)
    if reader is None or not isinstance(body, Mapping):
        return None
    try:
        return reader(body)
    except (TypeError, AttributeError, KeyError, ValueError):  # shapes a dialect let through
        return None


def _pick(tools: list[tuple[str, Any, bool]], name: Any) -> Asked | None:
    """The Asked for the offered tool `name` (the first one when name is None)."""
    for tool, schema, strict in tools:
        if name is None or tool == name:
            return Asked("tool", schema if isinstance(schema, Mapping) else None, tool, strict)
    return None


def _allowed(choice: Mapping[str, Any], tools: list[tuple[str, Any, bool]], nested: bool) -> Asked | None:
    """`{"type": "allowed_tools", ...}` in "required" mode: the first listed tool that is offered."""
    spec = choice.get("allowed_tools") if nested else choice
    if not isinstance(spec, Mapping) or spec.get("mode") != "required":
        return None
    for entry in spec.get("tools") or ():
        name = (entry.get("function") or {}).get("name") if nested else entry.get("name")
        if (found := _pick(tools, name)) is not None and name is not None:
            return found
    return None


def _json_format(fmt: Any, nested: bool) -> Asked | None:
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_object":
        return Asked("json")
    if fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema") if nested else fmt
    if not isinstance(spec, Mapping):
        return None
    schema, name = spec.get("schema"), spec.get("name")
    if schema is not None and not isinstance(schema, Mapping):
        return None
    return Asked("json", schema, name if isinstance(name, str) else None, spec.get("strict") is True)


def _openai_tools(body: Mapping[str, Any], nested: bool) -> list[tuple[str, Any, bool]]:
    tools: list[tuple[str, Any, bool]] = []
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping) and tool.get("type", "function") == "function":
            spec = tool.get("function") if nested else tool
            if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
                tools.append((spec["name"], spec.get("parameters"), spec.get("strict") is True))
    return tools


def _openai(body: Mapping[str, Any], nested: bool) -> Asked | None:
    """Chat (`nested`: tools hold a `function`, the format `json_schema`) and Responses."""
    tools = _openai_tools(body, nested)
    choice = body.get("tool_choice")
    if choice == "required":
        forced = _pick(tools, None)
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name") if nested else choice.get("name")
        forced = _pick(tools, name) if isinstance(name, str) else None
    elif isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        forced = _allowed(choice, tools, nested)
    else:
        forced = None
    if forced is not None:
        return forced
    if nested:
        return _json_format(body.get("response_format"), True)
    text = body.get("text")
    return _json_format(text.get("format"), False) if isinstance(text, Mapping) else None


def _anthropic_tools(body: Mapping[str, Any]) -> list[tuple[str, Any, bool]]:
    return [
        (tool["name"], tool.get("input_schema"), tool.get("strict") is True)
        for tool in body.get("tools") or ()
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and "input_schema" in tool
    ]


def _anthropic(body: Mapping[str, Any]) -> Asked | None:
    tools = _anthropic_tools(body)
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "any":
        return _pick(tools, None)
    if isinstance(choice, Mapping) and choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return _pick(tools, choice["name"])
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")  # the beta's key
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), Mapping):
        return Asked("json", fmt["schema"])
    return None


def _get(mapping: Any, camel: str, snake: str) -> Any:
    """Gemini's JSON takes both spellings of a field, as proto3 JSON does."""
    if not isinstance(mapping, Mapping):
        return None
    value = mapping.get(camel)
    return mapping.get(snake) if value is None else value


def _gemini_tools(body: Mapping[str, Any]) -> list[tuple[str, Any, bool]]:
    tools = []
    for tool in body.get("tools") or ():
        for declaration in _get(tool, "functionDeclarations", "function_declarations") or ():
            if isinstance(declaration, Mapping) and isinstance(declaration.get("name"), str):
                schema = _get(declaration, "parametersJsonSchema", "parameters_json_schema")
                tools.append((declaration["name"], schema or declaration.get("parameters"), False))
    return tools


def _gemini(body: Mapping[str, Any]) -> Asked | None:
    tools = _gemini_tools(body)
    calling = _get(_get(body, "toolConfig", "tool_config"), "functionCallingConfig", "function_calling_config")
    if str(_get(calling, "mode", "mode") or "").upper() == "ANY":
        allowed = _get(calling, "allowedFunctionNames", "allowed_function_names")
        for name in allowed or (None,):
            if (found := _pick(tools, name)) is not None:
                return found
        return None
    config = _get(body, "generationConfig", "generation_config")
    if _get(config, "responseMimeType", "response_mime_type") != "application/json":
        return None
    schema = _get(config, "responseJsonSchema", "response_json_schema") or _get(
        config, "responseSchema", "response_schema"
    )
    return Asked("json", schema if isinstance(schema, Mapping) else None)


_READERS: dict[str, Callable[[Mapping[str, Any]], Asked | None]] = {
    "chat": lambda body: _openai(body, True),
    "responses": lambda body: _openai(body, False),
    "anthropic": _anthropic,
    "gemini": _gemini,
}


# -- an agent's turn -----------------------------------------------------------------------------


def agent_turn(request: Request) -> Asked | None:
    """What an agent's model does with the tools a request offers (a `generate` reply with
    `call_tools: true`, such as the bundled catch-all): before any tool result, it calls the first
    offered tool (with arguments valid for its schema); once the conversation ends in a tool result,
    or when the request says `tool_choice: none`, it answers in text (None). Never raises."""
    endpoint, body = request.endpoint, request.body
    try:
        tools = _TOOLS[endpoint](body) if endpoint in _TOOLS else []
        if not tools or body.get("tool_choice") == "none" or conversation(request).tool_results:
            return None
    except (TypeError, AttributeError, KeyError, IndexError):  # an odd body: the dialect took it, we pass
        return None
    name, schema, strict = tools[0]
    return Asked("tool", schema if isinstance(schema, Mapping) else None, name, strict)


_TOOLS: dict[str, Callable[[Mapping[str, Any]], list[tuple[str, Any, bool]]]] = {
    "chat": lambda body: _openai_tools(body, True),
    "responses": lambda body: _openai_tools(body, False),
    "anthropic": _anthropic_tools,
    "gemini": _gemini_tools,
}


def offered_schemas(endpoint: str, body: Mapping[str, Any]) -> dict[str, Mapping[str, Any] | None]:
    """The tools `body` offers, by name: each one's parameter schema (None: it declares none). Never raises."""
    try:
        tools = _TOOLS[endpoint](body) if endpoint in _TOOLS else []
    except (TypeError, AttributeError, KeyError, IndexError):
        return {}
    return {name: schema if isinstance(schema, Mapping) else None for name, schema, _ in reversed(tools)}
