"""Each API's answer, whole or streamed, read back from its wire into a `Heard` (mockllm/heard.py),
for `mockllm record` (mockllm/recording.py).

The text pieces and the tool calls come with the time each part arrived, with the usage, the finish
and the model. What cannot be said in a reply's keys exactly (reasoning items, thinking blocks,
several choices, a streamed refusal, an event this reader does not know) raises `Unreadable`; the
recording then keeps the stream verbatim (`sse:`). Times are seconds from the request's arrival.
"""

from __future__ import annotations

import re
from typing import Any

from .heard import (
    Heard,
    HeardTool,
    SseEvent,
    Unreadable,
    add_text,
    as_object,
    count,
    known_keys,
    parse_json,
    sse_events,
)
from .scenario import ANSWER_ID

__all__ = ["read_answer"]

_ANSWER_ID = re.compile(ANSWER_ID)


def read_answer(endpoint: str, streamed: bool, chunks: list[tuple[float, bytes]], broken: bool) -> Heard:
    """The answer of `endpoint` (a dialect's name) in neutral terms; Unreadable if it cannot be said so."""
    if streamed:
        events = [e for e in sse_events(chunks) if e.data is not None]
        reader = _STREAM_READERS.get(endpoint)
        if reader is None:
            raise Unreadable(f"no reader of {endpoint} streams")
        heard = reader(events)
        if endpoint == "gemini" and not broken:
            heard.ended = True  # its streams have no terminator: a clean end is the end
        return heard
    if broken:
        raise Unreadable("the body was cut")
    whole = parse_json(b"".join(data for _, data in chunks).decode("utf-8", "replace"))
    body_reader = _BODY_READERS.get(endpoint)
    if body_reader is None:
        raise Unreadable(f"no reader of {endpoint} bodies")
    heard = body_reader(whole, chunks[-1][0] if chunks else 0.0)
    heard.whole = heard.ended = True
    return heard


# -- Chat Completions and legacy completions ------------------------------------------------------------

_CHAT_DELTA = {"role", "content", "refusal", "tool_calls"}
_CHAT_FINISH = {"stop", "length", "tool_calls", "content_filter", "function_call"}


def _chat_stream(events: list[SseEvent]) -> Heard:
    heard = Heard()
    by_index: dict[int, HeardTool] = {}
    for event in events:
        if heard.ended or heard.error_event is not None:
            raise Unreadable("events after the end")
        if event.data == "[DONE]":
            heard.ended = True
            continue
        chunk = as_object(parse_json(event.data), "a chunk")
        if "error" in chunk:
            error = chunk["error"]
            heard.error_event = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            continue
        _chat_head(heard, chunk)
        for choice in chunk.get("choices") or ():
            choice = as_object(choice, "a choice")
            if choice.get("index", 0) != 0:
                raise Unreadable("several choices")
            delta = as_object(choice.get("delta") or {}, "a delta")
            known_keys(delta, _CHAT_DELTA, "a delta")
            if delta.get("refusal"):
                raise Unreadable("a refusal")
            content = delta.get("content")
            if isinstance(content, str) and (content or "role" not in delta):
                add_text(heard, event.at, content)
            for part in delta.get("tool_calls") or ():
                _chat_tool_delta(heard, by_index, as_object(part, "a tool-call delta"), event.at)
            finish = choice.get("finish_reason")
            if finish:
                if finish not in _CHAT_FINISH:
                    raise Unreadable(f"finish_reason {finish!r}")
                heard.finish = finish
    return heard


def _given_id(value: Any) -> str | None:
    """An id as a reply can say it (mockllm.scenario.ANSWER_ID), else None: the replay derives its own."""
    return value if isinstance(value, str) and _ANSWER_ID.match(value) else None


def _chat_head(heard: Heard, chunk: dict[str, Any]) -> None:
    if heard.answer_id is None:
        heard.answer_id = _given_id(chunk.get("id"))
    if heard.model is None and isinstance(chunk.get("model"), str):
        heard.model = chunk["model"]
    if heard.fingerprint is None and isinstance(chunk.get("system_fingerprint"), str):
        heard.fingerprint = chunk["system_fingerprint"]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        heard.prompt_tokens = count(usage.get("prompt_tokens"))
        heard.completion_tokens = count(usage.get("completion_tokens"))


def _chat_tool_delta(heard: Heard, by_index: dict[int, HeardTool], part: dict[str, Any], at: float) -> None:
    index = part.get("index")
    if not isinstance(index, int):
        raise Unreadable("a tool-call delta without index")
    function = as_object(part.get("function") or {}, "a tool-call function")
    tool = by_index.get(index)
    if tool is None:
        if index != len(by_index) or not isinstance(function.get("name"), str):
            raise Unreadable("tool calls out of order, or without a name")
        tool = by_index[index] = HeardTool(
            part.get("id") if isinstance(part.get("id"), str) else None, function["name"], at
        )
        heard.tools.append(tool)
    elif index != len(by_index) - 1:
        raise Unreadable("interleaved tool calls")  # the fake sends one call's fragments after another's
    arguments = function.get("arguments")
    if isinstance(arguments, str) and arguments:
        tool.fragments.append((at, arguments))


