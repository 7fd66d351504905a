"""Anthropic's Messages API: `POST /v1/messages`.

Wire facts: shared/dialects.md section 2 (and 0, 7, 8). A whole answer is the compact `message`
object; a streamed one is named events (`event: <type>` then `data: <json>`: the anthropic SDK
dispatches on the name and yields nothing without it), ending after `message_stop`, no `[DONE]`.
Errors are `{"type":"error","error":{"type","message"},"request_id"}` with Anthropic's type per
status (529 `overloaded_error` included) and a `request-id` header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..answer import Answer
from ..errors import RequestError
from ..request import Request, stream_flag, type_name
from ..sse import Event, Write
from ..tokens import count_tokens
from .base import Call, Dialect, Route, Stream
from .message_threads import CREATE_ONLY, ThreadStore, resolve

if TYPE_CHECKING:
    import random

    from ..derive import Derived
    from ..quota import Standing
    from ..router import Hit
    from ..script import Script
from .openai import JSON_HEADERS, SSE_HEADERS, Header

__all__ = ["ANTHROPIC", "AnthropicStream"]

_B58 = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# The neutral finish -> stop_reason (shared/dialects.md section 7).
_STOP = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
# status -> (error type, code, message); the types are Anthropic's (docs.claude.com/en/api/errors).
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("authentication_error", None, "invalid x-api-key"),
    402: ("billing_error", None, "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", None, "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", None, "model: {model}"),
    413: ("request_too_large", None, "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        None,
        "This request would exceed the rate limit for your organization of 50,000 input tokens per minute.",
    ),
    500: ("api_error", None, "Internal server error"),
    504: ("timeout_error", None, "Request timed out."),
    529: ("overloaded_error", None, "Overloaded"),
}
_ROLES = ("user", "assistant")
_CACHE_CONTROL: Header = (b"cache-control", b"no-cache")
_SSE_TYPE = SSE_HEADERS[0]
_JSON_TYPE = JSON_HEADERS[0]
_RATE_HEADERS: tuple[Header, ...] = (
    (b"anthropic-ratelimit-requests-limit", b"4000"),
    (b"anthropic-ratelimit-requests-remaining", b"3999"),
    (b"anthropic-ratelimit-requests-reset", b"2025-01-01T00:00:01Z"),
    (b"anthropic-ratelimit-tokens-limit", b"400000"),
    (b"anthropic-ratelimit-tokens-remaining", b"399000"),
    (b"anthropic-ratelimit-tokens-reset", b"2025-01-01T00:00:01Z"),
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()  # compact, non-ASCII as UTF-8: as Anthropic sends it


_B58_TABLE = bytes(_B58[b % 58] for b in range(256))  # a byte -> a base58 character, made once


def _base58(digest: bytes, length: int) -> str:
    return digest[:length].translate(_B58_TABLE).decode("ascii")


def _request_id(request_id: str) -> str:
    """`req_011C` + 20 base58 characters (shared/dialects.md section 2, "IDs"), made from the call's own id."""
    return "req_011C" + _base58(hashlib.blake2b(request_id.encode(), digest_size=20).digest(), 20)


# -- requests ---------------------------------------------------------------------------------


def _invalid(message: str, status: int = 400) -> RequestError:
    return RequestError(message, status=status)


def _blocks_text(content: Any, where: str) -> str:
    """The text of a string or a list of content blocks (text blocks joined; others have none)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid(f"{where}: Input should be a valid string or a list of content blocks, got {type_name(content)}")
    texts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _invalid(f"{where}.{i}: Input should be an object with a `type` (a content block)")
        if block["type"] == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
    return "".join(texts)


def _block_tokens(content: Any) -> int:
    """A turn's tokens: its text, tool inputs and tool results (a rough count, as for every API)."""
    if isinstance(content, str):
        return count_tokens(content)
    total = 0
    for block in content:
        kind = block.get("type")
        if kind == "text":
            total += count_tokens(str(block.get("text", "")))
        elif kind == "tool_use":
            total += count_tokens(str(block.get("name", ""))) + count_tokens(_dumps(block.get("input", {})))
        elif kind == "tool_result":
            result = block.get("content", "")
            total += count_tokens(result if isinstance(result, str) else _blocks_text(result, "tool_result.content"))
    return total


