"""From a routed request to an Answer: status, headers, and a body or a timed stream.

This is the core's last step, the same for every API: it makes the call's values once (ids,
generated text, tool-call ids, token counts, the schedule's offsets), lets the request's
dialect shape the body or the events, and inserts faults and framing around them. It knows
nothing of HTTP libraries: the adapters send what it says, when it says.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from .answer import Answer, Header
from .choices import stream_chunks
from .derive import Derived
from .dialects import CHAT_DIALECT
from .dialects.base import Call, Dialect, Stream, ToolCallWire
from .dialects.openai import JSON_HEADERS, SERVER_ERROR, SSE_HEADERS, dumps, fingerprint
from .limits import cut
from .request import Request
from .scenario import ErrorSpec, Fault, Generate
from .sse import Event, frame
from .structured import agent_turn, asked, json_text, offered_schemas, schema_in_text, tool_arguments
from .template import values
from .tokens import count_tokens, split_tokens

if TYPE_CHECKING:
    from faker import Faker

    from .router import Hit
    from .script import Script

__all__ = ["Answer", "apply_fault", "error_answer", "generate_text", "plan"]

_JSON_TYPE, _SSE_TYPE = JSON_HEADERS[0], SSE_HEADERS[0]
_VERSION: Header = (b"openai-version", b"2020-10-01")
_POSITIONAL = frozenset(("disconnect", "error_event", "stall", "malformed"))
_CLOSING = frozenset(("finish", "tail", "done"))


def error_answer(
    status: int,
    body: bytes,
    request_id: str,
    extra: list[tuple[str, str]] | None = None,
    dialect: Dialect | None = None,
) -> Answer:
    """An error (or a small JSON answer) with the headers real error answers carry: the API's request
    id header (OpenAI's `x-request-id` when no dialect is given), then its others (OpenAI's version),
    which a scenario's own header of the same name in `extra` replaces; the dialect may name the id in
    its envelope too (Dialect.error_parts)."""
    given = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra or ()]
    body, own = (dialect or CHAT_DIALECT).error_parts(body, request_id)
    names = {name for name, _ in given}
    headers = [(dialect or CHAT_DIALECT).error_type, own[0], *(header for header in own[1:] if header[0] not in names)]
    return Answer(status, headers + given, body)


def plan(hit: Hit, request: Request, dialect: Dialect, seed: int, scale: float, state: Any = None) -> Answer:
    """The answer to `request` from the rule and reply the router picked, in `dialect`'s wire format."""
    rule, script = hit.rule, hit.reply
    derived = Derived(rule.seed if rule.seed is not None else seed, rule.key, hit.call_index)
    if rule.time_scale is not None:
        scale = rule.time_scale
    # Only jitter draws from the timing generator, and seeding one costs more than the rest of a plan.
    rng = derived.rng("timing") if scale and script.schedule.jitter_ms else None
    fast = dialect.fast(hit, request, derived, rng, scale, state)
    if fast is not None:
        return fast

    if script.error is not None:
        answer = _scripted_error(script.error, request, derived, dialect)
        answer.delay = script.offsets(1, rng, scale)[0]
        return answer

    call = _call(hit, request, derived, rng, scale, state)
    fault = script.fault
    offsets = call.offsets
    if not request.stream and script.transcript is None:
        headers = dialect.headers(_JSON_TYPE, derived.request_id, offsets[-1])
        if fault is not None and fault.kind in ("disconnect", "stall"):
            at = offsets[-1] + (fault.stall_ms / 1000 if fault.kind == "stall" else 0.0)
            return Answer(200, headers, delay=at, abort=True)
        return Answer(200, headers, dialect.body(call), offsets[-1])

    headers = dialect.headers(_SSE_TYPE, derived.request_id, offsets[0])
    if script.transcript is not None:
        events = apply_fault(_transcript(script.transcript, offsets), fault, _TranscriptFaults(len(offsets)))
        return Answer(200, headers, writes=frame(events, script.framing))
    stream = dialect.stream(call)
    if fault is None and script.framing is None:
        plain = stream.plain_writes()
        if plain is not None:
            return Answer(200, headers, writes=plain)
    return Answer(
        200, headers, writes=frame(apply_fault(stream.events(), fault, stream), script.framing, dialect.line_ending)
    )


