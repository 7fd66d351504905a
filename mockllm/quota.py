"""Quotas as a provider enforces them: a scenario's `limits`, counted per model or per API key.

A limit admits `requests_per_minute` requests and `tokens_per_minute` tokens per window of
`window_s` seconds (60 by default; short ones keep tests fast). Past it, the API's own 429: each
dialect says it its way (Dialect.quota_answer: OpenAI's `x-ratelimit-*` headers and
`rate_limit_exceeded`, Anthropic's `anthropic-ratelimit-*` and `rate_limit_error`, Gemini's
RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo), and every answer to a limited request carries
the headers counting down.

The window is fixed, and starts with the first request it admits: it frees all at once when it
ends, so `retry-after` (and `x-ratelimit-reset-*`) is exactly when the next request is admitted,
whatever its size, and every number in a header or message is a whole count. (A sliding log would
keep a time per admitted request, thousands per key; a refilling bucket, as OpenAI runs, has
fractional counts and a retry time that depends on the next request's size.) Refused requests
are not counted, so the window's end does not move while a client retries.

Tokens are counted as OpenAI's 429 says them ("Requested 3006"): when the request arrives, its
prompt (the request view's estimate, mockllm/tokens.py) plus the output it may ask for (its
`max_tokens` or the API's name for it, times `n`); a request that sets no cap counts its prompt.
A request asking for more than the whole window's tokens can never pass: 429 with no
`retry-after`, and `x-should-retry: false` (mockllm's: the SDKs would retry it in vain).

Memory is bounded: at most `max_keys` windows (limit, model or key) are kept, the least recently
used dropped first (its next request starts a new window); keys are kept as digests, so neither a
long model name nor an API key is held. Thread-safe: the plugin's in-process mode answers from
several threads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from .answer import Header
    from .request import Request

__all__ = [
    "DEFAULT_MAX_KEYS",
    "Dimension",
    "Limit",
    "Quotas",
    "Standing",
    "api_key",
    "duration",
    "merge_headers",
    "retry_after_seconds",
    "rfc3339",
]

DEFAULT_MAX_KEYS = 10_000  # windows kept at once; a million distinct API keys cost no more than this many

# The placeholder rate-limit headers every answer carries when no limit applies (dialects/openai.py,
# dialects/anthropic.py): a limited answer's own replace them.
_RATE_NAMES = frozenset(
    f"x-ratelimit-{kind}-{what}".encode() for kind in ("limit", "remaining", "reset") for what in ("requests", "tokens")
) | frozenset(
    f"anthropic-ratelimit-{what}-{kind}".encode()
    for kind in ("limit", "remaining", "reset")
    for what in ("requests", "tokens", "input-tokens", "output-tokens")
)


@dataclass(frozen=True, slots=True)
class Limit:
    """One entry of a scenario's `limits`, compiled."""

    model: str | None  # a glob on the request's model; None: every model
    per: Literal["model", "api_key"]  # whose quota it is: each model's, or each API key's
    requests: int | None  # per window; None: requests are not limited
    tokens: int | None  # per window; None: tokens are not limited
    window: float  # seconds
    origin: str = "<inline>"  # file:line, for messages

    def applies(self, model: str) -> bool:
        return self.model is None or fnmatchcase(model, self.model)


@dataclass(frozen=True, slots=True)
class Dimension:
    """One counted quantity (requests or tokens) of one window, as the headers say it."""

    limit: int
    remaining: int
    reset: float  # seconds until the window frees (0: nothing used)


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a request stands against the limits that apply to it: what its rate-limit headers say
    (the most restrictive limit per quantity), and, when refused, why."""

    model: str  # the request's
    requests: Dimension | None  # None: no applicable limit counts requests
    tokens: Dimension | None
    refused: Literal["requests", "tokens"] | None = None  # the quota it is over; None: admitted
    limit: Limit | None = None  # the refusing limit
    used: int = 0  # of the refusing quantity in its window, before this request
    requested: int = 0  # of it, by this request
    wait: float | None = None  # exact seconds until it would be admitted; None: never (over the whole quota)

    @property
    def retry_after(self) -> int | None:
        """The `retry-after` header's whole seconds: rounded up (a client waiting them is admitted), at least 1
        (the SDKs take 0 as "no advice" and back off their own way)."""
        return None if self.wait is None else retry_after_seconds(self.wait)

    @property
    def quota(self) -> int:
        """The refused quantity's limit."""
        assert self.limit is not None
        return (self.limit.requests if self.refused == "requests" else self.limit.tokens) or 0


class _Window:
    __slots__ = ("requests", "start", "tokens")

    def __init__(self) -> None:
        self.start = -math.inf
        self.requests = 0
        self.tokens = 0