def parse_messages(raw: bytes, headers: Mapping[str, str], threads: ThreadStore | None = None) -> Request:
    """Parse and check a Messages body; raise RequestError as Anthropic would answer (its messages
    name the field: "max_tokens: Field required"). A threaded request (`thread`, message_threads.py)
    is read as the whole request it stands for."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid(
            "The request body is not valid JSON. Send a JSON object with model, max_tokens and messages."
        ) from None
    if not isinstance(body, dict):
        raise _invalid(f"The request body must be a JSON object (model, max_tokens, messages), got {type_name(body)}")
    sent = None
    if "thread" in body and threads is not None:
        sent, body = body, resolve(body, threads)
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise _invalid(f"{field}: Field required")
    model, cap, messages = body["model"], body["max_tokens"], body["messages"]
    if type(model) is not str:
        raise _invalid(f"model: Input should be a valid string, got {type_name(model)}")
    if type(cap) is not int or cap < 1:
        raise _invalid(f"max_tokens: Input should be an integer of at least 1, got {cap!r}")
    if type(messages) is not list:
        raise _invalid(f"messages: Input should be a valid list, got {type_name(messages)}")
    user_text: str | None = None
    prompt_tokens = 3
    for i, message in enumerate(messages):
        if type(message) is not dict or message.get("role") not in _ROLES:
            raise _invalid(
                f"messages.{i}.role: Input should be 'user' or 'assistant' (there is no system role: "
                "send the system prompt as the top-level `system` parameter)"
            )
        content = message.get("content")
        text = _blocks_text(content, f"messages.{i}.content")
        # The last user turn with text is the user match: a turn of tool results only answers a call
        # and keeps the question it answers (as a chat `tool` message does).
        if message["role"] == "user" and (
            isinstance(content, str) or any(b.get("type") == "text" for b in content or ())
        ):
            user_text = text
        prompt_tokens += 3 + _block_tokens(content)
    system = body.get("system")
    system_text = None if system is None else _blocks_text(system, "system")
    if system_text is not None:
        prompt_tokens += count_tokens(system_text)
    request = Request("anthropic", body, model, stream_flag(body), headers, user_text, system_text, prompt_tokens)
    request.sent_body = sent
    request.max_tokens = cap
    stops = body.get("stop_sequences")
    if isinstance(stops, list):
        request.stop = tuple(s for s in stops if isinstance(s, str))
    tools = body.get("tools")
    if isinstance(tools, list):
        request.tools = tuple(t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str))
    return request


# -- the message object -----------------------------------------------------------------------


def _ids(call: Call) -> tuple[str, list[str]]:
    """`msg_01` + 22 base58 characters, and a `toolu_01…` per tool call (a scenario's own id kept)."""
    derived = call.derived
    message_id = call.script.answer_id or "msg_01" + _base58(derived.core[:22], 22)
    # The call's tools are the scenario's (cut short by the request's limits), or the one it forces.
    given = [t.id for t in call.script.tools]
    tool_ids = []
    for i in range(len(call.tools)):
        own = given[i] if i < len(given) else None
        tool_ids.append(
            own if own is not None else "toolu_01" + _base58(bytes.fromhex(derived.hex(f"toolu-{i}", 22)), 22)
        )
    return message_id, tool_ids


def _input(arguments: str) -> Any:
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _has_text(call: Call) -> bool:
    return call.content is not None or not call.tools


def _content(call: Call, tool_ids: list[str]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if _has_text(call):
        blocks.append({"type": "text", "text": call.content or ""})
    for tool_id, tool in zip(tool_ids, call.tools, strict=True):
        blocks.append({"type": "tool_use", "id": tool_id, "name": tool.name, "input": _input(tool.arguments)})
    return blocks


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message(call: Call, message_id: str, content: list[Any], stop: str | None, output: int) -> dict[str, Any]:
    # Claude 4.x's key order (shared/dialects.md section 2, "Non-streamed body").
    return {
        "model": call.model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop,
        "stop_sequence": call.stop_sequence if stop is not None else None,
        "usage": _usage(call.prompt_tokens, output),
    }


def _stop(call: Call) -> str:
    if call.script.refusal:
        return "refusal"  # Claude's own word for it (docs.claude.com: handling stop reasons)
    if call.stop_sequence is not None:
        return "stop_sequence"  # the text ended before one of the request's `stop_sequences`
    return _STOP.get(call.finish_reason, "end_turn")


def _keep(call: Call, message_id: str, tool_ids: list[str]) -> None:
    """A threaded request's reply: kept with its conversation, for the thread's next turn."""
    body = call.request.body
    if "thread" not in body or not isinstance(call.state, ThreadStore):
        return
    reply = {"role": "assistant", "content": _content(call, tool_ids)}
    held = {field: body[field] for field in CREATE_ONLY if field in body}
    call.state.put(message_id, (*body["messages"], reply), held)


# -- streams ----------------------------------------------------------------------------------


class AnthropicStream(Stream):
    """The named events of one streamed message (shared/dialects.md section 2, "Stream")."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.message_id, self.tool_ids = _ids(call)
        self.deltas = len(call.pieces) + sum(len(t.fragments) for t in call.tools)
        _keep(call, self.message_id, self.tool_ids)

    def events(self) -> Iterator[Event]:
        call, offsets = self.call, self.call.offsets
        start = _message(call, self.message_id, [], None, 1)
        del start["usage"]["cache_creation"]  # message_start's usage has the flat fields only
        yield _event(offsets[0], "message_start", {"type": "message_start", "message": start})
        index = slot = 0
        pinged = False
        if _has_text(call):
            yield _block_start(offsets[0], 0, {"type": "text", "text": ""})
            yield Event(offsets[0], '{"type": "ping"}', name="ping")  # as captured: with a space
            pinged = True
            for piece in call.pieces:
                yield _delta(offsets[slot], 0, {"type": "text_delta", "text": piece})
                slot += 1
            yield _event(
                offsets[max(slot - 1, 0)], "content_block_stop", {"type": "content_block_stop", "index": 0}, "finish"
            )
            index = 1
        for tool_id, tool in zip(self.tool_ids, call.tools, strict=True):
            at = offsets[slot]
            slot += 1
            yield _block_start(at, index, {"type": "tool_use", "id": tool_id, "name": tool.name, "input": {}})
            if not pinged:
                yield Event(at, '{"type": "ping"}', name="ping")
                pinged = True
            # The first input_json_delta is empty (APY tool_use_response.txt): not a fragment the fault layer counts.
            yield _delta(at, index, {"type": "input_json_delta", "partial_json": ""}, "head")
            for fragment in tool.fragments:
                if fragment:
                    yield _delta(offsets[slot], index, {"type": "input_json_delta", "partial_json": fragment})
                else:  # an empty arguments' one fragment: counted, but the empty delta above said it
                    yield Event(offsets[slot], "", "raw", part="delta")
                slot += 1
            stop = {"type": "content_block_stop", "index": index}
            yield _event(offsets[slot - 1], "content_block_stop", stop, "finish")
            index += 1
        end = offsets[-1]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop(call), "stop_sequence": call.stop_sequence},
            "usage": {"output_tokens": call.completion_tokens},
        }
        yield _event(end, "message_delta", delta, "finish")
        yield _event(end, "message_stop", {"type": "message_stop"}, "done")

    def plain_writes(self) -> Iterator[Write] | None:
        """A text reply's stream with no fault or framing, straight to bytes: `frame(events())`'s bytes at
        its times (tests/test_anthropic_sdk.py), without an event, a dict and an encoder call per delta."""
        if self.call.tools or not _has_text(self.call):
            return None
        return self._text_writes()

    def _text_writes(self) -> Iterator[Write]:
        call, offsets = self.call, self.call.offsets
        start = _message(call, self.message_id, [], None, 1)
        del start["usage"]["cache_creation"]
        at = offsets[0]
        yield Write(at, _sse("message_start", _dumps({"type": "message_start", "message": start})))
        yield Write(at, _TEXT_BLOCK_START)
        yield Write(at, _PING)
        new, dumps = tuple.__new__, orjson.dumps
        for slot, piece in enumerate(call.pieces):
            yield new(Write, (offsets[slot], b"%s%s}}\n\n" % (_TEXT_DELTA, dumps(piece)), False))
        yield Write(offsets[max(len(call.pieces) - 1, 0)], _TEXT_BLOCK_STOP)
        end = offsets[-1]
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop(call), "stop_sequence": call.stop_sequence},
            "usage": {"output_tokens": call.completion_tokens},
        }
        yield Write(end, _sse("message_delta", _dumps(delta)))
        yield Write(end, _MESSAGE_STOP)

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        if kind == "error_event":
            error = {"type": "error", "error": {"type": "overloaded_error", "message": message or "Overloaded"}}
            return [_event(at, "error", error)]
        broken = _delta(at, 0, {"type": "text_delta", "text": "broken"})
        return [broken._replace(text=broken.text[: len(broken.text) // 2], part="head")]


def _sse(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


# The plain stream's constant events, as events() makes them.
_TEXT_BLOCK_START = _sse(
    "content_block_start", '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
)
_PING = _sse("ping", '{"type": "ping"}')
_TEXT_DELTA = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
)
_TEXT_BLOCK_STOP = _sse("content_block_stop", '{"type":"content_block_stop","index":0}')
_MESSAGE_STOP = _sse("message_stop", '{"type":"message_stop"}')


def _event(at: float, name: str, payload: dict[str, Any], part: str = "head") -> Event:
    return Event(at, _dumps(payload), name=name, part=part)


def _block_start(at: float, index: int, block: dict[str, Any]) -> Event:
    return _event(at, "content_block_start", {"type": "content_block_start", "index": index, "content_block": block})


def _delta(at: float, index: int, delta: dict[str, Any], part: str = "delta") -> Event:
    return _event(at, "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}, part)


# -- the dialect ------------------------------------------------------------------------------


class AnthropicDialect(Dialect):
    name = "anthropic"
    id_prefix = "msg_"
    routes = (Route("POST", "/v1/messages"),)

    def new_state(self) -> ThreadStore:
        return ThreadStore()

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        return parse_messages(body, headers, state)

    def error_body(self, message: str, type: str, param: str | None, code: str | int | None, *, status: int) -> bytes:
        error: dict[str, Any] = {"type": type, "message": message}
        if isinstance(code, str) and code.startswith("thread_"):
            # The threads beta's rejections say what went wrong here, which the SDK acts on
            # (anthropic/lib/threads/_thread_state.py, `_error_details`).
            error["details"] = {"error_code": code}
        return orjson.dumps({"type": "error", "error": error})

    def azure_error_body(self, code: str, message: str) -> bytes:
        return self.error_body(message, "api_error", None, code, status=500)  # no Azure flavour of this API

    def error_default(self, status: int) -> tuple[str, str | None, str]:
        return _ERRORS.get(status, ("invalid_request_error" if status < 500 else "api_error", None, f"Error {status}."))

    def error_parts(self, body: bytes, request_id: str) -> tuple[bytes, list[Header]]:
        """The envelope names the request id too (the body is this dialect's own compact JSON object)."""
        rid = _request_id(request_id)
        return body[:-1] + b',"request_id":"' + rid.encode() + b'"}', [(b"request-id", rid.encode())]

    def headers(self, content_type: Header, request_id: str, seconds: float) -> list[Header]:
        made = [content_type, (b"request-id", _request_id(request_id).encode()), *_RATE_HEADERS]
        if content_type is _SSE_TYPE or content_type == _SSE_TYPE:
            made.append(_CACHE_CONTROL)
        return made

    # The usual answer, a text reply not streamed, from its body compiled once per reply (`prepare`), as
    # chat's: the message id, the model, the input tokens filled in (tests/test_anthropic_sdk.py checks
    # it against the general path). Anthropic requests always carry `max_tokens`: a cap the reply fits.
    def prepare(self, script: Script) -> None:
        template = None
        if (
            not script.tools
            and script.content is not None
            and script.generate is None
            and script.transcript is None
            and script.error is None
            and script.completion_tokens is not None
        ):
            stop = "refusal" if script.refusal else _STOP.get(script.finish_reason, "end_turn")
            usage = _usage(0, script.completion_tokens)
            tail = _dumps({"stop_reason": stop, "stop_sequence": None, "usage": usage})  # input_tokens 0: a slot
            before, after = tail.split('"input_tokens":0', 1)
            content = _dumps([{"type": "text", "text": script.content}])
            template = (
                f',"type":"message","role":"assistant","content":{content},{before[1:]}"input_tokens":',
                f"{after[:-1]}}}",
            )
        script.compiled[self.name] = template

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        script = hit.reply
        template = script.compiled[self.name]
        if template is None or request.stream or script.fault is not None or request.stop or "thread" in request.body:
            return None  # (a threaded reply is kept for the thread's next turn: the general path does it)
        if request.max_tokens is not None and request.max_tokens < (script.sent_tokens or 0):
            return None  # the cap cuts it: the general path
        delay = 0.0 if not scale or script.instant else script.offsets(max(script.chunk_count, 1), rng, scale)[-1]
        prompt = script.usage_prompt if script.usage_prompt is not None else request.prompt_tokens
        middle, end = template
        model = _dumps(script.model or request.model)
        message_id = script.answer_id or "msg_01" + _base58(derived.core[:22], 22)  # `_-.:+/=` at most: unescaped
        body = f'{{"model":{model},"id":"{message_id}"{middle}{prompt}{end}'.encode()
        return Answer(200, self.headers(_JSON_TYPE, derived.request_id, delay), body, delay)

    def body(self, call: Call) -> bytes:
        message_id, tool_ids = _ids(call)
        _keep(call, message_id, tool_ids)
        return orjson.dumps(_message(call, message_id, _content(call, tool_ids), _stop(call), call.completion_tokens))

    def stream(self, call: Call) -> Stream:
        return AnthropicStream(call)

    # -- the model listing: `GET /v1/models` from the anthropic SDK, which sends `anthropic-version` on
    # every request (Dialect.models_header), answered in this API's shape.

    models_header = "anthropic-version"

    def models_body(self, model_ids: Sequence[str]) -> bytes:
        first, last = (model_ids[0], model_ids[-1]) if model_ids else (None, None)
        data = [_model(m) for m in model_ids]
        return orjson.dumps({"data": data, "has_more": False, "first_id": first, "last_id": last})

    def model_body(self, model_id: str) -> bytes:
        return orjson.dumps(_model(model_id))

    def model_missing(self, model_id: str) -> bytes:
        return self.error_body(f"model: {model_id}", "not_found_error", None, None, status=404)

    # `--require-api-key` (Dialect.refuses_key): the SDK sends `x-api-key`, or `Authorization: Bearer` for an
    # auth token; the API answers 401 authentication_error either way.
    def refuses_key(self, key: str, headers: Mapping[str, str], query: str) -> tuple[int, bytes] | None:
        bearer = headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
        given = headers.get("x-api-key") or token
        if key in (given, token):
            return None
        message = "invalid x-api-key" if given else "x-api-key header is required"
        return 401, self.error_body(message, "authentication_error", None, None, status=401)

    # A scenario's `limits` (Dialect.quota_answer): `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`,
    # the reset in RFC 3339 (shared/dialects.md section 2, "Headers"), `retry-after` in seconds, and the 429
    # `rate_limit_error` in the API's words (docs.claude.com/en/api/rate-limits). The quota counts input and
    # output tokens together, so it is `tokens-*` (the most restrictive) the headers name, not input/output.
    def quota_answer(self, standing: Standing) -> tuple[list[Header], bytes]:
        from ..quota import rfc3339

        headers: list[Header] = []
        for what, counted in (("requests", standing.requests), ("tokens", standing.tokens)):
            if counted is not None:
                name = b"anthropic-ratelimit-" + what.encode()
                headers.append((name + b"-limit", b"%d" % counted.limit))
                headers.append((name + b"-remaining", b"%d" % counted.remaining))
                headers.append((name + b"-reset", rfc3339(counted.reset).encode()))
        if standing.refused is None:
            return headers, b""
        per = "requests per minute" if standing.refused == "requests" else "tokens per minute"
        message = (
            f"This request would exceed the rate limit for your organization (mockllm) of {standing.quota:,} {per}. "
            "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers "
            "for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later."
        )
        if standing.wait is None:
            headers.append((b"x-should-retry", b"false"))  # more than the whole quota: it can never pass
        else:
            headers.append((b"retry-after", b"%d" % (standing.retry_after or 1)))
        return headers, self.error_body(message, "rate_limit_error", None, None, status=429)


def _model(model_id: str) -> dict[str, Any]:
    # anthropic 2.15 types/model_info.py: type, id, display_name, created_at (RFC 3339), lifecycle
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "2025-02-19T00:00:00Z",
        "lifecycle": "active",
    }


ANTHROPIC = AnthropicDialect()
