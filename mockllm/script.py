"""A reply compiled once, when its scenario loads, shaped like no API: the neutral reply.

Text pieces (cut as they stream), tool calls with their argument fragments, the finish, usage
overrides, the schedule, and a verbatim transcript. Each dialect may compile more of it for its
own wire format (`compiled`, filled by `Dialect.prepare` when the dialect first answers with it).
Only what depends on the call (derived ids, generated text, the request's own token count) is
left for request time.

Memory: a recording of megabytes holds thousands of these, so a Script keeps only what answers
use. The validated `Reply` is let go (its pydantic models cost more than the rest of a Script);
the text pieces are interned, as the same words recur across replies; and a dialect compiles
its body only for the replies it is asked for (bench/loading.py measures the whole load).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .dialects.openai import dumps
from .scenario import ErrorSpec, Fault, Framing, Generate, Reply, ToolCall
from .sse import transcript_events
from .template import Template, compile_template
from .timing import Schedule, resolve
from .tokens import count_tokens, split_tokens

__all__ = ["Script", "TextTemplate", "ToolScript", "compile_reply"]


@dataclass(frozen=True, slots=True)
class ToolScript:
    name: str
    arguments: str  # JSON text, as the wire carries it
    fragments: tuple[str, ...]  # the arguments cut as they stream
    id: str | None  # None: derived per call
    template: Template | None = None  # arguments that quote the request (mockllm/template.py)
    from_schema: bool = False  # arguments left out: made per call for the offered tool's schema
    item_id: str | None = None  # Responses: the function_call item's id (None: derived per call)


@dataclass(frozen=True, slots=True)
class TextTemplate:
    """A reply text that quotes the request: `content` or `refusal` (one template, cut into tokens
    once filled in), or `chunks` (a template per chunk, each one piece)."""

    parts: tuple[Template, ...]
    split: bool


@dataclass(frozen=True, slots=True)
class Script:
    content: str | None  # None: no text (tool calls only), or generated per call
    pieces: tuple[str, ...]  # the content deltas, in order
    tools: tuple[ToolScript, ...]
    transcript: tuple[str, ...] | None  # the events of a verbatim `sse` reply
    schedule: Schedule
    finish_reason: str
    completion_tokens: int | None  # `usage.completion_tokens`, or counted; None: counted per call (generated text)
    sent_tokens: int | None  # the tokens the reply sends (its text and tool calls; at most its usage's); None: per call
    tool_chunks: int  # stream chunks the tool calls take (a head, then the fragments, per call)
    usage_prompt: int | None  # `usage.prompt_tokens` as the reply gives it (None: counted per request)
    usage_completion: int | None  # `usage.completion_tokens` as the reply gives it
    chunk_count: int  # stream chunks of the reply (content pieces and tool-call parts) when fixed
    instant: bool  # the schedule never waits (at any time scale)
    # The reply's keys that answers read as given.
    refusal: bool  # the text (content, pieces) is a refusal
    vectors: dict[str, tuple[float, ...]] | None  # embeddings: the vectors pinned for these input texts
    text_template: TextTemplate | None  # the text quotes the request: made per call (mockllm/template.py)
    made_per_call: bool  # the text or tool-call arguments are made for each request (templates, schemas)
    choices: tuple[str, ...] | None  # with `n` > 1 (chat, legacy completions): choice i says choices[i % len]
    choice_templates: tuple[Template, ...] | None  # the choices, when one quotes the request: filled per call
    refusal_null: bool  # chat streams: the role delta carries `"refusal": null`
    error: ErrorSpec | None
    fault: Fault | None
    generate: Generate | None
    model: str | None  # the model name the answer reports (None: the request's)
    system_fingerprint: str | None
    framing: Framing | None
    answer_id: str | None  # the answer's own id (a recording's); None: derived per call
    message_id: str | None  # Responses: the output message item's id; None: derived per call
    # What each dialect compiled of this reply for its wire format, by dialect name: compiled by
    # the dialect the first time it is asked for (a missing key runs `Dialect.prepare`).
    # (dataclasses.replace keeps the original's: give `compiled=None` to compile afresh.)
    compiled: dict[str, Any] = field(default=None, compare=False)  # type: ignore[arg-type]
    # Offsets of a schedule without jitter, by (chunk count, time scale): the same for every call.
    fixed_offsets: dict[tuple[int, float], tuple[float, ...]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.compiled is None:
            object.__setattr__(self, "compiled", _Compiled(self))

    def offsets(self, count: int, rng: random.Random | None, scale: float) -> Sequence[float]:
        if rng is not None:
            return self.schedule.offsets(count, rng, scale)
        known = self.fixed_offsets.get((count, scale))
        if known is None:
            known = self.fixed_offsets[(count, scale)] = tuple(self.schedule.offsets(count, None, scale))
        return known


class _Compiled(dict[str, Any]):
    """By dialect name, what it compiled of one script; a dialect not yet asked compiles on first lookup.

    A hit is dict's own lookup, in C, so the fast paths pay nothing for the laziness."""

    __slots__ = ("script",)

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script

    def __missing__(self, name: str) -> Any:
        from .dialects import DIALECTS

        DIALECTS[name].prepare(self.script)
        return self.setdefault(name, None)


