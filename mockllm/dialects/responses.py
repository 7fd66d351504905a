"""OpenAI's Responses API: `POST /v1/responses`, `GET /v1/responses/{id}`.

Wire facts: shared/dialects.md section 1 and shared/wire.md section 4. A streamed answer is
named events (`event: <type>`, `data: <json>` with `type` and a `sequence_number` counting from 0),
no `[DONE]`; a whole answer is the response object, pretty-printed. Answers are kept (a bounded
store per engine) so that `previous_response_id` can chain them and GET can fetch them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..answer import Answer
from ..errors import RequestError
from ..logprobs import MAX_TOP
from ..request import Request, invalid_type, message_text, parse_json_object, stream_flag
from ..sse import Event, Write
from ..tokens import count_tokens, split_tokens
from .base import Call, Dialect, Route, Stream
from .openai import (
    JSON_HEADERS,
    SERVER_ERROR,
    dumps,
    headers,
    json_text,
    obfuscation_pool,
    string,
)
from .response_object import (
    body_template,
    function_call_item,
    has_message,
    keep,
    message_item,
    output_items,
    refusal_part,
    response_ids,
    response_object,
    status_of,
    text_logprobs,
    text_part,
    top_ids,
    usage_object,
)
from .response_store import ResponseStore

if TYPE_CHECKING:
    import random

    from ..derive import Derived
    from ..router import Hit
    from ..script import Script

__all__ = ["RESPONSES", "ResponseStore", "ResponsesStream"]

_ROLES = ("assistant", "system", "developer", "user")
_INDENT = orjson.OPT_INDENT_2
_JSON_TYPE = JSON_HEADERS[0]
_NO_LOGPROBS = ',"logprobs":[]'
# What a request adds to `include` to get its text's logprobs (with `top_logprobs` alternatives).
_LOGPROBS_INCLUDE = "message.output_text.logprobs"


# -- requests ---------------------------------------------------------------------------------


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    given = body.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if given is None:
        return []
    if not isinstance(given, list):
        raise invalid_type("input", "one of a string or array of objects", given)
    for i, item in enumerate(given):
        if type(item) is not dict:
            raise invalid_type(f"input[{i}]", "an object", item)
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") not in _ROLES:
            raise RequestError(
                f"Invalid value: {json.dumps(item.get('role'))}. Supported values are: 'assistant', 'system', "
                "'developer', and 'user'.",
                param=f"input[{i}].role" if "role" in item else f"input[{i}]",
                code="invalid_value",
            )
        if kind == "message" and not isinstance(item.get("content"), str | list):
            raise invalid_type(f"input[{i}].content", "one of a string or array of objects", item.get("content"))
    return given


def _item_tokens(item: Mapping[str, Any]) -> int:
    """An item's tokens, as chat counts a message: 3, plus its text (or a call's name and arguments)."""
    kind = item.get("type", "message")
    if kind == "message":
        return 3 + count_tokens(message_text(item))
    if kind == "function_call":
        return 3 + count_tokens(str(item.get("name", ""))) + count_tokens(str(item.get("arguments", "")))
    if kind == "function_call_output":
        output = item.get("output")
        return 3 + count_tokens(output if isinstance(output, str) else message_text({"content": output}))
    return 0


def parse_responses(raw: bytes, headers: Mapping[str, str], store: ResponseStore) -> Request:
    """Parse and check a Responses body; raise RequestError as OpenAI would answer."""
    body = parse_json_object(raw)
    model = body.get("model")
    text = body.get("input")
    if len(body) == 2 and type(model) is str and type(text) is str:
        # The usual request (what `responses.create(model=..., input="...")` sends): one user
        # message and nothing else; tests/test_dialects.py checks it against _parse.
        request = Request("responses", body, model, False, headers, text, None, 6 + count_tokens(text))
        request.history = ({"role": "user", "content": text},)
        return request
    return _parse(body, model, headers, store)


def _parse(body: dict[str, Any], model: Any, headers: Mapping[str, str], store: ResponseStore) -> Request:
    if type(model) is not str:
        if model is None:
            raise RequestError("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        raise invalid_type("model", "a string", model)
    items = _items(body)
    history: tuple[dict[str, Any], ...] = ()
    previous = body.get("previous_response_id")
    if previous is not None:
        if not isinstance(previous, str):
            raise invalid_type("previous_response_id", "a string", previous)
        chain = store.history(previous)
        if chain is None:
            raise RequestError(
                f"Previous response with id '{previous}' not found.",
                status=404,
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = chain
    conversation = (*history, *items)
    user_text: str | None = None
    system_text: str | None = None
    prompt_tokens = 3
    for item in conversation:
        if item.get("type", "message") == "message":
            role = item.get("role")
            if role == "user":
                user_text = message_text(item)
            elif system_text is None and (role == "system" or role == "developer"):
                system_text = message_text(item)
        prompt_tokens += _item_tokens(item)
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid_type("instructions", "a string", instructions)
        system_text = instructions  # instructions are not carried over a chain (OpenAI's docs)
        prompt_tokens += 3 + count_tokens(instructions)
    stream = stream_flag(body)
    request = Request("responses", body, model, stream, headers, user_text, system_text, prompt_tokens)
    request.history = conversation
    options = body.get("stream_options")
    if isinstance(options, dict):
        request.include_obfuscation = options.get("include_obfuscation", True) is not False
    tools = body.get("tools")
    if isinstance(tools, list):
        names = (t.get("name") for t in tools if isinstance(t, dict) and t.get("type", "function") == "function")
        request.tools = tuple(n for n in names if isinstance(n, str))
    cap = body.get("max_output_tokens")
    if type(cap) is int:
        request.max_tokens = cap
    include = body.get("include")
    if isinstance(include, list) and _LOGPROBS_INCLUDE in include:
        top = body.get("top_logprobs")
        if top is not None and (type(top) is not int or not 0 <= top <= MAX_TOP):
            raise RequestError(
                f"Invalid 'top_logprobs': expected an integer between 0 and {MAX_TOP}, got {dumps(top)}.",
                param="top_logprobs",
                code="invalid_value",
            )
        request.logprobs = top or 0
    return request


# -- streams ----------------------------------------------------------------------------------


class ResponsesStream(Stream):
    """The named events of one streamed response (shared/dialects.md section 1, "Stream")."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.response_id, self.message_id, self.call_ids = response_ids(call)
        self.seq = 0  # the next event's sequence_number
        self.plain = False  # make writes instead of events (plain_writes)
        self.deltas = len(call.pieces) + sum(len(t.fragments) for t in call.tools)
        pool = obfuscation_pool(call.derived.seed) if call.request.include_obfuscation else None
        self.padding = tuple(f',"obfuscation":"{o}"}}' for o in pool) if pool else ("}",)
        self.status = status_of(call)
        self.final = response_object(
            call,
            self.response_id,
            self.status,
            output_items(call, self.message_id, self.call_ids, self.status),
            usage_object(call),
        )
        keep(call, self.final)

    def _event(self, at: float, kind: str, payload: dict[str, Any], part: str = "head") -> Any:
        text = orjson.dumps({"type": kind, "sequence_number": self.seq, **payload}).decode()
        if part != self.dropped:  # a dropped event takes no number
            self.seq += 1
        if self.plain:
            return Write(at, f"event: {kind}\ndata: {text}\n\n".encode())
        return Event(at, text, name=kind, part=part)

    def _delta(self, at: float, kind: str, head: str, delta: str, after: str = "") -> Any:
        """A text or arguments delta: the hot event of a stream, made from a template (the same text
        as `_event` makes of the same fields: tests/test_dialects.py checks it)."""
        n = self.seq
        self.seq = n + 1
        end = self.padding[n % len(self.padding)]
        text = f'{{"type":"{kind}","sequence_number":{n},{head}"delta":{string(delta)}{after}{end}'
        if self.plain:
            return tuple.__new__(Write, (at, f"event: {kind}\ndata: {text}\n\n".encode(), False))
        return Event(at, text, name=kind, part="delta")

    def plain_writes(self) -> Iterator[Write]:
        """`frame(events())` with no fault or framing, the same bytes at the same times, made as
        writes at once: the event layer costs about as much as the events (tests/test_dialects.py)."""
        self.plain = True
        return self.events()  # type: ignore[return-value]  # in plain mode it yields writes

    def _text(self, ids: dict[str, Any], text: str) -> Iterator[Event]:
        """The message's text part: added, its deltas (with their logprobs when asked), done."""
        call, offsets = self.call, self.call.offsets
        yield self._event(offsets[0], "response.content_part.added", {**ids, "part": text_part("")})
        head = f'"item_id":"{ids["item_id"]}","output_index":0,"content_index":0,'
        logprobs = text_logprobs(call)
        token_at = 0
        for slot, piece in enumerate(call.pieces):
            after = _NO_LOGPROBS
            if logprobs is not None:  # this piece's tokens' share of the text's logprobs
                count = len(split_tokens(piece))
                after = f',"logprobs":{dumps(logprobs[token_at : token_at + count])}'
                token_at += count
            yield self._delta(offsets[slot], "response.output_text.delta", head, piece, after)
        at = offsets[max(len(call.pieces) - 1, 0)]
        done = {**ids, "text": text, "logprobs": logprobs or []}
        yield self._event(at, "response.output_text.done", done, "finish")
        yield self._event(at, "response.content_part.done", {**ids, "part": text_part(text, logprobs)}, "finish")

    def _refusal(self, ids: dict[str, Any], text: str) -> Iterator[Event]:
        """The message's refusal part: added, `response.refusal.delta` events, done (the openai SDK's
        ResponseRefusalDeltaEvent and ResponseRefusalDoneEvent)."""
        call, offsets = self.call, self.call.offsets
        yield self._event(offsets[0], "response.content_part.added", {**ids, "part": refusal_part("")})
        head = f'"item_id":"{ids["item_id"]}","output_index":0,"content_index":0,'
        for slot, piece in enumerate(call.pieces):
            yield self._delta(offsets[slot], "response.refusal.delta", head, piece)
        at = offsets[max(len(call.pieces) - 1, 0)]
        yield self._event(at, "response.refusal.done", {**ids, "refusal": text}, "finish")
        yield self._event(at, "response.content_part.done", {**ids, "part": refusal_part(text)}, "finish")

    def events(self) -> Iterator[Event]:
        call, offsets, final = self.call, self.call.offsets, self.final
        start = {**final, "status": "in_progress", "incomplete_details": None, "output": [], "usage": None}
        yield self._event(offsets[0], "response.created", {"response": start})
        yield self._event(offsets[0], "response.in_progress", {"response": start})
        index = slot = 0
        if has_message(call):
            item_id, text = self.message_id, call.content or ""
            ids = {"item_id": item_id, "output_index": 0, "content_index": 0}
            yield self._event(
                offsets[0],
                "response.output_item.added",
                {"output_index": 0, "item": message_item(item_id, "in_progress", [])},
            )
            yield from self._refusal(ids, text) if call.script.refusal else self._text(ids, text)
            slot = len(call.pieces)
            at = offsets[max(slot - 1, 0)]
            yield self._event(
                at, "response.output_item.done", {"output_index": 0, "item": final["output"][0]}, "finish"
            )
            index = 1
        for item_id, tool in zip(self.call_ids, call.tools, strict=True):
            added = function_call_item(item_id, "in_progress", tool.id, tool.name, "")
            yield self._event(offsets[slot], "response.output_item.added", {"output_index": index, "item": added})
            slot += 1
            head = f'"item_id":"{item_id}","output_index":{index},'
            for fragment in tool.fragments:
                yield self._delta(offsets[slot], "response.function_call_arguments.delta", head, fragment)
                slot += 1
            at = offsets[slot - 1]
            done = {"item_id": item_id, "output_index": index, "arguments": tool.arguments}
            yield self._event(at, "response.function_call_arguments.done", done, "finish")
            yield self._event(
                at, "response.output_item.done", {"output_index": index, "item": final["output"][index]}, "finish"
            )
            index += 1
        terminal = "response.completed" if self.status == "completed" else "response.incomplete"
        yield self._event(offsets[-1], terminal, {"response": final}, "done")

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        # The fault comes before an event already made (and never sent, but for `malformed`): take its number.
        self.seq -= 1
        if kind == "error_event":
            # What live traffic sends: a nested error, then response.failed (shared/dialects.md, "Errors").
            text = message or SERVER_ERROR
            error = {"type": "server_error", "code": "server_error", "message": text, "param": None}
            failed = {
                **self.final,
                "status": "failed",
                "error": {"code": "server_error", "message": text},
                "incomplete_details": None,
                "output": [],
                "usage": None,
            }
            keep(self.call, failed)  # what the stream ended on is what GET /v1/responses/{id} returns
            return [
                self._event(at, "error", {"error": error}),
                self._event(at, "response.failed", {"response": failed}),
            ]
        ids = f'"item_id":"{self.message_id}","output_index":0,"content_index":0,'
        broken = self._delta(at, "response.output_text.delta", ids, "broken", _NO_LOGPROBS)  # the number given back
        return [broken._replace(text=broken.text[: len(broken.text) // 2], part="head")]  # an Event: not plain


# -- the dialect ------------------------------------------------------------------------------


class ResponsesDialect(Dialect):
    name = "responses"
    error_indent = 4  # pretty, as the API sends its errors (shared/dialects.md section 0)
    id_prefix = "resp_"
    routes = (Route("POST", "/v1/responses"), Route("GET", "/v1/responses/{response_id}", "retrieve"))

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        return parse_responses(body, headers, state)

    def prepare(self, script: Script) -> None:
        script.compiled[self.name] = body_template(script)

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        """The usual whole answer (a text reply to a request of only `model` and `input`): the body
        compiled at load, filled in. tests/test_dialects.py checks it against the general path."""
        script = hit.reply
        template = script.compiled[self.name]
        if template is None or len(request.body) != 2 or request.stream or script.fault is not None:
            return None
        delay = 0.0 if not scale or script.instant else script.offsets(max(script.chunk_count, 1), rng, scale)[-1]
        prompt = script.usage_prompt
        if prompt is None:
            prompt = request.prompt_tokens
        response_id, message_id = top_ids(script, derived)
        head, created, model, message, usage, total, tail = template.parts
        body = (
            f'{head}"{response_id}"{created}{derived.created}{model}{json_text(script.model or request.model)}'
            f'{message}"{message_id}"{usage}{prompt}{total}'
            f"{prompt + template.completion_tokens}{tail}"
        ).encode()
        state.put(response_id, body, request.history)
        return Answer(200, headers(_JSON_TYPE, derived.request_id, delay), body, delay)

    def body(self, call: Call) -> bytes:
        response_id, message_id, call_ids = response_ids(call)
        status = status_of(call)
        response = response_object(
            call, response_id, status, output_items(call, message_id, call_ids, status), usage_object(call)
        )
        body = orjson.dumps(response, option=_INDENT)
        keep(call, response, body)
        return body

    def stream(self, call: Call) -> Stream:
        return ResponsesStream(call)

    def new_state(self) -> ResponseStore:
        return ResponseStore()

    def act(self, action: str, params: Mapping[str, str], state: Any) -> tuple[int, bytes]:
        response_id = params["response_id"]
        body = state.body(response_id)
        if body is None:
            raise RequestError(f"No response found with id '{response_id}'.", status=404)
        return 200, body


RESPONSES = ResponsesDialect()
