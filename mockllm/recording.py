"""Recorded exchanges as a scenario: one rule per request, written as a file (for `mockllm record`).

A rule matches the request as it was sent: its API (`endpoint`), its `model`, and its body's fields
(`body`) but the ignored ones; the same request recorded again adds a reply to the rule's `replies`,
in order. The reply (mockllm/recorded_reply.py) says the answer in structured keys when it can be read, else
verbatim (`sse`), with its schedule as recorded (`timing`).

Nothing secret is written: no request header at all, and the values of the secret headers (and
of a `key=` query parameter), with the `redact` patterns, are replaced in every written string.
The file is rewritten whole after every exchange, atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import os
import re
import textwrap
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .recorded_reply import REDACTED, Exchange, Redactor, ReplyMaker
from .yaml_writer import dump, scalar

__all__ = ["DEFAULT_IGNORED", "REDACTED", "Exchange", "Recording"]

# Request fields left out of `match.body` by default: how the answer is delivered (stream), sampling
# knobs whose effect a recording cannot show anyway, and bookkeeping that differs from run to run.
DEFAULT_IGNORED = (
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "seed",
    "user",
    "metadata",
    "store",
    "service_tier",
    "prompt_cache_key",
    "safety_identifier",
)
_GLOB = re.compile(r"([*?\[])")


@dataclass(slots=True)
class _Rule:
    first: int  # the number of its first exchange
    match: dict[str, Any]
    label: str  # endpoint, model and the start of the last user text: what the name says
    replies: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    text: str | None = None  # its YAML (but the name), made when the file is first written after a change


class Recording:
    """The rules recorded so far, and the file they are written to (`path`)."""

    def __init__(
        self,
        path: Path,
        *,
        ignore: Iterable[str] = DEFAULT_IGNORED,
        redact: Iterable[re.Pattern[str]] = (),
        keep_ids: bool = False,
        round_ms: float = 0.1,
    ) -> None:
        self.path = path
        self.ignore = frozenset(ignore) | {"stream", "model"}  # the model is matched by `model`
        self.redact = Redactor(redact)
        self.replies = ReplyMaker(self.redact, keep_ids=keep_ids, round_ms=round_ms)
        self.rules: dict[bytes, _Rule] = {}
        self._lock = threading.Lock()  # the rules
        self._writing = threading.Lock()  # one write at a time, each of the latest rules: never an older file last

    # -- secrets -----------------------------------------------------------------------------------

    def add_secret(self, value: str) -> None:
        """A value never to be written (an API key seen in a header or the query)."""
        with self._lock:
            if self.redact.add(value):
                for rule in self.rules.values():
                    rule.text = None  # written again, redacted with it too

    # -- exchanges ---------------------------------------------------------------------------------

    def add(self, exchange: Exchange) -> str:
        """Record `exchange`; a line that says what became of it."""
        try:
            request = orjson.loads(exchange.body) if exchange.body else {}
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            return f"not recorded: the {exchange.endpoint} request's body is not a JSON object"
        reply, why = self.replies.reply(exchange, request)
        if reply is None:
            return f"not recorded: {why}"
        match = self._match(exchange, request, sse="sse" in reply)
        key = orjson.dumps(match, option=orjson.OPT_SORT_KEYS)
        with self._lock:
            rule = self.rules.get(key)
            if rule is None:
                label = self.redact(_label(exchange, request))
                rule = self.rules[key] = _Rule(exchange.number, match, label)
            rule.replies.append((exchange.number, reply))
            rule.replies.sort(key=lambda item: item[0])
            rule.text = None
            count = len(rule.replies)
        said = "verbatim (sse)" if "sse" in reply else "error" if "error" in reply else "reply"
        note = f"; {why}" if why else ""
        return (
            f"recorded {exchange.endpoint} {exchange.model or ''} {exchange.status}: {said} {count} of its rule{note}"
        )

    def _match(self, exchange: Exchange, request: dict[str, Any], *, sse: bool) -> dict[str, Any]:
        match: dict[str, Any] = {"endpoint": exchange.endpoint}
        if exchange.model is not None:
            match["model"] = _GLOB.sub(r"[\1]", exchange.model)  # `model` is a glob: its wildcards as such
        if sse:
            match["stream"] = True  # a transcript answers as a stream, whatever the request asks
        body = {k: v for k, v in request.items() if k not in self.ignore}
        if body:
            match["body"] = self.redact.data(body)
        return match

    # -- the file ----------------------------------------------------------------------------------

    def render(self) -> str:
        with self._lock:
            rules = sorted(self.rules.values(), key=lambda rule: rule.first)
            names: dict[str, int] = {}
            head = _HEAD.format(ignored=", ".join(sorted(self.ignore - {"model"})))
            parts = [*(f"# {line}\n" for line in textwrap.wrap(head, 100)), "version: 1\nrules:\n"]
            for rule in rules:
                seen = names[rule.label] = names.get(rule.label, 0) + 1
                name = rule.label if seen == 1 else f"{rule.label} ({seen})"
                if rule.text is None:
                    rule.text = self._rule_text(rule)
                parts.append(f"  - name: {scalar(self.redact(name))}\n{rule.text}")  # a secret may be new
            return "".join(parts)

    def _rule_text(self, rule: _Rule) -> str:
        replies = [reply for _, reply in rule.replies]
        body: dict[str, Any] = {"match": rule.match}
        if len(replies) == 1:
            body["reply"] = replies[0]
        else:
            body["replies"] = replies
        return dump(body, 4)

    def write(self) -> None:
        """Write the file anew, atomically: a reader sees the old file or the new, never half of one."""
        with self._writing:
            if not self.rules:
                return
            text = self.render()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self.path)


_HEAD = (
    "Recorded by `mockllm record`: a rule per request, matched on its API, model and body fields (but {ignored}), "
    "answered as the upstream answered, on its schedule; a request sent again plays its replies in order. "
    "Edit freely: it is a scenario like any other."
)


def _label(exchange: Exchange, request: dict[str, Any]) -> str:
    text = " ".join(_last_user_text(request).split())
    text = text if len(text) <= 48 else text[:47] + "…"
    head = f"{exchange.endpoint} {exchange.model}" if exchange.model else exchange.endpoint
    return f"{head}: {text}" if text else head


def _last_user_text(request: dict[str, Any]) -> str:
    """The request's last user text, in any of the APIs (for the rule's name only)."""
    for key in ("messages", "input", "contents"):
        turns = request.get(key)
        if isinstance(turns, str):
            return turns
        if not isinstance(turns, list):
            continue
        for turn in reversed(turns):
            if isinstance(turn, dict) and turn.get("role") == "user":
                text = _text_of(turn.get("content", turn.get("parts")))
                if text:
                    return text
        if turns and isinstance(turns[0], str):  # embeddings' list of texts
            return str(turns[0])
    prompt = request.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""
