"""What a dialect is: one API's wire format over the neutral reply.

A dialect parses its requests into a `Request` (mockllm/request.py), and turns a `Call` (one
answered request: the rule's compiled reply plus the values made for this call) into a body,
or into a `Stream` of SSE events. Faults, framing and timing are applied around it, the same
for every dialect (mockllm/plan.py), so a dialect only says what its events are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from ..errors import RequestError
from ..scenario import FAULT_KINDS
from .openai import ERROR_DEFAULTS, model_object, models_body
from .openai import azure_error_body as openai_azure_error_body
from .openai import dumps as openai_dumps
from .openai import error_body as openai_error_body
from .openai import headers as openai_headers

if TYPE_CHECKING:
    import random

    from ..answer import Answer
    from ..derive import Derived
    from ..quota import Standing
    from ..request import Request
    from ..router import Hit, Rule
    from ..scenario import Reply
    from ..script import Script
    from ..sse import Event, Write
    from .openai import Header

_OPENAI_VERSION = (b"openai-version", b"2020-10-01")

__all__ = ["Call", "Dialect", "Route", "Stream", "ToolCallWire", "masked_key"]


class Route(NamedTuple):
    """A path a dialect serves: `action` is "answer" (a request for a reply) or a method of its own."""

    method: str
    path: str  # a template: "/v1/responses/{response_id}"
    action: str = "answer"


@dataclass(frozen=True, slots=True)
class ToolCallWire:
    """A tool call as one answer sends it: its id made for this call, its arguments and their fragments."""

    id: str
    name: str
    arguments: str  # JSON text
    fragments: tuple[str, ...] = ()  # the arguments cut as they stream


@dataclass(slots=True)
class Call:
    """One answered request: the compiled reply and every value made for this call, once."""

    request: Request
    rule: Rule
    script: Script
    derived: Derived
    model: str
    fingerprint: str
    content: str | None  # None: no text (tool calls only)
    pieces: tuple[str, ...]  # the text as it streams
    tools: tuple[ToolCallWire, ...]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # the neutral finish: stop | length | tool_calls | content_filter | function_call
    offsets: Sequence[float]  # when each chunk is due: pieces first, then a head and the fragments per tool
    state: Any  # the dialect's per-engine state (e.g. stored responses)
    stop_sequence: str | None = None  # the request's stop sequence the text ended before (mockllm/limits.py)
    limited: bool = False  # the request's limits cut the reply: what was compiled of it does not apply


class Stream:
    """The SSE events of one streamed answer, each tagged with its `part` for the fault layer:
    "delta" (a content delta: counted by `after_chunks`), "finish" (dropped by `no_finish`),
    "done" (the terminator: dropped by `no_done`), or "head"/"tail" (sent as they are)."""

    # The part the fault layer will drop (set before `events()` runs), so that a dialect that numbers
    # its events (Responses' sequence_number) can leave those unnumbered: the stream has no gap.
    dropped: str | None = None
    deltas: int = 0  # how many "delta" events the stream sends: a fault past them comes before the closing ones

    def events(self) -> Iterator[Event]:
        raise NotImplementedError

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        """The events an `error_event` or `malformed` fault sends at `at`, in this API's shape."""
        raise NotImplementedError

    def plain_writes(self) -> Iterator[Write] | None:
        """The stream straight to bytes when no fault or framing applies (a fast path), or None."""
        return None