def compile_reply(reply: Reply, *, quoting: bool = True) -> Script:
    """The neutral reply (each dialect compiles more of it when first asked: see mockllm/dialects)."""
    content: str | None = None
    pieces: tuple[str, ...] = ()
    text_template: TextTemplate | None = None
    whole = reply.content if reply.content is not None else reply.refusal
    # quoting=False: the text is sent as written, braces and all (a test's Python reply, which made it
    # for this request already).
    fill = compile_template if quoting else _as_written
    if whole is not None:  # a refusal's text too: each dialect says it its own way
        template = fill(whole)
        content = template.parts[0] if not template.dynamic else whole
        pieces = tuple(map(sys.intern, split_tokens(content)))
        if template.dynamic:
            text_template = TextTemplate((template,), split=True)
    elif reply.chunks is not None:
        templates = tuple(map(fill, reply.chunks))
        if any(t.dynamic for t in templates):
            text_template = TextTemplate(templates, split=False)
            pieces = tuple(reply.chunks)
        else:
            pieces = tuple(sys.intern(t.parts[0]) for t in templates)
        content = "".join(pieces)
    choice_texts: tuple[str, ...] | None = None
    choice_templates: tuple[Template, ...] | None = None
    if reply.choices is not None:
        compiled = tuple(map(fill, reply.choices))
        choice_texts = tuple(raw if t.dynamic else t.parts[0] for t, raw in zip(compiled, reply.choices, strict=True))
        if any(t.dynamic for t in compiled):
            choice_templates = compiled
    if choice_texts is not None and whole is None and reply.chunks is None and reply.generate is None:
        # `choices` alone: every other API says the first
        content = choice_texts[0]
        pieces = tuple(map(sys.intern, split_tokens(content)))
        if compiled[0].dynamic:
            text_template = TextTemplate((compiled[0],), split=True)
    tools = tuple(_tool_script(call, fill) for call in reply.tool_calls or ())
    completion: int | None = None
    # Made per call: the text and the arguments that quote the request. Their counts are left to the
    # call, and None tells each dialect that what it would compile of this reply does not apply.
    per_call = text_template is not None or any(t.template is not None or t.from_schema for t in tools)
    if reply.generate is None and not per_call:
        completion = count_tokens(content or "") + sum(count_tokens(t.name) + count_tokens(t.arguments) for t in tools)
    sent = completion
    usage_completion = reply.usage.completion_tokens if reply.usage else None
    if usage_completion is not None and not per_call:
        completion = usage_completion
        if sent is not None:
            # The reply says how many tokens it sends (a recording's: the upstream counted them, under the
            # request's cap): a cap of that many does not cut it, whatever mockllm's tokenizer counts.
            sent = min(sent, usage_completion)
    tool_chunks = sum(1 + len(t.fragments) for t in tools)
    schedule = resolve(reply.timing)
    script = Script(
        content=content,
        pieces=pieces,
        tools=tools,
        transcript=tuple(transcript_events(reply.sse)) if reply.sse is not None else None,
        schedule=schedule,
        finish_reason=reply.finish_reason or ("tool_calls" if tools else "stop"),
        completion_tokens=completion,
        sent_tokens=sent,
        tool_chunks=tool_chunks,
        usage_prompt=reply.usage.prompt_tokens if reply.usage else None,
        usage_completion=usage_completion,
        chunk_count=len(pieces) + tool_chunks,
        instant=schedule.is_instant,
        refusal=reply.refusal is not None,
        text_template=text_template,
        made_per_call=per_call,
        vectors={text: tuple(v) for text, v in reply.vectors.items()} if reply.vectors is not None else None,
        choices=choice_texts,
        choice_templates=choice_templates,
        refusal_null=reply.refusal_null,
        error=reply.error,
        fault=reply.fault,
        generate=reply.generate,
        model=reply.model,
        system_fingerprint=reply.system_fingerprint,
        framing=reply.framing,
        answer_id=reply.id,
        message_id=reply.message_id,
    )
    return script


def _as_written(text: str) -> Template:
    return Template((text,))


def _tool_script(call: ToolCall, fill: Callable[[str], Template]) -> ToolScript:
    if call.arguments is None:
        return ToolScript(call.name, "{}", ("{}",), call.id, from_schema=True, item_id=call.item_id)
    args = call.arguments if isinstance(call.arguments, str) else dumps(call.arguments)
    template = fill(args)
    if not template.dynamic:
        args = template.parts[0]
    return ToolScript(
        call.name,
        args,
        tuple(split_tokens(args)) or ("",),
        call.id,
        template if template.dynamic else None,
        item_id=call.item_id,
    )