def _one_choice(heard: Heard, body: Any) -> dict[str, Any]:
    """A chat or legacy completions body's head into `heard`, and its one choice (several: unreadable)."""
    body = as_object(body, "the body")
    _chat_head(heard, body)
    choices = body.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        raise Unreadable("not one choice")
    return as_object(choices[0], "a choice")


def _chat_body(body: Any, at: float) -> Heard:
    heard = Heard()
    choice = _one_choice(heard, body)
    message = as_object(choice.get("message"), "the message")
    for key in ("function_call", "audio", "reasoning_content"):
        if message.get(key) is not None:
            raise Unreadable(f"a message with {key}")
    refusal, content = message.get("refusal"), message.get("content")
    if isinstance(refusal, str) and refusal:
        heard.refusal = True
        heard.pieces.append((at, refusal))
    elif isinstance(content, str):
        heard.pieces.append((at, content))
    for call in message.get("tool_calls") or ():
        function = as_object(as_object(call, "a tool call").get("function"), "a tool call's function")
        if not isinstance(function.get("name"), str):
            raise Unreadable("a tool call without a name")
        tool = HeardTool(call.get("id") if isinstance(call.get("id"), str) else None, function["name"], at)
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            tool.fragments.append((at, arguments))
        heard.tools.append(tool)
    finish = choice.get("finish_reason")
    if finish is not None and finish not in _CHAT_FINISH:
        raise Unreadable(f"finish_reason {finish!r}")
    heard.finish = finish
    return heard


def _completions_stream(events: list[SseEvent]) -> Heard:
    heard = Heard()
    for event in events:
        if event.data == "[DONE]":
            heard.ended = True
            continue
        chunk = as_object(parse_json(event.data), "a chunk")
        if "error" in chunk:
            heard.error_event = str(as_object(chunk["error"], "an error").get("message", ""))
            continue
        _chat_head(heard, chunk)
        for choice in chunk.get("choices") or ():
            if as_object(choice, "a choice").get("index", 0) != 0:
                raise Unreadable("several choices")
            if isinstance(choice.get("text"), str):
                heard.pieces.append((event.at, choice["text"]))
            if choice.get("finish_reason"):
                heard.finish = choice["finish_reason"]
    return heard


def _completions_body(body: Any, at: float) -> Heard:
    heard = Heard()
    choice = _one_choice(heard, body)
    heard.pieces.append((at, str(choice.get("text") or "")))
    heard.finish = choice.get("finish_reason")
    return heard


# -- the Responses API ------------------------------------------------------------------------------

_RESPONSE_QUIET = {
    "response.created",
    "response.in_progress",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.done",
    "response.function_call_arguments.done",
    "response.output_item.done",
}


def _responses_stream(events: list[SseEvent]) -> Heard:
    heard = Heard()
    by_item: dict[str, HeardTool] = {}
    messages = 0
    for event in events:
        data = as_object(parse_json(event.data), "an event")
        kind = data.get("type")
        if heard.ended:
            raise Unreadable("events after the end")
        if kind in _RESPONSE_QUIET:
            if kind == "response.created":
                heard.answer_id = _given_id(as_object(data.get("response") or {}, "the response").get("id"))
            part = data.get("part")
            if isinstance(part, dict) and part.get("type") != "output_text":
                raise Unreadable(f"a {part.get('type')} part")
            continue
        if kind == "response.output_item.added":
            item = as_object(data.get("item"), "an item")
            if item.get("type") == "message":
                messages += 1
                if messages > 1 or heard.tools:
                    raise Unreadable("several messages, or a message after a call")
                heard.message_id = _given_id(item.get("id"))
            elif item.get("type") == "function_call" and isinstance(item.get("name"), str):
                call_id = item.get("call_id")
                tool = HeardTool(call_id if isinstance(call_id, str) else None, item["name"], event.at)
                tool.item_id = _given_id(item.get("id"))
                by_item[str(item.get("id"))] = tool
                heard.tools.append(tool)
            else:
                raise Unreadable(f"a {item.get('type')} item")
        elif kind == "response.output_text.delta":
            add_text(heard, event.at, str(data.get("delta", "")))
        elif kind == "response.function_call_arguments.delta":
            called = by_item.get(str(data.get("item_id")))
            if called is None or called is not heard.tools[-1]:
                raise Unreadable("arguments of an unknown or earlier call")
            if data.get("delta"):
                called.fragments.append((event.at, str(data["delta"])))
        elif kind in ("response.completed", "response.incomplete"):
            _response_end(heard, as_object(data.get("response"), "the response"))
            heard.ended = True
        elif kind == "error":
            nested = data.get("error")
            error = nested if isinstance(nested, dict) else data  # live traffic nests it; the OAS does not
            heard.error_event = str(error.get("message", ""))
        elif kind == "response.failed" and heard.error_event is not None:
            continue  # what follows the error event, which the fault sends again
        else:
            raise Unreadable(f"a {kind} event")
    return heard