def _call(hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any) -> Call:
    """The values of this call, made once, shared by whichever dialect answers."""
    rule, script = hit.rule, hit.reply
    pieces, content, completion = script.pieces, script.content, script.completion_tokens
    tools = tuple(
        ToolCallWire(t.id or derived.call_id(i), t.name, t.arguments, t.fragments) for i, t in enumerate(script.tools)
    )
    finish, stop_sequence, limited = script.finish_reason, None, None
    # Made for this request (known at load: Script.made_per_call): what was compiled of the reply does not apply.
    quoted = script.made_per_call
    if quoted:
        content, pieces, tools = _quoted(script, request, derived)
        completion = script.usage_completion
        if completion is None:
            completion = len(pieces) + sum(count_tokens(t.name) + count_tokens(t.arguments) for t in tools)
    elif script.generate is not None:
        # The request's own `seed` makes the text: the same seed, the same text at every call (as a real
        # model's, mostly); without one, each call of the rule gets its own.
        number = (
            derived.number("generate")
            if request.seed is None
            else Derived(derived.seed, rule.key, 0).number(f"generate, seed {request.seed}")
        )
        wanted = asked(request.endpoint, request.body)
        if wanted is None and script.generate.call_tools and request.body.get("tools"):
            wanted = agent_turn(request)
        if wanted is not None and wanted.kind == "tool" and wanted.name is not None:
            # A forced tool call (`tool_choice`): the call, with arguments valid for the tool's schema.
            arguments = tool_arguments(wanted.schema, number)
            tools = (ToolCallWire(derived.call_id(0), wanted.name, arguments, tuple(split_tokens(arguments))),)
            content, pieces, finish = None, (), "tool_calls"
        elif wanted is not None:
            # A JSON answer (`response_format`, `text.format`, `responseSchema`...): valid for the schema,
            # or for the one the prompt holds when the request asks for JSON but names none (json_object).
            schema = wanted.schema if wanted.schema is not None else schema_in_text(request.system_text or "")
            content = json_text(schema, number)
        else:
            content = generate_text(script.generate, number)
        pieces = tuple(split_tokens(content)) if content is not None else ()
        if script.usage_completion is None:  # else completion_tokens holds it already
            completion = len(pieces) + sum(count_tokens(t.name) + count_tokens(t.arguments) for t in tools)
    cap = request.max_tokens
    # A cap the reply fits (Anthropic's is on every request) needs no cut: only a generated text's size,
    # or a stop sequence, needs looking at.
    if request.stop or (cap is not None and (script.sent_tokens is None or cap < script.sent_tokens)):
        limited = cut(pieces, tools, cap, request.stop)
        if limited is not None:
            pieces, tools = limited.pieces, limited.tools
            content = "".join(pieces) if content is not None or pieces else None
            finish, stop_sequence, completion = limited.finish_reason or finish, limited.stop_sequence, limited.tokens
    prompt = script.usage_prompt
    if prompt is None:
        prompt = request.prompt_tokens
    tool_chunks = sum(1 + len(t.fragments) for t in tools) if tools else 0
    count = len(script.transcript) if script.transcript is not None else len(pieces) + tool_chunks
    if script.choices is not None:  # chat and completions stream each choice's own text (mockllm/choices.py)
        count = stream_chunks(script, request) or count
    return Call(
        request=request,
        rule=rule,
        script=script,
        derived=derived,
        model=script.model or request.model,
        fingerprint=script.system_fingerprint or fingerprint(derived.seed),
        content=content,
        pieces=pieces,
        tools=tools,
        prompt_tokens=prompt,
        completion_tokens=completion or 0,
        finish_reason=finish,
        stop_sequence=stop_sequence,
        limited=limited is not None or quoted,
        offsets=script.offsets(max(count, 1), rng, scale),
        state=state,
    )


def _quoted(
    script: Script, request: Request, derived: Derived
) -> tuple[str | None, tuple[str, ...], tuple[ToolCallWire, ...]]:
    """The text and tool calls of a reply that quotes the request (mockllm/template.py), or whose
    tool-call arguments are made for the offered tool's schema."""
    given = values(request)
    content, pieces = script.content, script.pieces
    text = script.text_template
    if text is not None:
        filled = tuple(part.render(given) for part in text.parts)
        pieces = tuple(split_tokens(filled[0])) if text.split else filled
        content = filled[0] if text.split else "".join(filled)
    tools = []
    schemas: dict[str, Any] | None = None
    for i, tool in enumerate(script.tools):
        arguments = tool.arguments
        if tool.template is not None:
            arguments = tool.template.render(given, _json_escape)
        elif tool.from_schema:
            if schemas is None:
                schemas = offered_schemas(request.endpoint, request.body)
            number = derived.number(f"arguments {i}")
            arguments = tool_arguments(schemas.get(tool.name), number) if tool.name in schemas else "{}"
        fragments = tool.fragments if arguments is tool.arguments else tuple(split_tokens(arguments)) or ("",)
        tools.append(ToolCallWire(tool.id or derived.call_id(i), tool.name, arguments, fragments))
    return content, pieces, tuple(tools)


