"""The scenario file format (v1), as pydantic models.

These models are the contract users write against: keys are added, never renamed. They
only describe; the loader (`loader.py`) turns them into router rules and reports errors
with file, line and key.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .pattern import Pattern, TextCondition

__all__ = [
    "BODY_KEYS",
    "FAULT_KINDS",
    "Defaults",
    "ErrorSpec",
    "Fault",
    "Framing",
    "Generate",
    "Keepalive",
    "LimitSpec",
    "Match",
    "Reply",
    "RuleSpec",
    "ScenarioFile",
    "TextMatch",
    "Timing",
    "ToolCall",
    "ToolResultMatch",
    "TurnRange",
    "Usage",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
FaultKind = Literal["disconnect", "error_event", "stall", "malformed", "no_done", "no_finish"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
Sequence = Literal["server", "conversation"]

# The keys that say what the answer is; a rule's own body keys replace the defaults' ones.
ANSWER_ID = r"^[A-Za-z0-9_.:+/=-]{1,256}$"
BODY_KEYS = ("content", "chunks", "generate", "refusal", "tool_calls", "choices", "sse", "error", "vectors")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextMatch(_Strict):
    """A condition on a message's text: exactly one of equals, contains, regex.

    `regex` runs on RE2 (mockllm/pattern.py), in time linear in the text.
    """

    equals: str | None = None
    contains: str | None = None
    regex: str | None = None
    _condition: TextCondition = PrivateAttr()

    @model_validator(mode="after")
    def _one_kind(self) -> TextMatch:
        given = [
            (k, v)
            for k, v in (("equals", self.equals), ("contains", self.contains), ("regex", self.regex))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError("expected exactly one of equals, contains, regex")
        kind, text = given[0]
        self._condition = TextCondition(kind, text, Pattern(text) if kind == "regex" else None)
        return self

    @property
    def condition(self) -> TextCondition:
        """The condition as rules keep it."""
        return self._condition

    def test(self, text: str | None) -> bool:
        return self._condition.test(text)

    def refusal(self) -> str:
        return self._condition.refusal()


class ToolResultMatch(_Strict):
    """The conversation ends in a tool's result: of the tool `name` (a glob), whose text matches
    (at most one of equals, contains, regex); `{}` holds for any result."""

    name: str | None = None
    equals: str | None = None
    contains: str | None = None
    regex: str | None = None
    _text: TextCondition | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_kind(self) -> ToolResultMatch:
        given = {k: v for k, v in (("equals", self.equals), ("contains", self.contains), ("regex", self.regex))}
        given = {k: v for k, v in given.items() if v is not None}
        if len(given) > 1:
            raise ValueError(f"expected at most one of equals, contains, regex; got {' and '.join(given)}")
        if given:
            self._text = TextMatch.model_validate(given).condition
        return self

    @property
    def text(self) -> TextCondition | None:
        return self._text


class TurnRange(_Strict):
    """How many turns the model has had: at least `min`, at most `max` (either may be left out)."""

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> TurnRange:
        if self.min is None and self.max is None:
            raise ValueError("expected min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


Role = Literal["user", "assistant", "tool", "system"]


class Match(_Strict):
    """Conditions on a request; all given ones must hold, a left-out one holds always."""

    endpoint: str | list[str] | None = None  # an API's name (mockllm.dialects.ENDPOINTS), or several
    model: str | None = None  # a glob: "gpt-4o*"
    stream: bool | None = None
    user: TextMatch | None = None  # the last user message
    system: TextMatch | None = None  # the first system (or developer) message
    headers: dict[str, str] | None = None  # name (any case) -> exact value
    # The conversation, for the steps of an agent loop (mockllm/conversation.py reads it in each API):
    tool: str | list[str] | None = None  # the request offers a tool of this name (a glob), or of each name
    tool_result: ToolResultMatch | None = None  # the conversation ends in a tool's result
    turn: Annotated[int, Field(ge=0, strict=True)] | TurnRange | None = None  # the model's turns so far (0: its first)
    last_role: Role | None = None  # the role of the last message (tool: a tool's result)
    # Fields of the request's JSON body, each equal to the request's as JSON (what a recording matches on)
    body: dict[str, Any] | None = None

    @field_validator("tool")
    @classmethod
    def _some_tool(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("expected at least one tool name")
        return value

    @field_validator("endpoint")
    @classmethod
    def _known_endpoints(cls, value: str | list[str] | None) -> str | list[str] | None:
        from .dialects import ENDPOINTS

        names = [value] if isinstance(value, str) else value or []
        if isinstance(value, list) and not value:
            raise ValueError(f"expected at least one endpoint of: {', '.join(ENDPOINTS)}")
        for name in names:
            if name not in ENDPOINTS:
                raise ValueError(f"unknown endpoint {name!r}; known: {', '.join(ENDPOINTS)}")
        return value

    @property
    def endpoints(self) -> tuple[str, ...] | None:
        """The APIs this rule answers (None: every one)."""
        return (self.endpoint,) if isinstance(self.endpoint, str) else tuple(self.endpoint or ()) or None


class ToolCall(_Strict):
    name: str
    # Left out: made per call, valid for the schema of the offered tool of that name ({} when none is).
    arguments: dict[str, Any] | str | None = None
    id: str | None = None
    item_id: Annotated[str, Field(pattern=ANSWER_ID)] | None = None  # Responses: the function_call item's id (fc_...)


class Usage(_Strict):
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)


class Generate(_Strict):
    """Faker text from the seed: one of sentences, words, paragraphs (default 3 sentences)."""

    sentences: int | None = Field(default=None, ge=1, le=1000)
    words: int | None = Field(default=None, ge=1, le=10000)
    paragraphs: int | None = Field(default=None, ge=1, le=100)
    # As an agent's model: call the first offered tool until the conversation ends in a tool result,
    # then answer in text (mockllm/structured.py, agent_turn). The bundled catch-all does.
    call_tools: bool = False

    @model_validator(mode="after")
    def _at_most_one(self) -> Generate:
        if sum(v is not None for v in (self.sentences, self.words, self.paragraphs)) > 1:
            raise ValueError("expected only one of sentences, words, paragraphs")
        return self


class Timing(_Strict):
    """When chunks are sent, in milliseconds from the request's arrival."""

    preset: str | None = None  # a named profile, see timing.PRESETS
    ttft_ms: float | None = Field(default=None, ge=0)
    chunk_ms: float | list[float] | None = None
    jitter_ms: float | None = Field(default=None, ge=0)
    total_ms: float | None = Field(default=None, ge=0)

    @field_validator("chunk_ms")
    @classmethod
    def _non_negative(cls, value: float | list[float] | None) -> float | list[float] | None:
        values = value if isinstance(value, list) else [value] if value is not None else []
        if any(v < 0 for v in values):
            raise ValueError("expected gaps of 0 ms or more")
        if isinstance(value, list) and not value:
            raise ValueError("expected at least one gap in the list")
        return value

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        from .timing import PRESETS

        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {', '.join(sorted(PRESETS))}")
        return value

    @model_validator(mode="after")
    def _total_or_gap(self) -> Timing:
        if self.total_ms is not None and self.chunk_ms is not None:
            raise ValueError("expected chunk_ms or total_ms, not both")
        return self


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")