def _response_end(heard: Heard, response: dict[str, Any]) -> None:
    heard.answer_id = _given_id(response.get("id")) or heard.answer_id
    if isinstance(response.get("model"), str):
        heard.model = response["model"]
    usage = response.get("usage")
    if isinstance(usage, dict):
        heard.prompt_tokens = count(usage.get("input_tokens"))
        heard.completion_tokens = count(usage.get("output_tokens"))
    if response.get("status") == "incomplete":
        reason = as_object(response.get("incomplete_details") or {}, "incomplete_details").get("reason")
        heard.finish = "content_filter" if reason == "content_filter" else "length"
    elif response.get("status") == "completed":
        heard.finish = "tool_calls" if heard.tools else "stop"
    else:
        raise Unreadable(f"status {response.get('status')!r}")


def _responses_body(body: Any, at: float) -> Heard:
    body = as_object(body, "the body")
    heard = Heard()
    messages = 0
    for item in body.get("output") or ():
        item = as_object(item, "an item")
        if item.get("type") == "message":
            messages += 1
            parts = item.get("content") or []
            if messages > 1 or heard.tools or any(as_object(p, "a part").get("type") != "output_text" for p in parts):
                raise Unreadable("a message this reader cannot say")
            heard.pieces.append((at, "".join(str(p.get("text", "")) for p in parts)))
            heard.message_id = _given_id(item.get("id"))
        elif item.get("type") == "function_call" and isinstance(item.get("name"), str):
            call_id = item.get("call_id")
            tool = HeardTool(call_id if isinstance(call_id, str) else None, item["name"], at)
            tool.item_id = _given_id(item.get("id"))
            tool.fragments.append((at, str(item.get("arguments", ""))))
            heard.tools.append(tool)
        else:
            raise Unreadable(f"a {item.get('type')} item")
    _response_end(heard, body)
    return heard


# -- Anthropic Messages ------------------------------------------------------------------------------

_ANTHROPIC_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def _anthropic_stream(events: list[SseEvent]) -> Heard:
    heard = Heard()
    blocks: dict[int, HeardTool | None] = {}  # by index: a tool_use block's call, None for the text block
    for event in events:
        data = as_object(parse_json(event.data), "an event")
        kind = data.get("type")
        if heard.ended:
            raise Unreadable("events after the end")
        if kind == "message_start":
            message = as_object(data.get("message"), "the message")
            heard.model = message.get("model") if isinstance(message.get("model"), str) else None
            heard.answer_id = _given_id(message.get("id"))
            usage = message.get("usage")
            if isinstance(usage, dict):
                heard.prompt_tokens = count(usage.get("input_tokens"))
        elif kind == "content_block_start":
            block = as_object(data.get("content_block"), "a block")
            index = data.get("index")
            if not isinstance(index, int) or index in blocks:
                raise Unreadable("a block without a new index")
            if block.get("type") == "text" and not blocks:
                blocks[index] = None
                if block.get("text"):
                    add_text(heard, event.at, str(block["text"]))
            elif block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                tool = HeardTool(block.get("id") if isinstance(block.get("id"), str) else None, block["name"], event.at)
                blocks[index] = tool
                heard.tools.append(tool)
            else:
                raise Unreadable(f"a {block.get('type')} block")
        elif kind == "content_block_delta":
            delta = as_object(data.get("delta"), "a delta")
            index = data.get("index")
            target = blocks.get(index, False) if isinstance(index, int) else False
            if delta.get("type") == "text_delta" and target is None:
                add_text(heard, event.at, str(delta.get("text", "")))
            elif delta.get("type") == "input_json_delta" and isinstance(target, HeardTool):
                if target is not heard.tools[-1]:
                    raise Unreadable("interleaved tool calls")
                if delta.get("partial_json"):
                    target.fragments.append((event.at, str(delta["partial_json"])))
            else:
                raise Unreadable(f"a {delta.get('type')} delta")
        elif kind == "message_delta":
            _anthropic_stop(heard, as_object(data.get("delta") or {}, "the delta").get("stop_reason"))
            usage = data.get("usage")
            if isinstance(usage, dict) and count(usage.get("output_tokens")) is not None:
                heard.completion_tokens = count(usage.get("output_tokens"))
        elif kind == "message_stop":
            heard.ended = True
        elif kind == "error":
            heard.error_event = str(as_object(data.get("error") or {}, "the error").get("message", ""))
        elif kind not in ("ping", "content_block_stop"):
            raise Unreadable(f"a {kind} event")
    return heard


