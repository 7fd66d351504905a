"""Backoff verdicts: whether a client that was told to wait (`retry-after`) waited before retrying.

Every answer that asks for a wait (a quota's 429, a scripted `error:` 429 or 503 with `retry-after`)
is remembered with when it was sent. A later request that is the same request again (the same
API, path, API key and body bytes) is its retry: its journal entry gets `backoff = {"after": the
refused entry's index, "asked": seconds, "waited": seconds from the refused answer's sending to
the retry's arrival, "honoured": waited >= asked - TOLERANCE}`.

Why the same bytes and not the SDKs' `x-stainless-retry-count`: the openai and anthropic SDKs send
the same body on every attempt, so the bytes catch their retries; and they also catch an app's own
retry loop around a client with `max_retries=0` (tenacity, a hand-written loop, a raw httpx
client), whose every attempt says retry count 0. A refused request is retried at most once: the
first same request after it. If that one is refused too, it is the one the next retry answers to.

`asked` is read as the clients read it: `retry-after-ms`, then `retry-after` (seconds, or an HTTP
date), then a google.rpc RetryInfo in the body (Gemini's `retryDelay`).

TOLERANCE is 50 ms. A client that sleeps exactly what it was asked can only look short of it by
its timer firing early and the two clocks' resolution: the server stamps the refusal before its
bytes leave and the retry after it arrived, both of which make `waited` longer, not shorter; an
event loop may run a timer up to its clock's resolution early (asyncio: `loop._clock_resolution`,
~16 ms on Windows). 50 ms covers that twice over, and is far below any wait worth asking (a
quota's `retry-after` is whole seconds), so a client that retries at once (a few ms) or after half
the wait fails the verdict.

Memory is bounded: at most `max_waiting` refusals wait for their retry, the oldest dropped first.
"""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from .quota import api_key

if TYPE_CHECKING:
    from .answer import Answer
    from .journal import Entry

__all__ = ["DEFAULT_MAX_WAITING", "TOLERANCE", "Backoff", "asked", "unhonoured_report"]

TOLERANCE = 0.05  # seconds; see the module's docstring
DEFAULT_MAX_WAITING = 4096


class Backoff:
    """The refusals awaiting their retry, and the verdicts on the retries."""

    def __init__(self, max_waiting: int = DEFAULT_MAX_WAITING, tolerance: float = TOLERANCE) -> None:
        self.max_waiting = max_waiting
        self.tolerance = tolerance
        # request digest -> (refused entry index, seconds asked, monotonic time its answer was sent)
        self._waiting: OrderedDict[bytes, tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> bool:
        """Whether any refusal awaits its retry (else no request needs looking at)."""
        return bool(self._waiting)

    def clear(self) -> None:
        with self._lock:
            self._waiting.clear()

    def arrived(self, entry: Entry, now: float) -> None:
        """A request arrived at monotonic time `now`: if it retries a refused one, its verdict goes in `entry`."""
        if not self._waiting:
            return
        digest = _digest(entry)
        with self._lock:
            refused = self._waiting.pop(digest, None)
        if refused is None:
            return
        after, wanted, sent = refused
        waited = round(now - sent, 6)
        entry.backoff = {
            "after": after,
            "asked": wanted,
            "waited": waited,
            "honoured": waited >= wanted - self.tolerance,
        }

    def answered(self, entry: Entry, answer: Answer, now: float, wanted: float | None = None) -> None:
        """`answer` (to `entry`'s request, made at monotonic time `now`) was decided: if it asks for a wait
        (`wanted` seconds, or what its headers or body say), its retry will be judged."""
        if wanted is None:
            wanted = asked(answer)
            if wanted is None:
                return
        entry.retry_after = wanted
        digest = _digest(entry)
        with self._lock:
            self._waiting.pop(digest, None)
            self._waiting[digest] = (entry.index, wanted, now + answer.delay)  # sent once its delay is over
            if len(self._waiting) > self.max_waiting:
                self._waiting.popitem(last=False)


def _digest(entry: Entry) -> bytes:
    """What makes a request the same request again: its API, path, API key and body bytes."""
    made = hashlib.blake2b(digest_size=16)
    for part in (entry.endpoint, entry.path, api_key(entry.headers)):
        made.update(part.encode("utf-8", "surrogatepass"))
        made.update(b"\x00")
    made.update(entry.body)
    return made.digest()


def asked(answer: Answer) -> float | None:
    """The seconds an answer asks the client to wait, read as the SDKs read it; None: it asks nothing."""
    ms: bytes | None = None
    seconds: bytes | None = None
    for name, value in answer.headers:
        if name == b"retry-after-ms":
            ms = value
        elif name == b"retry-after":
            seconds = value
    for given, scale in ((ms, 1000.0), (seconds, 1.0)):
        if given is not None:
            try:
                return max(float(given) / scale, 0.0)
            except ValueError:
                pass
    if seconds is not None:  # an HTTP date
        try:
            moment = email.utils.parsedate_to_datetime(seconds.decode("latin-1"))
        except (TypeError, ValueError):
            return None
        return max(moment.timestamp() - time.time(), 0.0)
    if b"RetryInfo" in answer.body:
        return _retry_delay(answer.body)
    return None


def _retry_delay(body: bytes) -> float | None:
    """A google.rpc RetryInfo's `retryDelay` ("22s", "1.5s") in an error body."""
    try:
        details = orjson.loads(body)["error"]["details"]
        for detail in details:
            if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
                return float(str(detail["retryDelay"]).removesuffix("s"))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None
    return None


def unhonoured_report(entries: Iterable[Mapping[str, Any]], *, allow_none: bool = False) -> str | None:
    """What `assert_backoff_honoured()` fails with, from entries as the journal's JSON has them (index,
    endpoint, path, status, rule, error, retry_after, backoff); None when every retry waited as asked.

    Without `allow_none`, no retry at all fails too: a test that means to prove its app backs off must
    see it retry."""
    by_index = {}
    retries = []
    for entry in entries:
        by_index[entry["index"]] = entry
        if entry.get("backoff"):
            retries.append(entry)
    bad = [e for e in retries if not e["backoff"]["honoured"]]
    if not retries:
        if allow_none:
            return None
        asking = [e for e in by_index.values() if e.get("retry_after") is not None]
        if not asking:
            return "mockllm: no answer asked for a wait (retry-after), so no retry could be judged"
        listed = ", ".join(f"#{e['index']} ({e['status']}, retry-after {_seconds(e['retry_after'])})" for e in asking)
        return (
            f"mockllm: no request retried a refused one: {listed} asked for a wait, and the same request never came "
            "again (assert_backoff_honoured(allow_none=True) accepts that)"
        )
    if not bad:
        return None
    lines = [
        f"mockllm: {len(bad)} of {len(retries)} retried request(s) came sooner than retry-after asked "
        f"(a retry must wait at least what the refused answer asked, less {TOLERANCE * 1000:.0f} ms):"
    ]
    for entry in bad:
        verdict = entry["backoff"]
        refused = by_index.get(verdict["after"], {})
        why = refused.get("rule") or (refused.get("error") or "")[:120] or "?"
        lines.append(
            f"  #{entry['index']} {entry['endpoint']} {entry['path']}: waited {_seconds(verdict['waited'])}, "
            f"asked {_seconds(verdict['asked'])} by #{verdict['after']} "
            f"({refused.get('status', '?')}: {why})"
        )
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:.3f}s" if value < 10 else f"{value:.1f}s"
