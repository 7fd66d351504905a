"""OpenAI Chat Completions: `POST /v1/chat/completions` (and Azure's deployments path).

Field order and spelling follow recorded 2025 traffic (shared/wire.md sections 1 and 2); JSON is
compact. The common answers take fast paths, each tested against the general one: a
non-streamed body compiled per reply (`CompletionTemplate`, tests/test_answer_paths.py) and a
plain stream built straight to bytes (`ChatStream.plain_writes`, tests/test_raw_wire.py).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..answer import Answer
from ..choices import Choice, choices_of, completion_tokens, interleave
from ..errors import RequestError
from ..logprobs import MAX_TOP
from ..request import (
    Request,
    invalid_type,
    message_text,
    parse_json_object,
    read_n,
    read_stop,
    read_stream_options,
    stream_flag,
)
from ..sse import Event, Write
from ..tokens import count_tokens, split_tokens
from .base import Call, Dialect, Route, Stream, ToolCallWire
from .chat_body import CompletionTemplate, choice_json, choices_json, completion_json, logprobs_json, usage_json
from .openai import (
    JSON_HEADERS,
    SERVER_ERROR,
    dumps,
    fingerprint,
    headers,
    json_text,
    obfuscation_pool,
    string,
)

if TYPE_CHECKING:
    from ..derive import Derived
    from ..router import Hit
    from ..script import Script

__all__ = [
    "CHAT",
    "ChatStream",
    "ChunkMaker",
    "CompletionTemplate",
    "choices_json",
    "completion_json",
    "parse_chat",
    "usage_json",
]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_KNOWN_ROLES = frozenset(_ROLES)
_JSON_TYPE = JSON_HEADERS[0]
_NO_LOGPROBS = '{"content":[],"refusal":null}'  # the role chunk's, when logprobs are asked


# -- requests ---------------------------------------------------------------------------------


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
        return invalid_type("model", "a string", model)
    if "messages" not in body:
        return RequestError(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        return invalid_type("messages", "an array", messages)
    return RequestError(
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        param="messages",
        code="empty_array",
    )


def parse_chat(raw: bytes, headers: Mapping[str, str], default_model: str | None = None) -> Request:
    """Parse and check a Chat Completions body; raise RequestError as OpenAI would answer."""
    body = parse_json_object(raw)
    model = body.get("model", default_model)
    messages = body.get("messages")
    if type(model) is not str or type(messages) is not list or not messages:
        raise _bad_model_or_messages(body, model)
    user_text: str | None = None
    system_text: str | None = None
    prompt_tokens = 3
    for message in messages:
        if type(message) is not dict:
            raise invalid_type(f"messages[{messages.index(message)}]", "an object", message)
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
            raise invalid_type(f"messages[{i}].content", "one of a string or array of objects", content)
        if role == "user":
            user_text = text
        elif system_text is None and (role == "system" or role == "developer"):
            system_text = text
        prompt_tokens += 3 + count_tokens(text)
        if len(message) > 2 or "content" not in message:  # keys beside role and content: a name, tool calls
            prompt_tokens += _more_tokens(message)
    stream = stream_flag(body)
    request = Request("chat", body, model, stream, headers, user_text, system_text, prompt_tokens)
    if "stream_options" in body:
        read_stream_options(body, request)
    if len(body) > 2:  # more than model and messages: the rarer keys
        tools = body.get("tools")
        if type(tools) is list:
            request.tools = _tool_names(tools)
        cap = body.get("max_completion_tokens", body.get("max_tokens"))
        if type(cap) is int:
            request.max_tokens = cap
        if "stop" in body:
            read_stop(body, request)
        if "logprobs" in body or "top_logprobs" in body:
            request.logprobs = _read_logprobs(body)
        if "n" in body:
            read_n(body, request)
        seed = body.get("seed")
        if type(seed) is int:
            request.seed = seed
    return request


def _read_logprobs(body: dict[str, Any]) -> int | None:
    """`logprobs` and `top_logprobs` as OpenAI checks them: how many alternatives, or None (not asked)."""
    asked, top = body.get("logprobs"), body.get("top_logprobs")
    if asked is not None and type(asked) is not bool:
        raise invalid_type("logprobs", "a boolean", asked)
    if top is not None:
        if type(top) is not int:
            raise invalid_type("top_logprobs", "an integer", top)
        if not 0 <= top <= MAX_TOP:
            raise RequestError(
                f"Invalid 'top_logprobs': integer {'below minimum' if top < 0 else 'above maximum'} value. "
                f"Expected a value {'>= 0' if top < 0 else f'<= {MAX_TOP}'}, but got {top} instead.",
                param="top_logprobs",
                code="integer_below_min_value" if top < 0 else "integer_above_max_value",
            )
        if not asked:
            raise RequestError(
                "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is given.",
                param="top_logprobs",
                code="invalid_value",
            )
    return (top or 0) if asked else None


def _tool_names(tools: list[Any]) -> tuple[str, ...]:
    names = (t.get("function", {}).get("name") for t in tools if isinstance(t, dict))
    return tuple(n for n in names if isinstance(n, str))


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


@dataclass(frozen=True, slots=True)
class _Compiled:
    """What chat compiles of a reply at load: the choices JSON and the body template, when fixed."""

    choices: str | None
    template: CompletionTemplate | None


# -- streams ----------------------------------------------------------------------------------


class ChunkMaker:
    """Builds the `chat.completion.chunk` payloads of one stream.

    The parts every chunk shares are encoded once; a chunk is then a few string joins,
    which keeps long streams cheap.
    """

    __slots__ = ("_ends", "_head", "_tail")

    def __init__(
        self,
        *,
        id: str,
        created: int,
        model: str,
        fingerprint: str | None,
        include_usage: bool,
        obfuscation: Sequence[str] | None,
    ) -> None:
        self._head = (
            f'{{"id":{dumps(id)},"object":"chat.completion.chunk","created":{created},"model":{dumps(model)},'
            f'"service_tier":"default","system_fingerprint":{dumps(fingerprint)},"choices":['
        )
        self._tail = ',"usage":null' if include_usage else ""
        # The end of chunk n is _ends[n % len(_ends)], made once per stream.
        self._ends = tuple(f',"obfuscation":"{o}"}}' for o in obfuscation) if obfuscation else ("}",)

    def _end(self, n: int) -> str:
        return self._ends[n % len(self._ends)]

    def chunk(
        self, n: int, delta: str, finish_reason: str | None = None, logprobs: str | None = None, index: int = 0
    ) -> str:
        """Chunk number `n` with a delta given as JSON text (and `logprobs`, when asked, as JSON text),
        for choice `index`."""
        finish = "null" if finish_reason is None else f'"{finish_reason}"'
        more = "" if logprobs is None else f',"logprobs":{logprobs}'
        return (
            f'{self._head}{{"index":{index},"delta":{delta}{more},"finish_reason":{finish}}}]{self._tail}{self._end(n)}'
        )

    def content_chunk(self, n: int, text: str) -> str:
        """`chunk(n, content_delta(text))` in one step (the hot path of a stream)."""
        return (
            f'{self._head}{{"index":0,"delta":{{"content":{string(text)}}},"finish_reason":null}}]'
            f"{self._tail}{self._end(n)}"
        )

    def usage_chunk(self, n: int, usage: str) -> str:
        return f'{self._head}],"usage":{usage}{self._end(n)}'

    @staticmethod
    def role_delta(content_null: bool = False, refusal_null: bool = False) -> str:
        """The first delta; `refusal_null`: with `"refusal":null`, as 2025 traffic sends it (shared/wire.md
        section 2)."""
        content = "null" if content_null else '""'
        refusal = ',"refusal":null' if refusal_null else ""
        return f'{{"role":"assistant","content":{content}{refusal}}}'

    @staticmethod
    def content_delta(text: str) -> str:
        return f'{{"content":{string(text)}}}'

    @staticmethod
    def tool_head_delta(index: int, call: ToolCallWire) -> str:
        return (
            f'{{"tool_calls":[{{"index":{index},"id":{string(call.id)},"type":"function",'
            f'"function":{{"name":{string(call.name)},"arguments":""}}}}]}}'
        )

    @staticmethod
    def tool_args_delta(index: int, fragment: str) -> str:
        return f'{{"tool_calls":[{{"index":{index},"function":{{"arguments":{string(fragment)}}}}}]}}'


class ChatStream(Stream):
    """`data: <chunk>` events: the role chunk, content and tool-call deltas, finish, usage, `[DONE]`."""

    def __init__(self, call: Call) -> None:
        self.call = call
        request = call.request
        self.maker = ChunkMaker(
            id=call.script.answer_id or call.derived.completion_id,
            created=call.derived.created,
            model=call.model,
            fingerprint=call.fingerprint,
            include_usage=request.include_usage,
            obfuscation=obfuscation_pool(call.derived.seed) if request.include_obfuscation else None,
        )
        # `n` choices: one per chunk, round-robin (shared/wire.md section 2, "n>1"), usage counting them all.
        self.choices: tuple[Choice, ...] | None = None  # the reply's `choices`, each its own; None: all the call's
        if call.script.choices is None:  # every choice is the call's answer
            completion = call.completion_tokens * request.n
            self.deltas = (len(call.pieces) + sum(1 + len(t.fragments) for t in call.tools)) * request.n
        else:
            self.choices = choices_of(call)
            completion = completion_tokens(self.choices)
            self.deltas = sum(c.chunks for c in self.choices)
        self.usage = usage_json(call.prompt_tokens, completion) if request.include_usage else None

    def _role(self, index: int = 0, choice: Choice | None = None) -> str:
        call = self.call
        pieces, tools = (call.pieces, call.tools) if choice is None else (choice.pieces, choice.tools)
        if call.script.refusal:  # a refusal's first delta (shared/wire.md section 2, "Refusal")
            delta = '{"role":"assistant","content":null,"refusal":""}'
        else:
            delta = self.maker.role_delta(not pieces and bool(tools), call.script.refusal_null)
        logprobs = None if call.request.logprobs is None else _NO_LOGPROBS
        return self.maker.chunk(index, delta, logprobs=logprobs, index=index)

    def _deltas(self, pieces: tuple[str, ...], tools: tuple[ToolCallWire, ...]) -> Iterator[str]:
        maker = self.maker
        if self.call.script.refusal:
            for piece in pieces:
                yield f'{{"refusal":{string(piece)}}}'
        else:
            for piece in pieces:
                yield maker.content_delta(piece)
        for index, tool in enumerate(tools):
            yield maker.tool_head_delta(index, tool)
            for fragment in tool.fragments:
                yield maker.tool_args_delta(index, fragment)

    def _choice_deltas(self, choice: Choice) -> Iterator[tuple[str, str | None]]:
        """A choice's deltas, each with its logprobs when asked (shared/wire.md section 2, "Logprobs"):
        a content chunk carries its tokens', a tool-call chunk none."""
        top = self.call.request.logprobs
        if top is None:
            for delta in self._deltas(choice.pieces, choice.tools):
                yield delta, None
            return
        seed, start, pieces = self.call.derived.seed, 0, choice.pieces
        for j, delta in enumerate(self._deltas(pieces, choice.tools)):
            if j < len(pieces):
                yield delta, logprobs_json((pieces[j],), seed, top, start)
                start += len(split_tokens(pieces[j]))
            else:
                yield delta, None

    def events(self) -> Iterator[Event]:
        maker, offsets, call = self.maker, self.call.offsets, self.call
        n = call.request.n  # the next chunk's number (it picks the obfuscation padding), after the role chunks
        if self.choices is None:  # every choice the call's answer: each delta made once, sent for each index
            choices = range(n)
            for i in choices:
                yield Event(offsets[0], self._role(i), part="head")
            same = Choice(call.content, call.pieces, call.tools, call.finish_reason, call.completion_tokens)
            for j, (delta, logprobs) in enumerate(self._choice_deltas(same)):
                for i in choices:
                    yield Event(offsets[j], maker.chunk(n, delta, logprobs=logprobs, index=i), part="delta")
                    n += 1
            for i in choices:
                yield Event(offsets[-1], maker.chunk(n, "{}", call.finish_reason, index=i), part="finish")
                n += 1
        else:
            for i, choice in enumerate(self.choices):
                yield Event(offsets[0], self._role(i, choice), part="head")
            for at, i, said in interleave(self.choices, offsets, self._choice_deltas):
                if said is None:
                    yield Event(at, maker.chunk(n, "{}", self.choices[i].finish_reason, index=i), part="finish")
                else:
                    yield Event(at, maker.chunk(n, said[0], logprobs=said[1], index=i), part="delta")
                n += 1
        last = offsets[-1]
        if self.usage is not None:
            yield Event(last, maker.usage_chunk(n, self.usage), part="tail")
        yield Event(last, "[DONE]", part="done")

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        if kind == "error_event":
            error = {"message": message or SERVER_ERROR, "type": "server_error", "param": None, "code": None}
            return [Event(at, dumps({"error": error}))]
        broken = self.maker.chunk(0, self.maker.content_delta("broken"))
        return [Event(at, broken[: len(broken) // 2])]  # malformed: half a chunk

    def plain_writes(self) -> Iterator[Write] | None:
        """`frame(events())` with no fault or framing, built straight to bytes: one generator and one
        tuple per event instead of three and two, for the common stream (same bytes, same times)."""
        call, script = self.call, self.call.script
        if call.request.logprobs is not None or call.request.n > 1 or script.refusal or script.choices is not None:
            return None  # the rarer streams: events() says them
        return self._plain_writes()

    def _plain_writes(self) -> Iterator[Write]:
        new = tuple.__new__  # Write(at, data) without NamedTuple's Python-level __new__
        maker, offsets, call = self.maker, self.call.offsets, self.call
        yield new(Write, (offsets[0], f"data: {self._role()}\n\n".encode(), False))
        content = maker.content_chunk
        n = 0
        for piece in call.pieces:
            n += 1
            yield new(Write, (offsets[n - 1], f"data: {content(n, piece)}\n\n".encode(), False))
        if call.tools:
            for delta in self._deltas((), call.tools):
                n += 1
                yield Write(offsets[n - 1], f"data: {maker.chunk(n, delta)}\n\n".encode())
        last = offsets[-1]
        yield Write(last, f"data: {maker.chunk(n + 1, '{}', call.finish_reason)}\n\n".encode())
        if self.usage is not None:
            yield Write(last, f"data: {maker.usage_chunk(n + 2, self.usage)}\n\n".encode())
        yield Write(last, b"data: [DONE]\n\n")


# -- the dialect ------------------------------------------------------------------------------


class ChatDialect(Dialect):
    name = "chat"
    id_prefix = "chatcmpl-"
    routes = (
        Route("POST", "/v1/chat/completions"),
        Route("POST", "/openai/deployments/{deployment}/chat/completions"),  # Azure: the deployment is the model
    )

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        return parse_chat(body, headers, params.get("deployment"))

    def prepare(self, script: Script) -> None:
        choices = None
        # Made per call: generated text, derived tool-call ids, and `choices` (each choice says its own).
        if script.generate is None and script.choices is None and all(t.id is not None for t in script.tools):
            tools = [ToolCallWire(t.id or "", t.name, t.arguments) for t in script.tools]
            content = script.content if script.content is not None or not tools else None
            choices = choices_json(content, tools, script.finish_reason, refusal=script.refusal)
        fixed = choices is not None and script.completion_tokens is not None
        template = (
            CompletionTemplate.of(choices, script.completion_tokens)  # type: ignore[arg-type]
            if fixed and script.transcript is None and script.error is None
            else None
        )
        script.compiled[self.name] = _Compiled(choices, template)

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        script = hit.reply
        template = script.compiled[self.name].template
        if template is None or request.stream or script.fault is not None:
            return None
        if request.stop or (request.max_tokens is not None and request.max_tokens < (script.sent_tokens or 0)):
            return None  # the request's limits cut this reply (mockllm/limits.py): the general path
        if request.logprobs is not None or request.n > 1:
            return None
        # The usual non-streamed answer: the body compiled at load, filled in.
        delay = 0.0 if not scale or script.instant else script.offsets(max(script.chunk_count, 1), rng, scale)[-1]
        prompt = script.usage_prompt
        if prompt is None:
            prompt = request.prompt_tokens
        body = template.body(
            f'"{script.answer_id or derived.completion_id}"',  # letters, digits, `_-.:+/=`: nothing to escape
            derived.created,
            json_text(script.model or request.model),
            prompt,
            json_text(script.system_fingerprint or fingerprint(derived.seed)),
        )
        return Answer(200, headers(_JSON_TYPE, derived.request_id, delay), body, delay)

    def body(self, call: Call) -> bytes:
        asked, n = call.request.logprobs, call.request.n
        as_compiled = not call.limited and asked is None and n == 1  # the reply's choices compiled at load
        choices = call.script.compiled[self.name].choices if as_compiled else None
        completion = call.completion_tokens * n  # usage counts every choice
        if choices is None and call.script.choices is None:  # `n` times the call's answer
            content = call.content if call.content is not None or not call.tools else None
            logprobs = "null" if asked is None else logprobs_json(call.pieces, call.derived.seed, asked)
            choices = choices_json(content, call.tools, call.finish_reason, logprobs, n, call.script.refusal)
        elif choices is None:  # each choice its own (mockllm/choices.py)
            made = choices_of(call)
            completion = completion_tokens(made)
            said: dict[int, str] = {}  # a choice's JSON by the choice (`n` above len(choices) repeats them)
            for choice in made:
                if id(choice) not in said:
                    logprobs = "null" if asked is None else logprobs_json(choice.pieces, call.derived.seed, asked)
                    content = choice.content if choice.content is not None or not choice.tools else None
                    said[id(choice)] = choice_json(content, choice.tools, choice.finish_reason, logprobs)
            choices = "[" + ",".join(f'{{"index":{i},{said[id(c)]}' for i, c in enumerate(made)) + "]"
        derived = call.derived
        return completion_json(
            call.script.answer_id or derived.completion_id,
            derived.created,
            call.model,
            call.fingerprint,
            choices,
            call.prompt_tokens,
            completion,
        )

    def stream(self, call: Call) -> Stream:
        return ChatStream(call)


CHAT = ChatDialect()