class ErrorSpec(_Strict):
    """An HTTP error answer; left-out fields take OpenAI's values for the status."""

    status: int = Field(ge=400, le=599)
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    # A value of null sends no such header: `retry-after: null` for a 429 that says nothing of when to
    # retry (a recording's), where the fake would send `retry-after: 1`.
    headers: dict[str, str | None] = Field(default_factory=dict)
    flavour: Literal["openai", "azure"] = "openai"

    @field_validator("headers")
    @classmethod
    def _sendable(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for name, text in value.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
            if text is not None and _UNSENDABLE.search(text):
                raise ValueError(
                    f"the value of {name} ({text!r}) has a character an HTTP header cannot carry"
                    " (a line break, a control character, or one outside Latin-1)"
                )
        return value

    @field_validator("status")
    @classmethod
    def _not_reserved(cls, value: int) -> int:
        if value == 418:
            raise ValueError("418 is reserved for 'no rule matched'; pick another status")
        return value


class Fault(_Strict):
    """A failure in the middle of a stream, after `after_chunks` content chunks."""

    kind: FaultKind
    after_chunks: int = Field(default=0, ge=0)
    stall_ms: float = Field(default=30_000, gt=0)  # never scaled: a stall must stay a stall
    message: str | None = None  # for error_event


class Keepalive(_Strict):
    every_ms: float = Field(gt=0)
    text: str = "keep-alive"


class Framing(_Strict):
    """How the SSE bytes are laid out and cut into network writes."""

    line_ending: Literal["lf", "crlf", "cr"] = "lf"
    split: int | None = Field(default=None, ge=1)  # cut every write after N bytes
    coalesce: int | None = Field(default=None, ge=1)  # N events per write
    keepalive: Keepalive | None = None
    data_prefix: str = "data: "
    trailing_blank_line: bool = True  # false: the last event lacks its blank line


class Reply(_Strict):
    """One answer. Body keys: content | chunks | generate | refusal | sse | error, and tool_calls."""

    content: str | None = None
    chunks: list[str] | None = None
    generate: Generate | None = None
    refusal: str | None = None  # the model refuses, in each API's form (chat `refusal`, Responses' refusal part)
    # chat and legacy completions with `n` > 1: choice i says choices[i % len]; the body key stays the
    # first choice's text (and what every other API answers)
    choices: list[str] | None = Field(default=None, min_length=1)
    refusal_null: bool = False  # chat streams: the first delta carries `"refusal": null`, as 2025 traffic does
    vectors: dict[str, list[float]] | None = None  # embeddings: an input text -> the vector sent for it
    tool_calls: list[ToolCall] | None = None
    sse: str | None = None
    error: ErrorSpec | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    model: str | None = None  # the model name the answer reports
    system_fingerprint: str | None = None
    # The answer's own ids, as a recording keeps them: a client sends them back (previous_response_id,
    # Anthropic's thread continue, Responses' output items as input), so a replay must say the same ones.
    # Letters, digits and `_-.:+/=` only (every API's ids are): they go into compiled bodies unescaped.
    id: Annotated[str, Field(pattern=ANSWER_ID)] | None = None
    message_id: Annotated[str, Field(pattern=ANSWER_ID)] | None = None  # Responses: the output message item's id
    timing: Timing | None = None
    fault: Fault | None = None
    framing: Framing | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Reply:
        keys = ("content", "chunks", "generate", "refusal", "sse", "error")
        texts = [k for k in keys if getattr(self, k) is not None]
        if len(texts) > 1:
            raise ValueError(f"expected one of {', '.join(keys)}; got {' and '.join(texts)}")
        if self.tool_calls is not None and texts and texts[0] in ("refusal", "sse", "error"):
            raise ValueError(f"tool_calls cannot go with {texts[0]}")
        if self.choices is not None and texts and texts[0] in ("refusal", "sse", "error"):
            raise ValueError(f"choices cannot go with {texts[0]}")
        return self

    @property
    def has_body(self) -> bool:
        return any(getattr(self, k) is not None for k in BODY_KEYS)


class Defaults(Reply):
    """Merged into every rule: the rule's keys win; timing and framing merge key by key."""

    seed: int | None = None

    @model_validator(mode="after")
    def _no_ids(self) -> Defaults:
        given = [key for key in ("id", "message_id") if getattr(self, key) is not None]
        if given:
            raise ValueError(f"{' and '.join(given)} cannot be a default: every answer would have the same id")
        return self


class RuleSpec(_Strict):
    name: str | None = None
    match: Match = Field(default_factory=Match)
    times: int | None = Field(default=None, ge=1)
    priority: int = 0  # higher first; the same priority keeps file order
    seed: int | None = None
    reply: Reply | None = None
    replies: list[Reply] | None = Field(default=None, min_length=1)
    # How `replies` and `times` count: per server (every request, in arrival order), or per conversation
    # (each conversation from the start; see mockllm/conversation.py for how one is told apart).
    # None: the file's `sequence`, else per server.
    sequence: Sequence | None = None
    optional: bool = False  # the plugin's assert_all_used does not report it unused

    @model_validator(mode="after")
    def _reply_or_replies(self) -> RuleSpec:
        if (self.reply is None) == (self.replies is None):
            raise ValueError("expected either reply or replies")
        return self


class LimitSpec(_Strict):
    """A quota, as a provider enforces it (mockllm/quota.py): past it, the API's 429 with its rate-limit headers.

    A window of `window_s` seconds starts with the first request it admits, admits
    `requests_per_minute` requests and `tokens_per_minute` tokens (prompt plus the output the request
    may ask for), then frees all at once.
    """

    model: str | None = None  # a glob on the request's model; left out: every model
    per: Literal["model", "api_key"] = "model"  # whose quota: each model's, or each API key's (all its models)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    window_s: float = Field(default=60, gt=0, le=86_400)  # the window's length ("minute"): short ones for tests

    @model_validator(mode="after")
    def _counts_something(self) -> LimitSpec:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("expected requests_per_minute, tokens_per_minute or both")
        return self


class ScenarioHead(_Strict):
    """A scenario file's keys but its rules (validated on their own when the rules load as they parse)."""

    version: Literal[1]
    defaults: Defaults | None = None
    time_scale: float | None = Field(default=None, ge=0)  # overrides the server's
    strict: bool = False  # refuse what the real API refuses: unknown fields, values out of range
    sequence: Sequence = "server"  # every rule's, unless it says its own
    limits: list[LimitSpec] | None = None  # quotas over every request (mockllm/quota.py)


class ScenarioFile(ScenarioHead):
    rules: list[RuleSpec] = Field(min_length=1)
