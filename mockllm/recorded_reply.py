"""The reply of one recorded exchange, in a scenario's keys (for `mockllm record`, mockllm/recording.py).

Structured when mockllm/answer_reader.py can read the answer (`chunks` or `content`, `tool_calls`,
`usage`, `finish_reason`, `fault`), an `error` for an HTTP error, `vectors` for embeddings, else the
stream verbatim (`sse`); with its schedule as recorded (`timing`: the first part's offset and every
gap, as the fake will send the parts). Every written text goes through the `Redactor` first.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from .answer_reader import read_answer
from .dialects.openai import dumps
from .heard import Heard, HeardTool, Unreadable, sse_events
from .template import escape
from .tokens import split_tokens

__all__ = ["REDACTED", "Exchange", "Redactor", "ReplyMaker"]

REDACTED = "[redacted]"
# Shorter values are no real key ("test", "x"), and redacting such words everywhere would change what
# the rules match.
_SECRET_LENGTH = 8
# The error headers a client acts on (its retries and backoff); no other header is written.
_ERROR_HEADERS = re.compile(r"retry-after(-ms)?|x-should-retry|x-ratelimit-.*|anthropic-ratelimit-.*")


@dataclass(slots=True)
class Exchange:
    """One request and what the upstream answered, as the recorder saw them."""

    number: int  # in order of arrival at the recorder
    endpoint: str  # the API (a dialect's name)
    model: str | None  # from the body, or the path (Gemini, Azure's deployment)
    body: bytes  # the request's body
    status: int
    headers: list[tuple[str, str]]  # the answer's headers, names lower-case
    chunks: list[tuple[float, bytes]]  # the answer's body as it arrived: (seconds from the request's arrival, bytes)
    broken: bool = False  # the upstream's connection failed in the middle of the body


class Redactor:
    """What is never written: the secrets seen (API keys in headers, a `key=` query parameter) and the
    patterns given, each replaced by [redacted]."""

    def __init__(self, patterns: Iterable[re.Pattern[str]] = ()) -> None:
        self.patterns = list(patterns)
        self.secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> bool:
        """Redact `value` from now on; whether it is new."""
        value = value.strip()
        if len(value) < _SECRET_LENGTH or value in self.secrets:
            return False
        self.secrets = {*self.secrets, value}
        self._pattern = None
        return True

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None:
            literal = [re.escape(s) for s in sorted(self.secrets, key=len, reverse=True)]
            sources = literal + [f"(?:{p.pattern})" for p in self.patterns]
            pattern = self._pattern = re.compile("|".join(sources)) if sources else re.compile(r"(?!)")
        return pattern.sub(REDACTED, text)

    def data(self, value: Any) -> Any:
        """JSON-like `value` with every string (keys too) redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


