"""From a routed request to an Answer: status, headers, and a body or a timed stream.

This is the core's last step and knows nothing of HTTP libraries: the adapters (the
starlette app, the in-process transports) send what it says, when it says.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from .derive import Derived
from .request import ChatRequest
from .scenario import ErrorSpec, Fault, Generate
from .script import Script
from .sse import Event, Write, frame
from .tokens import split_tokens
from .wire import (
    ERROR_DEFAULTS,
    ChunkMaker,
    ToolCallWire,
    azure_error_body,
    choices_json,
    completion_json,
    dumps,
    error_body,
    json_text,
    usage_json,
)

if TYPE_CHECKING:
    from faker import Faker

    from .journal import Entry
    from .router import Hit

__all__ = ["JSON_HEADERS", "SSE_HEADERS", "Answer", "Header", "error_answer", "plan"]

# Header names and values are bytes, as they go on the wire (latin-1): every adapter sends them as
# they are, and the ones below are the same objects on every answer.
Header = tuple[bytes, bytes]
JSON_HEADERS: tuple[Header, ...] = ((b"content-type", b"application/json"),)
SSE_HEADERS: tuple[Header, ...] = ((b"content-type", b"text/event-stream; charset=utf-8"),)
_RATE_HEADERS: tuple[Header, ...] = (
    (b"openai-version", b"2020-10-01"),
    (b"x-ratelimit-limit-requests", b"500"),
    (b"x-ratelimit-limit-tokens", b"30000"),
    (b"x-ratelimit-remaining-requests", b"499"),
    (b"x-ratelimit-remaining-tokens", b"29000"),
    (b"x-ratelimit-reset-requests", b"120ms"),
    (b"x-ratelimit-reset-tokens", b"2ms"),
)
_JSON_TYPE, _SSE_TYPE = JSON_HEADERS[0], SSE_HEADERS[0]
_NO_TOOLS: tuple[ToolCallWire, ...] = ()
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


@dataclass(slots=True)
class Answer:
    """What to send: after `delay` seconds a whole `body`, or `writes` each at its time."""

    status: int
    headers: list[Header]  # lower-case names; no content-length (the adapters add it to a whole body)
    body: bytes = b""
    delay: float = 0.0
    writes: Iterator[Write] | None = None
    abort: bool = False  # drop the connection at `delay` instead of answering
    entry: Entry | None = field(default=None, repr=False)


def error_answer(
    status: int,
    body: bytes,
    request_id: str,
    extra: list[tuple[str, str]] | None = None,
) -> Answer:
    headers = [*JSON_HEADERS, (b"x-request-id", request_id.encode())]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra or ()]
    return Answer(status, headers, body)


def plan(hit: Hit, request: ChatRequest, seed: int, scale: float) -> Answer:
    """The answer to `request` from the rule and reply the router picked."""
    rule, script = hit.rule, hit.reply
    derived = Derived(rule.seed if rule.seed is not None else seed, rule.key, hit.call_index)
    if rule.time_scale is not None:
        scale = rule.time_scale
    spec = script.spec
    # Only jitter draws from the timing generator, and seeding one costs more than the rest of a plan.
    rng = derived.rng("timing") if scale and script.schedule.jitter_ms else None
    fault = spec.fault
    template = script.template
    if template is not None and not request.stream and fault is None:
        # The usual non-streamed answer: the body compiled at load, filled in.
        delay = 0.0 if not scale or script.instant else script.offsets(max(script.chunk_count, 1), rng, scale)[-1]
        prompt = script.usage_prompt
        if prompt is None:
            prompt = request.prompt_tokens
        body = template.body(
            f'"{derived.completion_id}"',  # letters and digits: nothing to escape
            derived.created,
            json_text(spec.model or request.model),
            prompt,
            json_text(spec.system_fingerprint or _fingerprint(derived.seed)),
        )
        return Answer(200, _headers(_JSON_TYPE, derived.request_id, delay), body, delay)

    if spec.error is not None:
        delay = script.offsets(1, rng, scale)[0]
        answer = _scripted_error(spec.error, request, derived)
        answer.delay = delay
        return answer

    pieces = script.pieces
    content = script.content
    completion_tokens = script.completion_tokens
    if spec.generate is not None:
        content = generate_text(spec.generate, derived.number("generate"))
        pieces = tuple(split_tokens(content))
        if script.usage_completion is None:  # else completion_tokens holds it already
            completion_tokens = len(pieces)
    tools = (
        [ToolCallWire(t.id or derived.call_id(i), t.name, t.arguments) for i, t in enumerate(script.tools)]
        if script.tools
        else _NO_TOOLS
    )
    prompt = script.usage_prompt
    if prompt is None:
        prompt = request.prompt_tokens
    completion_tokens = completion_tokens or 0
    model = spec.model or request.model
    fingerprint = spec.system_fingerprint or _fingerprint(derived.seed)

    n_chunks = len(script.transcript) if script.transcript is not None else len(pieces) + script.tool_chunks
    offsets = script.offsets(max(n_chunks, 1), rng, scale)

    if not request.stream and script.transcript is None:
        headers = _headers(_JSON_TYPE, derived.request_id, offsets[-1])
        if fault is not None and fault.kind in ("disconnect", "stall"):
            at = offsets[-1] + (fault.stall_ms / 1000 if fault.kind == "stall" else 0.0)
            return Answer(200, headers, delay=at, abort=True)
        choices = script.choices
        if choices is None:
            choices = choices_json(content if content is not None or not tools else None, tools, script.finish_reason)
        body = completion_json(
            derived.completion_id, derived.created, model, fingerprint, choices, prompt, completion_tokens
        )
        return Answer(200, headers, body, offsets[-1])

    usage = usage_json(prompt, completion_tokens)
    headers = _headers(_SSE_TYPE, derived.request_id, offsets[0])
    if script.transcript is not None:
        events = _transcript_events(script.transcript, offsets, fault)
    else:
        maker = ChunkMaker(
            id=derived.completion_id,
            created=derived.created,
            model=model,
            fingerprint=fingerprint,
            include_usage=request.include_usage,
            obfuscation=_obfuscation_pool(derived.seed) if request.include_obfuscation else None,
        )
        stream_usage = usage if request.include_usage else None
        if fault is None and spec.framing is None:
            # The common stream, straight to bytes; tests/test_raw_wire.py checks it gives what
            # frame(_chat_events(...)) gives.
            return Answer(200, headers, writes=_plain_writes(maker, pieces, tools, script, offsets, stream_usage))
        events = _chat_events(maker, pieces, tools, script, offsets, stream_usage, fault)
    return Answer(200, headers, writes=frame(events, spec.framing))


# -- streams -------------------------------------------------------------------------

_POSITIONAL = ("disconnect", "error_event", "stall", "malformed")


def _chat_events(
    maker: ChunkMaker,
    pieces: tuple[str, ...],
    tools: Sequence[ToolCallWire],
    script: Script,
    offsets: Sequence[float],
    usage: str | None,
    fault: Fault | None,
) -> Iterator[Event]:
    yield Event(offsets[0], maker.chunk(0, maker.role_delta(content_null=not pieces and bool(tools))))
    stop_at = fault.after_chunks if fault is not None and fault.kind in _POSITIONAL else -1
    n = 0
    for delta in _deltas(maker, pieces, tools, script):
        if n == stop_at:
            ended = yield from _fault_events(fault, offsets[n], maker)
            if ended:
                return
        n += 1
        yield Event(offsets[n - 1], maker.chunk(n, delta))
    last = offsets[-1]
    if stop_at >= n:
        ended = yield from _fault_events(fault, last, maker)
        if ended:
            return
    kind = fault.kind if fault is not None else None
    if kind != "no_finish":
        yield Event(last, maker.chunk(n + 1, "{}", script.finish_reason))
    if usage is not None:
        yield Event(last, maker.usage_chunk(n + 2, usage))
    if kind != "no_done":
        yield Event(last, "[DONE]")


def _plain_writes(
    maker: ChunkMaker,
    pieces: tuple[str, ...],
    tools: Sequence[ToolCallWire],
    script: Script,
    offsets: Sequence[float],
    usage: str | None,
) -> Iterator[Write]:
    """`frame(_chat_events(...), None)` without a fault, built straight to bytes: one generator and
    one tuple per event instead of three and two, for the common stream (same bytes, same times)."""
    new = tuple.__new__  # Write(at, data) without NamedTuple's Python-level __new__
    role = maker.chunk(0, maker.role_delta(not pieces and bool(tools)))
    yield new(Write, (offsets[0], f"data: {role}\n\n".encode(), False))
    content = maker.content_chunk
    n = 0
    for piece in pieces:
        n += 1
        yield new(Write, (offsets[n - 1], f"data: {content(n, piece)}\n\n".encode(), False))
    if tools:
        for delta in _deltas(maker, (), tools, script):
            n += 1
            yield Write(offsets[n - 1], f"data: {maker.chunk(n, delta)}\n\n".encode())
    last = offsets[-1]
    yield Write(last, f"data: {maker.chunk(n + 1, '{}', script.finish_reason)}\n\n".encode())
    if usage is not None:
        yield Write(last, f"data: {maker.usage_chunk(n + 2, usage)}\n\n".encode())
    yield Write(last, b"data: [DONE]\n\n")


def _deltas(maker: ChunkMaker, pieces: tuple[str, ...], tools: Sequence[ToolCallWire], script: Script) -> Iterator[str]:
    for piece in pieces:
        yield maker.content_delta(piece)
    for index, (call, tool) in enumerate(zip(tools, script.tools, strict=True)):
        yield maker.tool_head_delta(index, call)
        for fragment in tool.fragments:
            yield maker.tool_args_delta(index, fragment)


def _fault_events(fault: Fault | None, at: float, maker: ChunkMaker | None) -> Generator[Event, None, bool]:
    """The events a positional fault sends; the generator's value says if the stream ends."""
    assert fault is not None
    if fault.kind == "disconnect":
        yield Event(at, "", "abort")
        return True
    if fault.kind == "stall":
        yield Event(at + fault.stall_ms / 1000, "", "abort")  # a stall is never scaled
        return True
    if fault.kind == "error_event":
        message = fault.message or _SERVER_ERROR
        yield Event(at, dumps({"error": {"message": message, "type": "server_error", "param": None, "code": None}}))
        return True
    # malformed: half a chunk, then the stream goes on
    broken = (
        maker.chunk(0, maker.content_delta("broken"))
        if maker
        else '{"id":"chatcmpl-broken","choices":[{"delta":{"content":"x"}}]}'
    )
    yield Event(at, broken[: len(broken) // 2])
    return False


def _transcript_events(transcript: tuple[str, ...], offsets: Sequence[float], fault: Fault | None) -> Iterator[Event]:
    stop_at = fault.after_chunks if fault is not None and fault.kind in _POSITIONAL else -1
    for n, text in enumerate(transcript):
        if n == stop_at:
            ended = yield from _fault_events(fault, offsets[n], None)
            if ended:
                return
        yield Event(offsets[n], text, "raw")
    if stop_at >= len(transcript):
        yield from _fault_events(fault, offsets[-1], None)


def _headers(content_type: Header, request_id: str, seconds: float) -> list[Header]:
    """An answer's headers; `seconds` until its first byte is the processing time it reports."""
    processing = _NO_PROCESSING if not seconds else (b"openai-processing-ms", b"%d" % round(seconds * 1000))
    return [content_type, (b"x-request-id", request_id.encode()), *_RATE_HEADERS, processing]


_NO_PROCESSING = (b"openai-processing-ms", b"0")


@lru_cache(maxsize=64)
def _fingerprint(seed: int) -> str:
    return Derived(seed, "", 0).fingerprint  # per seed, not per call


@lru_cache(maxsize=64)
def _obfuscation_pool(seed: int) -> tuple[str, ...]:
    """Padding strings of 0-15 characters, like the real `obfuscation` field, per seed."""
    rng = Derived(seed, "obfuscation", 0).rng("pool")
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return tuple("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15))) for _ in range(16))


# -- errors ---------------------------------------------------------------------------


def _scripted_error(spec: ErrorSpec, request: ChatRequest, derived: Derived) -> Answer:
    status = spec.status
    kind, code, message = ERROR_DEFAULTS.get(
        status, ("invalid_request_error" if status < 500 else "server_error", None, f"Error {status}.")
    )
    text = spec.message or message.format(model=request.model)
    if "code" in spec.model_fields_set:
        code = None if spec.code is None else str(spec.code)
    extra = dict((k.lower(), v) for k, v in spec.headers.items())
    if status == 429:
        extra.setdefault("retry-after", "1")
    if spec.flavour == "azure":
        if not spec.message and status == 429:
            text = (
                "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
                "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after "
                f"{extra['retry-after']} seconds."
            )
        body = azure_error_body(str(spec.code) if spec.code is not None else str(status), text)
    else:
        body = error_body(text, spec.type or kind, spec.param, code)
    return error_answer(status, body, derived.request_id, list(extra.items()))


# -- generated text -------------------------------------------------------------------

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