def _json_escape(text: str) -> str:
    """`text` as it goes inside a JSON string (a placeholder in tool-call arguments)."""
    return dumps(text)[1:-1]


# -- faults: one place for every dialect ---------------------------------------------------------


def apply_fault(events: Iterator[Event], fault: Fault | None, stream: Stream) -> Iterator[Event]:
    """`events` with `fault` put in: `no_finish` / `no_done` drop the events tagged so; the others
    come before content delta number `after_chunks` (or, past the stream's last delta, before the
    first closing event after it)."""
    if fault is None:
        yield from events
        return
    kind = fault.kind
    if kind not in _POSITIONAL:
        dropped = stream.dropped = "finish" if kind == "no_finish" else "done"
        yield from (event for event in events if event.part != dropped)
        return
    deltas = 0
    pending = True
    last = 0.0
    for event in events:
        last = event.at
        if pending and (
            (event.part == "delta" and deltas == fault.after_chunks)
            or (event.part in _CLOSING and deltas >= stream.deltas)
        ):
            pending = False
            ended = yield from _fault(fault, event.at, stream)
            if ended:
                return
        if event.part == "delta":
            deltas += 1
        yield event
    if pending:  # a stream with nothing after its deltas (a transcript)
        yield from _fault(fault, last, stream)


def _fault(fault: Fault, at: float, stream: Stream) -> Generator[Event, None, bool]:
    """The events of a positional fault; the generator's value says if the stream ends there."""
    if fault.kind == "disconnect":
        yield Event(at, "", "abort")
        return True
    if fault.kind == "stall":
        yield Event(at + fault.stall_ms / 1000, "", "abort")  # a stall is never scaled
        return True
    yield from stream.fault_events(fault.kind, at, fault.message)
    return fault.kind == "error_event"


def _transcript(transcript: tuple[str, ...], offsets: Any) -> Iterator[Event]:
    for n, text in enumerate(transcript):
        yield Event(offsets[n], text, "raw", part="delta")


class _TranscriptFaults(Stream):
    """The faults of a verbatim `sse` reply: OpenAI's `data:` shapes (a transcript has no dialect)."""

    def __init__(self, deltas: int) -> None:
        self.deltas = deltas  # every event of a transcript counts as a chunk

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        if kind == "error_event":
            error = {"message": message or SERVER_ERROR, "type": "server_error", "param": None, "code": None}
            return [Event(at, dumps({"error": error}))]
        broken = '{"id":"chatcmpl-broken","choices":[{"delta":{"content":"x"}}]}'
        return [Event(at, broken[: len(broken) // 2])]


# -- errors ---------------------------------------------------------------------------------------


def _scripted_error(spec: ErrorSpec, request: Request, derived: Derived, dialect: Dialect) -> Answer:
    status = spec.status
    kind, code, message = dialect.error_default(status)
    text = spec.message or message.format(model=request.model)
    if "code" in spec.model_fields_set:
        code = None if spec.code is None else str(spec.code)
    given = {k.lower(): v for k, v in spec.headers.items()}
    if status == 429:
        given.setdefault("retry-after", "1")
    extra = {k: v for k, v in given.items() if v is not None}  # null: not sent
    if spec.flavour == "azure":
        if not spec.message and status == 429:
            after = f"after {extra['retry-after']} seconds" if "retry-after" in extra else "later"
            text = (
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
                f"exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry {after}."
            )
        body = dialect.azure_error_body(str(spec.code) if spec.code is not None else str(status), text)
    else:
        body = dialect.error_body(text, spec.type or kind, spec.param, code, status=status)
    return error_answer(status, body, derived.request_id, list(extra.items()), dialect)


# -- generated text -------------------------------------------------------------------------------

_faker: Faker | None = None
_faker_lock = threading.Lock()


def generate_text(spec: Generate, seed: int) -> str:
    """Faker text; the same spec and seed give the same text in every process."""
    global _faker
    with _faker_lock:
        if _faker is None:
            from faker import Faker

            _faker = Faker("en_US")
        _faker.seed_instance(seed)
        if spec.words is not None:
            words = _faker.words(nb=spec.words)
            return " ".join(words).capitalize() + "."
        if spec.paragraphs is not None:
            return "\n\n".join(_faker.paragraphs(nb=spec.paragraphs))
        return " ".join(_faker.sentences(nb=spec.sentences or 3))