def _anthropic_stop(heard: Heard, reason: Any) -> None:
    if reason is None:
        return
    if reason not in _ANTHROPIC_STOP and reason != "refusal":
        raise Unreadable(f"stop_reason {reason!r}")
    heard.finish = _ANTHROPIC_STOP.get(reason, "content_filter")


def _anthropic_body(body: Any, at: float) -> Heard:
    body = as_object(body, "the body")
    heard = Heard(model=body.get("model") if isinstance(body.get("model"), str) else None)
    heard.answer_id = _given_id(body.get("id"))
    texts = 0
    for block in body.get("content") or ():
        block = as_object(block, "a block")
        if block.get("type") == "text" and not texts and not heard.tools:
            texts += 1
            heard.pieces.append((at, str(block.get("text", ""))))
        elif block.get("type") == "tool_use" and isinstance(block.get("name"), str):
            tool_id = block.get("id") if isinstance(block.get("id"), str) else None
            heard.tools.append(HeardTool(tool_id, block["name"], at, whole=block.get("input", {})))
        else:
            raise Unreadable(f"a {block.get('type')} block where the reply cannot say it")
    _anthropic_stop(heard, body.get("stop_reason"))
    if heard.finish == "content_filter":
        heard.refusal = True
    usage = body.get("usage")
    if isinstance(usage, dict):
        heard.prompt_tokens = count(usage.get("input_tokens"))
        heard.completion_tokens = count(usage.get("output_tokens"))
    return heard


# -- Gemini ------------------------------------------------------------------------------------------

_GEMINI_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def _gemini_chunk(heard: Heard, chunk: dict[str, Any], at: float, whole: bool = False) -> None:
    if isinstance(chunk.get("modelVersion"), str):
        heard.model = chunk["modelVersion"]
    heard.answer_id = heard.answer_id or _given_id(chunk.get("responseId"))
    usage = chunk.get("usageMetadata")
    if isinstance(usage, dict):
        heard.prompt_tokens = count(usage.get("promptTokenCount"))
        heard.completion_tokens = count(usage.get("candidatesTokenCount"))
    candidates = chunk.get("candidates") or []
    if len(candidates) > 1:
        raise Unreadable("several candidates")
    for candidate in candidates:
        candidate = as_object(candidate, "a candidate")
        for part in as_object(candidate.get("content") or {}, "the content").get("parts") or ():
            part = as_object(part, "a part")
            if part.get("thought"):
                raise Unreadable("a thought part")
            keys = set(part) - {"thoughtSignature"} if whole else set(part)
            if "thoughtSignature" in part and not whole:
                # The client sends it back with the conversation, and a reply cannot say it: verbatim, it
                # comes back as recorded. (A whole body cannot be kept verbatim: its signature is dropped.)
                raise Unreadable("a part with a thoughtSignature")
            if isinstance(part.get("text"), str) and keys <= {"text"}:
                if part["text"]:
                    add_text(heard, at, part["text"])
            elif isinstance(part.get("functionCall"), dict) and keys <= {"functionCall"}:
                call = part["functionCall"]
                if not isinstance(call.get("name"), str):
                    raise Unreadable("a function call without a name")
                heard.tools.append(HeardTool(None, call["name"], at, whole=call.get("args", {})))
            else:
                raise Unreadable(f"a part with {', '.join(sorted(part))}")
        finish = candidate.get("finishReason")
        if finish is not None:
            if finish not in _GEMINI_FINISH:
                raise Unreadable(f"finishReason {finish!r}")
            heard.finish = "tool_calls" if heard.tools and finish == "STOP" else _GEMINI_FINISH[finish]


def _gemini_stream(events: list[SseEvent]) -> Heard:
    heard = Heard()
    for event in events:
        chunk = as_object(parse_json(event.data), "a chunk")
        if "error" in chunk:
            heard.error_event = str(as_object(chunk["error"], "the error").get("message", ""))
            continue
        _gemini_chunk(heard, chunk, event.at)
    return heard


def _gemini_body(body: Any, at: float) -> Heard:
    heard = Heard()
    _gemini_chunk(heard, as_object(body, "the body"), at, whole=True)
    if not heard.pieces and not heard.tools:
        heard.pieces.append((at, ""))
    return heard


_STREAM_READERS = {
    "chat": _chat_stream,
    "completions": _completions_stream,
    "responses": _responses_stream,
    "anthropic": _anthropic_stream,
    "gemini": _gemini_stream,
}
_BODY_READERS = {
    "chat": _chat_body,
    "completions": _completions_body,
    "responses": _responses_body,
    "anthropic": _anthropic_body,
    "gemini": _gemini_body,
}