class ReplyMaker:
    """Makes the reply of an exchange: `reply(exchange, request)`."""

    def __init__(self, redact: Redactor, *, keep_ids: bool = False, round_ms: float = 0.1) -> None:
        self.redact = redact
        self.keep_ids = keep_ids
        self.round_ms = round_ms

    def reply(self, exchange: Exchange, request: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The reply of `exchange` and a note, or None and why it cannot be recorded."""
        content_type = dict(exchange.headers).get("content-type", "")
        streamed = content_type.startswith("text/event-stream")
        if exchange.status >= 400:
            if exchange.status == 418:  # mockllm's own "no rule matched": a scenario cannot script it
                return None, "418 (an upstream mockllm's 'no rule matched')"
            return self._error(exchange), ""
        if exchange.status != 200:
            return None, f"status {exchange.status}"
        if exchange.endpoint == "embeddings":
            return self._embeddings(exchange, request)
        try:
            heard = read_answer(exchange.endpoint, streamed, exchange.chunks, exchange.broken)
        except Unreadable as exc:
            if not streamed:
                return None, f"a body this recorder cannot say in a reply ({exc})"
            return self._transcript(exchange), f"verbatim: {exc}"
        return self._structured(exchange.endpoint, heard, exchange.broken), ""

    def _structured(self, endpoint: str, heard: Heard, broken: bool) -> dict[str, Any]:
        reply: dict[str, Any] = {}
        texts = [text for _, text in heard.pieces]
        times = [at for at, _ in heard.pieces]
        if heard.whole or heard.refusal:
            if texts or not heard.tools:  # a call alone has no text (an empty one would be sent as a text block)
                reply["refusal" if heard.refusal else "content"] = escape(self.redact("".join(texts)))
        elif texts:
            chunks = [self.redact(text) for text in texts]
            joined = self.redact("".join(chunks))
            if joined != "".join(chunks):  # a secret cut across chunks: sent whole, once all of it came
                chunks, times = [joined], [times[-1]]
            reply["chunks"] = [escape(chunk) for chunk in chunks]
        slots = list(times)
        tools, fragments = [], 0
        for tool in heard.tools:
            call, sent = self._tool_call(tool, endpoint)
            tools.append(call)
            pieces = split_tokens(sent) or [""]  # how the fake cuts the arguments it sends
            fragments += len(pieces)
            slots.append(tool.at)
            slots.extend(_arrivals(tool.fragments, pieces, tool.at))
        if tools:
            reply["tool_calls"] = tools
        if heard.finish is not None and heard.finish != ("tool_calls" if tools else "stop"):
            reply["finish_reason"] = heard.finish
        if heard.prompt_tokens is not None or heard.completion_tokens is not None:
            usage = {"prompt_tokens": heard.prompt_tokens, "completion_tokens": heard.completion_tokens}
            reply["usage"] = {k: v for k, v in usage.items() if v is not None}
        if self.keep_ids and heard.model is not None:
            reply["model"] = heard.model
        if self.keep_ids and heard.fingerprint is not None and endpoint == "chat":
            reply["system_fingerprint"] = heard.fingerprint
        # The ids a client sends back are kept, ids or not (a replay must say the same ones, or the next
        # request matches no rule): a Responses chain's previous_response_id and its output items sent
        # again as input, an Anthropic thread's previous_message_id. The others only with keep_ids.
        sent_back = endpoint in ("responses", "anthropic")
        if heard.answer_id is not None and (sent_back or self.keep_ids) and self._unredacted(heard.answer_id):
            reply["id"] = heard.answer_id
        if heard.message_id is not None and endpoint == "responses" and self._unredacted(heard.message_id):
            reply["message_id"] = heard.message_id
        if heard.whole:
            slots = [max(slots, default=0.0)]  # a whole body waits for its arrival, once
        timing = self._timing(slots)
        if timing:
            reply["timing"] = timing
        deltas = _deltas(endpoint, len(reply.get("chunks", ())), len(tools), fragments)
        if broken:
            reply["fault"] = {"kind": "disconnect", "after_chunks": deltas}
        elif heard.error_event is not None:
            reply["fault"] = {"kind": "error_event", "after_chunks": deltas, "message": self.redact(heard.error_event)}
        elif not heard.ended:
            reply["fault"] = {"kind": "no_done"}
        if not any(key in reply for key in ("content", "chunks", "refusal", "tool_calls")):
            reply = {"chunks": [], **reply}
        return reply

    def _tool_call(self, tool: HeardTool, endpoint: str) -> tuple[dict[str, Any], str]:
        """The `tool_calls` entry of a call, and the arguments' text the fake will send."""
        call: dict[str, Any] = {"name": self.redact(tool.name)}
        if tool.whole is not None:
            parsed: Any = self.redact.data(tool.whole)
            text = dumps(parsed)
        else:
            text = self.redact(tool.arguments)
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        # A mapping reads best. It is sent as the recorded text when the fake's JSON is that text; Anthropic's
        # and Gemini's wire carry the arguments as an object, whose spacing no client sees.
        if isinstance(parsed, dict) and (endpoint in ("anthropic", "gemini") or dumps(parsed) == text):
            call["arguments"] = _literal_data(parsed)
            sent = dumps(parsed)
        else:
            call["arguments"] = escape(text)
            sent = text
        if tool.id is not None:
            # Kept, ids or not: a tool loop's next request quotes it, and must match the rule recorded for it.
            call["id"] = self.redact(tool.id)
        if tool.item_id is not None and endpoint == "responses" and self._unredacted(tool.item_id):
            call["item_id"] = tool.item_id  # sent back with the call, as an input item
        return call, sent

    def _unredacted(self, given_id: str) -> bool:
        """Whether an id may be written: one a `--redact` pattern hides is left out (the replay derives one)."""
        return self.redact(given_id) == given_id

    def _transcript(self, exchange: Exchange) -> dict[str, Any]:
        events = sse_events(exchange.chunks)
        reply: dict[str, Any] = {"sse": self.redact("".join(e.text for e in events)).rstrip("\n") + "\n"}
        timing = self._timing([e.at for e in events])
        if timing:
            reply["timing"] = timing
        if exchange.broken:
            reply["fault"] = {"kind": "disconnect", "after_chunks": len(events)}
        return reply

    def _embeddings(self, exchange: Exchange, request: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The vectors the upstream sent, pinned for their input texts (`vectors`)."""
        inputs = request.get("input")
        texts = [inputs] if isinstance(inputs, str) else inputs
        try:
            body = orjson.loads(b"".join(data for _, data in exchange.chunks))
            data = sorted(body["data"], key=lambda item: item["index"])
            vectors = [_vector(item["embedding"]) for item in data]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None, "an embeddings body this recorder cannot read"
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or len(texts) != len(vectors):
            return None, "embeddings of token arrays, or not one vector per input"
        reply: dict[str, Any] = {"vectors": {self.redact(t): v for t, v in zip(texts, vectors, strict=True)}}
        usage = body.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            reply["usage"] = {"prompt_tokens": usage["prompt_tokens"]}
        if self.keep_ids and isinstance(body.get("model"), str):
            reply["model"] = body["model"]
        timing = self._timing([exchange.chunks[-1][0] if exchange.chunks else 0.0])
        if timing:
            reply["timing"] = timing
        return reply, ""

    def _error(self, exchange: Exchange) -> dict[str, Any]:
        text = b"".join(data for _, data in exchange.chunks)
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        spec: dict[str, Any] = {"status": exchange.status}
        if isinstance(error, dict):
            if isinstance(error.get("message"), str):
                spec["message"] = self.redact(error["message"])
            kind = error.get("status") if exchange.endpoint == "gemini" else error.get("type")
            if isinstance(kind, str):
                spec["type"] = kind
            if exchange.endpoint != "gemini" and isinstance(error.get("code"), str | int) and error["code"] is not True:
                spec["code"] = error["code"]
            if isinstance(error.get("param"), str):
                spec["param"] = error["param"]
        elif isinstance(error, str):  # some OpenAI-compatible servers: {"error": "..."}
            spec["message"] = self.redact(error)
        elif text:
            spec["message"] = self.redact(text.decode("utf-8", "replace"))[:2000]
        headers: dict[str, str | None] = {
            name: value for name, value in exchange.headers if _ERROR_HEADERS.fullmatch(name)
        }
        if exchange.status == 429 and "retry-after" not in headers:
            headers["retry-after"] = None  # as recorded: the fake would say `retry-after: 1`
        if headers:
            spec["headers"] = dict(sorted(headers.items()))
        reply: dict[str, Any] = {"error": spec}
        timing = self._timing([exchange.chunks[-1][0] if exchange.chunks else 0.0])
        if timing:
            reply["timing"] = timing
        return reply

    def _timing(self, slots: list[float]) -> dict[str, Any]:
        """`ttft_ms` and the gaps (`chunk_ms`, whose last value repeats) of parts due at `slots`
        seconds: the times are rounded, then differenced, so the gaps add up without drift."""
        if not slots:
            return {}
        step = self.round_ms
        at: list[float] = []
        for slot in slots:
            rounded = _round(max(slot, 0.0) * 1000, step)
            at.append(max(rounded, at[-1]) if at else rounded)
        gaps = [_round(b - a, step) for a, b in itertools.pairwise(at)]
        while len(gaps) > 1 and gaps[-1] == gaps[-2]:
            gaps.pop()
        timing: dict[str, Any] = {}
        if at[0]:
            timing["ttft_ms"] = at[0]
        if any(gaps):
            timing["chunk_ms"] = gaps[0] if len(gaps) == 1 else gaps
        return timing


def _literal_data(value: Any) -> Any:
    """Tool-call arguments as a reply sends them: `_literal` on every string (their JSON text is a template)."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape(str(k)): _literal_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_data(v) for v in value]
    return value


def _arrivals(recorded: list[tuple[float, str]], sent: list[str], start: float) -> list[float]:
    """When each of the fragments the fake sends (`sent`) had arrived whole in the recorded ones: the
    arrival of the recorded fragment holding its last character (by position, scaled when the two
    texts differ in length, as redaction makes them)."""
    total = sum(len(text) for _, text in recorded)
    length = sum(len(text) for text in sent)
    ends: list[tuple[int, float]] = []
    at = 0
    for arrived, text in recorded:
        at += len(text)
        ends.append((at, arrived))
    out: list[float] = []
    position = 0
    for piece in sent:
        position += len(piece)
        wanted = position * total / length if length else total
        out.append(next((arrived for end, arrived in ends if end >= wanted), ends[-1][1] if ends else start))
    return out


def _vector(embedding: Any) -> list[float]:
    """An embedding as floats: as sent, or decoded from base64 (little-endian float32, what openai asks for)."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return [_short_float32(x) for x in struct.unpack(f"<{len(raw) // 4}f", raw)]
    if isinstance(embedding, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in embedding):
        return [float(x) for x in embedding]
    raise ValueError("not a vector")


def _short_float32(value: float) -> float:
    """The shortest decimal that is the same float32 (0.3662430, not 0.3662429749965668): sent as base64
    again, it gives the same bytes."""
    exact = struct.pack("<f", value)
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == exact:
            return short
    return value


def _deltas(endpoint: str, chunks: int, tools: int, fragments: int) -> int:
    """How many "delta" events the fake sends for the text and tool calls (what `after_chunks` counts)."""
    if endpoint == "chat":
        return chunks + tools + fragments  # a call's head is a delta too
    if endpoint == "gemini":
        return chunks + tools  # a call is one chunk
    return chunks + fragments


def _round(value: float, step: float) -> float | int:
    """`value` to the nearest multiple of `step`, as a short number (30, not 30.000000000004)."""
    if step <= 0:
        return value
    rounded = round(round(value / step) * step, 6)
    return int(rounded) if rounded == int(rounded) else rounded