class Dialect:
    """One API. Subclasses set the class attributes and implement parse, body and stream."""

    name: ClassVar[str]
    routes: ClassVar[tuple[Route, ...]]
    fault_kinds: ClassVar[frozenset[str]] = frozenset(FAULT_KINDS)
    id_prefix: ClassVar[str]  # of the answer's id, for the docs and the near-miss report

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        raise NotImplementedError

    # The error envelope, headers and error defaults below are OpenAI's, which four of the APIs share
    # (shared/wire.md section 5): an API with others overrides them (anthropic.py).
    error_indent: ClassVar[int | None] = None  # pretty-printed errors (Responses, legacy, embeddings: 4)
    error_type: ClassVar[Header] = (b"content-type", b"application/json")  # an error answer's content type
    line_ending: ClassVar[str] = "\n"  # of its SSE streams (a scenario's `framing.line_ending` may change it)

    def error_body(self, message: str, type: str, param: str | None, code: str | int | None, *, status: int) -> bytes:
        """An error's body in this API's envelope (`status`: the HTTP status it answers with)."""
        return openai_error_body(message, type, param, code, indent=self.error_indent)

    def azure_error_body(self, code: str, message: str) -> bytes:
        return openai_azure_error_body(code, message)

    def headers(self, content_type: Header, request_id: str, seconds: float) -> list[Header]:
        return openai_headers(content_type, request_id, seconds)

    def error_default(self, status: int) -> tuple[str, str | None, str]:
        """A scripted error's type, code and message (which may name {model}) when the scenario sets none:
        OpenAI's by default (an API with other error types per status says its own)."""
        return ERROR_DEFAULTS.get(
            status, ("invalid_request_error" if status < 500 else "server_error", None, f"Error {status}.")
        )

    def error_parts(self, body: bytes, request_id: str) -> tuple[bytes, list[Header]]:
        """An error answer's body and its headers after the content type: the request id's header first
        (always sent), then the others (a scenario's own header of the same name replaces them). OpenAI's
        by default: the body as it is, `x-request-id` and `openai-version`; an API whose envelope names
        the request id, or whose header is another, says its own."""
        return body, [(b"x-request-id", request_id.encode()), _OPENAI_VERSION]

    def unsendable(self, reply: Reply) -> str | None:
        """Why this API cannot send `reply` at all (checked at load for a rule that names this API), or
        None: every reply can be sent by default."""
        return None

    def prepare(self, script: Script) -> None:
        """Compile what this dialect can of a reply once, when it loads (stored in `script.compiled`)."""

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        """A whole answer straight from what `prepare` compiled, or None for the general path."""
        return None

    def body(self, call: Call) -> bytes:
        raise NotImplementedError

    def stream(self, call: Call) -> Stream:
        raise NotImplementedError

    # The model listing (`GET /v1/models`, `/v1/models/{id}`): OpenAI's by default. The path is OpenAI's
    # in several APIs, so the listing is this API's when the request carries `models_header` (a header its
    # SDK always sends), or when the route is this dialect's own (an action "models" or "model").
    models_header: ClassVar[str | None] = None

    def models_body(self, model_ids: Sequence[str]) -> bytes:
        return models_body(model_ids)

    def model_body(self, model_id: str) -> bytes:
        return openai_dumps(model_object(model_id)).encode()

    def model_missing(self, model_id: str) -> bytes:
        """The 404 body of a model no scenario names."""
        message = f"The model `{model_id}` does not exist or you do not have access to it."
        return self.error_body(message, "invalid_request_error", None, "model_not_found", status=404)

    def new_state(self) -> Any:
        """Per-engine state (a dialect that remembers answers keeps them here)."""
        return None

    def act(self, action: str, params: Mapping[str, str], state: Any) -> tuple[int, bytes]:
        """Serve one of this dialect's own routes (not "answer"): a status and a JSON body."""
        raise RequestError(f"Invalid URL ({action})", status=404)

    # `mockllm serve --require-api-key KEY` (Engine(api_key=...)): where this API's SDKs send the key,
    # and how the API refuses a request without it. OpenAI's here (Bearer auth, or Azure's `api-key`).
    def refuses_key(self, key: str, headers: Mapping[str, str], query: str) -> tuple[int, bytes] | None:
        """None when the request carries `key`; else the status and body of this API's auth error."""
        bearer = headers.get("authorization", "")
        given = bearer[7:].strip() if bearer[:7].lower() == "bearer " else headers.get("api-key") or bearer
        if given == key:
            return None
        if not given:
            return 401, self.error_body(_NO_KEY, "invalid_request_error", None, None, status=401)
        message = f"Incorrect API key provided: {masked_key(given)}. You can find your API key at {_KEYS_PAGE}."
        return 401, self.error_body(message, "invalid_request_error", None, "invalid_api_key", status=401)

    # A scenario's `limits` (mockllm/quota.py): the rate-limit headers of every answer to a limited request,
    # and the 429 past its quota. OpenAI's here (shared/wire.md sections 1 and 5: `x-ratelimit-*` with
    # Go durations, `retry-after`, `rate_limit_exceeded` of type requests or tokens); Anthropic and Gemini
    # say their own. No `retry-after-ms`: OpenAI's own traffic has none (Azure's has).
    def quota_answer(self, standing: Standing) -> tuple[list[Header], bytes]:
        """The rate-limit headers for `standing` and, when it is refused, the 429's body (else b"")."""
        from ..quota import duration

        limits, remaining, resets = [], [], []
        for what, counted in (("requests", standing.requests), ("tokens", standing.tokens)):
            if counted is not None:
                limits.append((b"x-ratelimit-limit-" + what.encode(), b"%d" % counted.limit))
                remaining.append((b"x-ratelimit-remaining-" + what.encode(), b"%d" % counted.remaining))
                resets.append((b"x-ratelimit-reset-" + what.encode(), duration(counted.reset).encode()))
        headers = limits + remaining + resets
        if standing.refused is None:
            return headers, b""
        per = "requests per min (RPM)" if standing.refused == "requests" else "tokens per min (TPM)"
        where = f"for {standing.model} in organization org-mockllm on {per}: Limit {standing.quota}"
        learn = "Visit https://platform.openai.com/account/rate-limits to learn more."
        if standing.wait is None:  # more than the whole quota: it can never pass
            message = (
                f"Request too large {where}, Requested {standing.requested}. The input or output tokens must be "
                f"reduced in order to run successfully. {learn}"
            )
            headers.append((b"x-should-retry", b"false"))
        else:
            message = (
                f"Rate limit reached {where}, Used {standing.used}, Requested {standing.requested}. "
                f"Please try again in {duration(standing.wait)}. {learn}"
            )
            headers.append((b"retry-after", b"%d" % (standing.retry_after or 1)))
        return headers, self.error_body(message, standing.refused, None, "rate_limit_exceeded", status=429)


_KEYS_PAGE = "https://platform.openai.com/account/api-keys"
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
    "auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're "
    f"accessing the API from your browser and are prompted for a username and password. You can obtain an API "
    f"key from {_KEYS_PAGE}."
)


def masked_key(key: str) -> str:
    """A wrong key as OpenAI's error quotes it: its start and end, the middle starred (sk-ab***yz)."""
    return f"{key[:5]}***{key[-2:]}" if len(key) > 8 else key
