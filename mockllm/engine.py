"""The Engine: scenarios, router and journal together; request bytes in, Answer out.

It is the one object every adapter drives (the starlette app, the in-process
transports, the pytest plugin), for every API: `handle` routes a request by its path
(mockllm/routes.py), `answer` serves one dialect's request. It imports no web framework and
opens no socket.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .answer import Answer
from .backoff import Backoff
from .callbacks import CallbackError, call
from .derive import Derived
from .dialects import CHAT_DIALECT, DIALECTS, Dialect
from .dialects.openai import JSON_HEADERS, error_body
from .errors import RequestError
from .journal import Entry, Journal
from .loader import Scenario, load, load_mapping
from .plan import error_answer, plan
from .quota import Quotas, Standing, merge_headers
from .request import Request
from .router import Hit, Router, Rule
from .routes import Methods, resolve
from .scenario import BODY_KEYS, Reply
from .script import Script, compile_reply
from .strict import check

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_MODEL", "NO_MATCH_STATUS", "Engine"]

DEFAULT_MODEL = "gpt-4o-mini"
# Real requests with images inlined as base64 run to megabytes; past this, a body is a mistake or an
# attack, and holding it (and parsing it) would cost the server the memory every other test needs.
DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024
# Scripted errors may not use it (the loader refuses 418), so it always means "no rule".
NO_MATCH_STATUS = 418
_NO_RETRY = [("x-should-retry", "false")]  # extra headers, as a scenario gives them


class Engine:
    """A fake provider: answers requests from its rules, and remembers each request."""

    def __init__(
        self,
        scenarios: str | Path | Iterable[Scenario] | None = None,
        *,
        seed: int = 0,
        time_scale: float = 1.0,
        journal_limit: int | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        strict: bool = False,
        api_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be 0 or more, got {time_scale}")
        if max_body_size < 0:
            raise ValueError(f"max_body_size must be 0 or more bytes, got {max_body_size}")
        self.seed = seed
        self.time_scale = time_scale
        self.max_body_size = max_body_size  # bytes; a longer request body is answered 413 unread
        # Refuse what the real API refuses (mockllm/strict.py), for every request; else only for the
        # rules of a scenario file that says `strict: true`.
        self.strict = strict
        # Refuse requests without this key, with each API's own auth error (`serve --require-api-key`).
        self.api_key = api_key
        # Monotonic seconds, for quotas' windows and backoff verdicts (a test of their arithmetic injects one).
        self.clock = clock
        self.quotas = Quotas()  # the scenarios' `limits` (mockllm/quota.py)
        self.backoff = Backoff()  # the answers that asked for a wait, until their retry (mockllm/backoff.py)
        # Numbers the answers no journal entry names (model lookups, stored responses, refusals), so each
        # gets an x-request-id of its own, the same ones in the same order on every run.
        self._ids = itertools.count()
        self.router = Router()
        self.journal = Journal(journal_limit)  # None: keep every entry
        # What each dialect keeps per engine (the Responses API's stored responses).
        self.states: dict[str, Any] = {name: dialect.new_state() for name, dialect in DIALECTS.items()}
        if isinstance(scenarios, str | Path):
            self.load(scenarios)
        elif scenarios is not None:
            for scenario in scenarios:
                self.use(scenario)

    def use(self, scenario: Scenario) -> None:
        """Add a loaded scenario's rules (after the rules already there); a `strict: true` file makes
        the engine strict (mockllm/strict.py), from then on."""
        self.router.add(scenario.rules)
        self.strict = self.strict or scenario.strict
        self.quotas.add(scenario.limits)

    def load(self, path: str | Path) -> list[Scenario]:
        """Add the rules of a scenario file or folder (after the rules already there)."""
        scenarios = load(path)
        for scenario in scenarios:
            self.use(scenario)
        return scenarios

    def add(
        self,
        data: Mapping[str, Any],
        source: str = "<inline>",
        *,
        when: Callable[[Request], Any] | None = None,
        respond: Callable[[Request], Any] | None = None,
    ) -> Scenario:
        """Add rules from a mapping: a whole scenario (`rules:`), or one rule (`reply:`...).

        For one rule, Python code may take part (mockllm/callbacks.py): `when(request)` must also
        hold for it to match, and `respond(request)` makes each call's reply (reply keys as a mapping,
        or a str: the content), in place of `reply`. Either may be async.
        """
        if (when is not None or respond is not None) and "rules" in data:
            raise ValueError("when= and respond= go with one rule, not a scenario of `rules`")
        if "rules" not in data:
            rule = dict(data)
            if respond is not None and "reply" not in rule and "replies" not in rule:
                rule["reply"] = {"content": ""}  # what `respond` returns replaces it at every call
            data = {"version": 1, "rules": [rule]}
        elif "version" not in data:
            data = {"version": 1, **data}
        scenario = load_mapping(dict(data), source)
        if when is not None or respond is not None:
            scenario.rules = [dataclasses.replace(r, when=when, respond=respond) for r in scenario.rules]
        self.use(scenario)
        return scenario

    def reset(self) -> None:
        """Start every sequence over, empty the journal and forget stored answers; the rules stay."""
        self.router.reset()
        self.journal.clear()
        self._ids = itertools.count()
        self.states = {name: dialect.new_state() for name, dialect in DIALECTS.items()}
        self.quotas.reset()
        self.backoff.clear()

    # -- requests ----------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one HTTP request, routed by its path (any prefix before the API's own path)."""
        found = resolve(path)
        if found is None:
            return self.not_found(method, path)
        methods, params, _ = found
        return self.serve(methods, params, method, path, headers, body)

    def serve(
        self,
        methods: Methods,
        params: Mapping[str, str],
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Answer:
        """Answer a request for a route the table found (`methods`, by HTTP method, with its `params`)."""
        target = methods.get(method)
        if target is None:
            return self.not_allowed(methods, method, path)
        if len(body) > self.max_body_size:
            return self.too_large(methods, method, path, len(body), headers)
        action, dialect = target.route.action, target.dialect
        if dialect is None or action in ("models", "model"):  # OpenAI's listing paths, or an API's own
            lister = dialect or listing_dialect(headers)
            return self.models(lister) if action == "models" else self.model(params["model_id"], lister)
        if action == "answer":
            return self.answer(dialect, body, headers, path, params)
        try:
            status, payload = dialect.act(action, params, self.states[dialect.name])
        except RequestError as exc:
            status, payload = (
                exc.status,
                dialect.error_body(exc.message, exc.type, exc.param, exc.code, status=exc.status),
            )
        return self.json_answer(status, payload)

    def answer(
        self,
        dialect: Dialect,
        body: bytes,
        headers: Mapping[str, str],
        path: str,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """Answer a request of `dialect`'s API. `headers` must have lower-case names."""
        # No entry at all when the journal keeps none (`mockllm serve`'s default): nothing could read it.
        entry = self.journal.open(dialect.name, path, headers, body) if self.journal.keeps else None
        if self.api_key is not None:
            # Before parsing, as the APIs do. The adapters' header mappings carry the query string as
            # `.query` (Gemini's `?key=`); a plain dict has none.
            no_key = dialect.refuses_key(self.api_key, headers, getattr(headers, "query", ""))
            if no_key is not None:
                if entry is not None:
                    entry.status, entry.error = no_key[0], "the request does not carry the --require-api-key key"
                answer = error_answer(no_key[0], no_key[1], self._request_id(entry), None, dialect)
                answer.entry = entry
                return answer
        state = self.states[dialect.name]
        try:
            request = dialect.parse(body, headers, params or {}, state)
        except RequestError as exc:
            if entry is not None:
                entry.status = exc.status
                entry.error = exc.message
            return self._refused(dialect, exc, entry)
        if self.strict:
            refused = check(dialect.name, request.body)
            if refused is not None:
                if entry is not None:
                    entry.status, entry.error = refused.status, refused.message
                return self._refused(dialect, refused, entry)
        # The scenarios' `limits` (mockllm/quota.py) and backoff verdicts (mockllm/backoff.py): a request over
        # its quota is answered here, before any rule counts it.
        standing = None
        if self.quotas.limits or self.backoff.waiting:
            now = self.clock()
            if entry is not None:
                self.backoff.arrived(entry, now)
            standing = self.quotas.admit(request, now) if self.quotas.limits else None
            if standing is not None and standing.refused is not None:
                return self._over_quota(dialect, request, standing, entry, now)
        try:
            routed = self.router.route(request)
            if isinstance(routed, Hit) and routed.rule.respond is not None:
                routed = Hit(routed.rule, _responded(routed.rule, request), routed.call_index)
        except CallbackError as exc:  # a test's callable raised: its traceback, as a 500 and in the journal
            payload = dialect.error_body(exc.text, "mockllm_error", None, "callback_failed", status=500)
            answer = error_answer(500, payload, self._request_id(entry), _NO_RETRY, dialect)
            if entry is not None:
                entry.status, entry.error, entry.raised = 500, exc.text, True
                answer.entry = entry
            return answer
        if isinstance(routed, Hit):
            answer = plan(routed, request, dialect, self.seed, self.time_scale, state)
            if standing is not None:  # under a limit: its headers, counting down
                answer.headers = merge_headers(answer.headers, dialect.quota_answer(standing)[0])
            if entry is None:
                return answer
            entry.rule, entry.origin = routed.rule.name, routed.rule.origin
            entry.call_index = routed.call_index
        else:
            message = routed.explain()
            payload = dialect.error_body(message, "mockllm_error", None, "no_rule_matched", status=NO_MATCH_STATUS)
            answer = error_answer(NO_MATCH_STATUS, payload, self._request_id(entry), _NO_RETRY, dialect)
            if entry is None:
                return answer
            entry.error = message
        entry.stream = request.stream
        entry.user_text = request.user_text
        entry.status = answer.status
        answer.entry = entry
        if answer.status >= 400:  # a scripted 429 or 503 may ask for a wait: its retry gets a verdict
            self.backoff.answered(entry, answer, self.clock())
        return answer

    def _over_quota(
        self, dialect: Dialect, request: Request, standing: Standing, entry: Entry | None, now: float
    ) -> Answer:
        """The API's 429 for a request over a limit's quota (Dialect.quota_answer)."""
        headers, body = dialect.quota_answer(standing)
        answer = error_answer(429, body, self._request_id(entry), None, dialect)
        answer.headers = merge_headers(answer.headers, headers)
        if entry is not None:
            limit = standing.limit
            assert limit is not None
            entry.status, entry.stream, entry.user_text = 429, request.stream, request.user_text
            entry.error = (
                f"over the limit at {limit.origin}: {standing.quota} {standing.refused} per {limit.window:g} s "
                f"({standing.used} used, {standing.requested} requested)"
            )
            answer.entry = entry
            if standing.retry_after is not None:
                self.backoff.answered(entry, answer, now, float(standing.retry_after))
        return answer

    def _refused(self, dialect: Dialect, exc: RequestError, entry: Entry | None) -> Answer:
        """The API's own answer to a request it refuses (a bad body, or one strict checking refuses)."""
        payload = dialect.error_body(exc.message, exc.type, exc.param, exc.code, status=exc.status)
        answer = error_answer(exc.status, payload, self._request_id(entry), None, dialect)
        answer.entry = entry
        return answer

    def _request_id(self, entry: Entry | None) -> str:
        """An error's request id: the journal entry's, or one of its own when the journal keeps none."""
        return _request_id(entry.index) if entry is not None else self.request_id()

    def chat(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        path: str = "/v1/chat/completions",
        default_model: str | None = None,
    ) -> Answer:
        """Answer a Chat Completions request (`default_model`: Azure's deployment, for a body without one)."""
        return self.answer(CHAT_DIALECT, body, headers, path, {"deployment": default_model} if default_model else None)

    # -- models ------------------------------------------------------------------------

    def model_ids(self) -> list[str]:
        """The models the scenarios name (literal `match.model`, reply `model`), and a default."""
        names = [DEFAULT_MODEL]
        for rule in self.router.rules:
            glob = rule.match.model
            if glob and not any(ch in glob for ch in "*?["):
                names.append(glob)
            names.extend(s.model for s in rule.replies if s.model)
        return list(dict.fromkeys(names))

    def models(self, dialect: Dialect = CHAT_DIALECT) -> Answer:
        """The model listing in `dialect`'s shape (its models_body hook): OpenAI's by default."""
        return self._listing(dialect, dialect.models_body(self.model_ids()))

    def model(self, model_id: str, dialect: Dialect = CHAT_DIALECT) -> Answer:
        """One model in `dialect`'s shape, or its 404 when no scenario names it (a rule's glob may)."""
        known = model_id in self.model_ids() or any(
            r.match.model and fnmatchcase(model_id, r.match.model) for r in self.router.rules
        )
        if not known:
            return error_answer(404, dialect.model_missing(model_id), self.request_id(), None, dialect)
        return self._listing(dialect, dialect.model_body(model_id))

    def _listing(self, dialect: Dialect, body: bytes) -> Answer:
        return Answer(200, dialect.headers(JSON_HEADERS[0], self.request_id(), 0.0), body)

    # -- answers of the adapters' own (no dialect parsed the body) ---------------------------

    def request_id(self) -> str:
        """A new x-request-id for an answer no journal entry names: unique per request, in order."""
        return Derived(0, "engine-other", next(self._ids)).request_id

    def not_found(self, method: str, path: str, message: str | None = None, code: str | None = None) -> Answer:
        """404 for a path no route serves (or, with `message`, a namespace no engine serves)."""
        body = error_body(message or f"Invalid URL ({method} {path})", "invalid_request_error", None, code)
        return self.json_answer(404, body)

    def not_allowed(self, methods: Methods, method: str, path: str) -> Answer:
        """405 for a path that is served, with the methods it takes in `Allow` (as RFC 9110 asks)."""
        message = f"Method {method} not allowed on {path}; it takes {', '.join(methods)}."
        allow = [("allow", ", ".join(methods))]
        dialect = next((t.dialect for t in methods.values() if t.dialect is not None), None)
        if dialect is None:
            return self.json_answer(
                405, error_body(message, "invalid_request_error", None, "method_not_allowed"), allow
            )
        body = dialect.error_body(
            message, "invalid_request_error", None, "method_not_allowed", status=405
        )  # in its API's envelope
        return error_answer(405, body, self.request_id(), allow, dialect)

    def too_large(
        self, methods: Methods, method: str, path: str, size: int | None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """413 for a body over `max_body_size`, in the envelope of the route's API; `size` None: a body
        sent in chunks, refused once it passed the limit. The connection closes after it: what is left
        of the body is never read. A dialect's request is journaled (without its body)."""
        limit = self.max_body_size
        told = f"{size} bytes" if size is not None else f"more than {limit} bytes (sent in chunks)"
        message = (
            f"Request body too large for {method} {path}: {told}, over mockllm's limit of {limit} bytes. "
            "Send a smaller body, or raise the limit: `mockllm serve --max-body-size BYTES`, "
            "or Engine(max_body_size=BYTES)."
        )
        target = methods.get(method)
        dialect = target.dialect if target is not None else None
        if dialect is None:
            return self.json_answer(
                413, error_body(message, "invalid_request_error", None, "request_too_large"), _CLOSE
            )
        entry = self.journal.open(dialect.name, path, headers or {}, b"") if self.journal.keeps else None
        payload = dialect.error_body(message, "invalid_request_error", None, "request_too_large", status=413)
        answer = error_answer(413, payload, self._request_id(entry), _CLOSE, dialect)
        if entry is not None:
            entry.status, entry.error = 413, message
            answer.entry = entry
        return answer

    def json_answer(self, status: int, body: bytes, extra: list[tuple[str, str]] | None = None) -> Answer:
        """A JSON answer (an error, or a dialect route's own) with a request id of its own and OpenAI's headers
        (`extra`: more of them)."""
        return error_answer(status, body, self.request_id(), extra)


_CLOSE = [("connection", "close")]


# The APIs with a listing of their own at `GET /v1/models`, told apart by a header their SDK always sends.
_LISTINGS: tuple[Dialect, ...] = tuple(d for d in DIALECTS.values() if d.models_header)


def listing_dialect(headers: Mapping[str, str]) -> Dialect:
    """The API whose model listing a `GET /v1/models` asks for: by its SDK's header, else OpenAI's."""
    for dialect in _LISTINGS:
        if dialect.models_header is not None and dialect.models_header in headers:
            return dialect
    return CHAT_DIALECT


def _responded(rule: Rule, request: Request) -> Script:
    """The reply a rule's `respond` makes for this request, compiled; its text is sent as written (the
    callable made it for this request: no placeholder is filled in)."""
    assert rule.respond is not None
    value = call(rule.respond, request)
    keys = {"content": value} if isinstance(value, str) else value
    if not isinstance(keys, Mapping):
        raise CallbackError(
            rule.respond, TypeError(f"expected reply keys (a mapping) or a str, got {type(value).__name__}")
        )
    try:
        reply = Reply.model_validate(dict(keys))
    except ValidationError as exc:
        raise CallbackError(rule.respond, ValueError(f"not a reply: {exc}")) from exc
    if not reply.has_body:
        raise CallbackError(
            rule.respond, ValueError(f"a reply needs one of {', '.join(BODY_KEYS)}; got {dict(keys)!r}")
        )
    return compile_reply(reply, quoting=False)


def _request_id(index: int) -> str:
    return Derived(0, "engine", index).request_id