class Quotas:
    """The limits of an engine's scenarios and their windows."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be 1 or more, got {max_keys}")
        self.limits: list[Limit] = []
        self.max_keys = max_keys
        self._windows: OrderedDict[tuple[int, bytes], _Window] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, limits: Iterable[Limit]) -> None:
        with self._lock:
            self.limits.extend(limits)

    def reset(self) -> None:
        """Every window starts over (the limits stay)."""
        with self._lock:
            self._windows.clear()

    def __len__(self) -> int:
        """How many windows are kept."""
        return len(self._windows)

    def admit(self, request: Request, now: float) -> Standing | None:
        """Count `request` against every limit that applies (all or none of them), at monotonic time `now`;
        None when none applies."""
        model = request.model
        applicable = [(i, limit) for i, limit in enumerate(self.limits) if limit.applies(model)]
        if not applicable:
            return None
        cost = request.prompt_tokens + (request.max_tokens or 0) * max(request.n, 1)
        key = None
        with self._lock:
            windows: list[tuple[Limit, _Window]] = []
            refusals: list[Standing] = []
            for index, limit in applicable:
                if limit.per == "api_key":
                    key = api_key(request.headers) if key is None else key
                    owner = key
                else:
                    owner = model
                window = self._window(index, owner)
                if now >= window.start + limit.window:  # ended (or never started): a fresh one
                    window.start, window.requests, window.tokens = now, 0, 0
                    fresh = True
                else:
                    fresh = window.requests == 0 and window.tokens == 0
                windows.append((limit, window))
                left = 0.0 if fresh else window.start + limit.window - now
                if limit.tokens is not None and cost > limit.tokens:
                    refusals.append(self._refusal(model, limit, "tokens", window.tokens, cost, None))
                elif limit.requests is not None and window.requests + 1 > limit.requests:
                    refusals.append(self._refusal(model, limit, "requests", window.requests, 1, left))
                elif limit.tokens is not None and window.tokens + cost > limit.tokens:
                    refusals.append(self._refusal(model, limit, "tokens", window.tokens, cost, left))
            if refusals:
                # Every limit must admit it: the one that frees last (or never) says when.
                refused = max(refusals, key=lambda s: math.inf if s.wait is None else s.wait)
                requests, tokens = _most_restrictive(windows, now)
                return dataclasses.replace(refused, requests=requests, tokens=tokens)
            for _, window in windows:
                if window.requests == 0 and window.tokens == 0:
                    window.start = now  # the window starts with the first request it admits
                window.requests += 1
                window.tokens += cost
            requests, tokens = _most_restrictive(windows, now)
            return Standing(model, requests, tokens)

    @staticmethod
    def _refusal(
        model: str, limit: Limit, what: Literal["requests", "tokens"], used: int, requested: int, wait: float | None
    ) -> Standing:
        return Standing(model, None, None, what, limit, used, requested, wait)

    def _window(self, index: int, owner: str) -> _Window:
        key = (index, hashlib.blake2b(owner.encode("utf-8", "surrogatepass"), digest_size=16).digest())
        windows = self._windows
        window = windows.get(key)
        if window is None:
            window = windows[key] = _Window()
            if len(windows) > self.max_keys:
                windows.popitem(last=False)  # the least recently used
        else:
            windows.move_to_end(key)
        return window


def _most_restrictive(windows: list[tuple[Limit, _Window]], now: float) -> tuple[Dimension | None, Dimension | None]:
    """Per quantity, the applicable limit with the least left (as Anthropic's headers say it)."""
    requests: Dimension | None = None
    tokens: Dimension | None = None
    for limit, window in windows:
        used = window.requests or window.tokens
        reset = max(window.start + limit.window - now, 0.0) if used else 0.0
        if limit.requests is not None:
            mine = Dimension(limit.requests, max(limit.requests - window.requests, 0), reset)
            if requests is None or mine.remaining < requests.remaining:
                requests = mine
        if limit.tokens is not None:
            mine = Dimension(limit.tokens, max(limit.tokens - window.tokens, 0), reset)
            if tokens is None or mine.remaining < tokens.remaining:
                tokens = mine
    return requests, tokens


def api_key(headers: Mapping[str, str]) -> str:
    """The API key a request carries, wherever its SDK puts it ("" when none): `Authorization: Bearer`
    (OpenAI, Anthropic auth tokens), `api-key` (Azure), `x-api-key` (Anthropic), `x-goog-api-key` (Gemini),
    or Gemini's `?key=` (the adapters' header mappings carry the query string as `.query`)."""
    bearer = headers.get("authorization", "")
    if bearer[:7].lower() == "bearer ":
        return str(bearer[7:].strip())
    found = headers.get("x-api-key") or headers.get("api-key") or headers.get("x-goog-api-key")
    if found:
        return str(found)
    query = getattr(headers, "query", "")
    return parse_qs(query).get("key", [""])[-1] if query else ""


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1: what `retry-after` says of a wait of `seconds`."""
    return max(1, math.ceil(round(seconds, 6)))


def duration(seconds: float) -> str:
    """A wait as OpenAI's `x-ratelimit-reset-*` says it (Go's duration format): "120ms", "1.5s",
    "6m0s", "1h0m0s"; in milliseconds rounded up, so that it is never before the moment."""
    ms = math.ceil(round(seconds * 1000, 3))
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:.3f}".rstrip("0")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rfc3339(seconds: float) -> str:
    """The moment `seconds` from now as Anthropic's `anthropic-ratelimit-*-reset` says it (RFC 3339, UTC),
    rounded up to the second."""
    moment = math.ceil(time.time() + seconds)
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_headers(headers: list[Header], rate: list[Header]) -> list[Header]:
    """`headers` with `rate` in place of the placeholder rate-limit headers (where the first of them was;
    else at the end), as a new list: an answer's list may be shared (compiled fast paths)."""
    if not rate:
        return [h for h in headers if h[0] not in _RATE_NAMES]
    names = {name for name, _ in rate}
    out: list[Header] = []
    placed = False
    for header in headers:
        name = header[0]
        if name in _RATE_NAMES or name in names:
            if not placed:
                out.extend(rate)
                placed = True
            continue
        out.append(header)
    if not placed:
        out.extend(rate)
    return out
