"""The Engine: scenarios, router and journal together; request bytes in, Answer out.

It is the one object every adapter drives (the starlette app, the in-process
transports, the pytest plugin), for every API: `handle` routes a request by its path
(mockllm/routes.py), `answer` serves one dialect's request. It imports no web framework and
opens no socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from .answer import Answer
from .derive import Derived
from .dialects import CHAT_DIALECT, DIALECTS, Dialect
from .dialects.openai import JSON_HEADERS, dumps, error_body, model_object, models_body
from .errors import RequestError
from .journal import Journal
from .loader import Scenario, load, load_mapping
from .plan import error_answer, plan
from .router import Hit, Router
from .routes import Methods, resolve

__all__ = ["DEFAULT_MODEL", "NO_MATCH_STATUS", "Engine"]

DEFAULT_MODEL = "gpt-4o-mini"
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
    ) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be 0 or more, got {time_scale}")
        self.seed = seed
        self.time_scale = time_scale
        self.router = Router()
        self.journal = Journal(journal_limit)  # None: keep every entry
        # What each dialect keeps per engine (the Responses API's stored responses).
        self.states: dict[str, Any] = {name: dialect.new_state() for name, dialect in DIALECTS.items()}
        if isinstance(scenarios, str | Path):
            self.load(scenarios)
        elif scenarios is not None:
            for scenario in scenarios:
                self.router.add(scenario.rules)

    def load(self, path: str | Path) -> list[Scenario]:
        """Add the rules of a scenario file or folder (after the rules already there)."""
        scenarios = load(path)
        for scenario in scenarios:
            self.router.add(scenario.rules)
        return scenarios

    def add(self, data: Mapping[str, Any], source: str = "<inline>") -> Scenario:
        """Add rules from a mapping: a whole scenario (`rules:`), or one rule (`reply:`...)."""
        if "rules" not in data:
            data = {"version": 1, "rules": [dict(data)]}
        elif "version" not in data:
            data = {"version": 1, **data}
        scenario = load_mapping(dict(data), source)
        self.router.add(scenario.rules)
        return scenario

    def reset(self) -> None:
        """Start every sequence over, empty the journal and forget stored answers; the rules stay."""
        self.router.reset()
        self.journal.clear()
        self.states = {name: dialect.new_state() for name, dialect in DIALECTS.items()}

    # -- requests ----------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Answer one HTTP request, routed by its path (any prefix before the API's own path)."""
        found = resolve(path)
        if found is None:
            return _not_found(method, path)
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
            message = f"Method {method} not allowed on {path}."
            return Answer(
                405, list(JSON_HEADERS), error_body(message, "invalid_request_error", None, "method_not_allowed")
            )
        action, dialect = target.route.action, target.dialect
        if dialect is None:
            return self.models() if action == "models" else self.model(params["model_id"])
        if action == "answer":
            return self.answer(dialect, body, headers, path, params)
        try:
            status, payload = dialect.act(action, params, self.states[dialect.name])
        except RequestError as exc:
            status, payload = exc.status, dialect.error_body(exc.message, exc.type, exc.param, exc.code)
        return error_answer(status, payload, _request_id(-1))

    def answer(
        self,
        dialect: Dialect,
        body: bytes,
        headers: Mapping[str, str],
        path: str,
        params: Mapping[str, str] | None = None,
    ) -> Answer:
        """Answer a request of `dialect`'s API. `headers` must have lower-case names."""
        entry = self.journal.open(dialect.name, path, headers, body)
        state = self.states[dialect.name]
        try:
            request = dialect.parse(body, headers, params or {}, state)
        except RequestError as exc:
            entry.status = exc.status
            entry.error = exc.message
            payload = dialect.error_body(exc.message, exc.type, exc.param, exc.code)
            answer = error_answer(exc.status, payload, _request_id(entry.index))
            answer.entry = entry
            return answer
        entry.stream = request.stream
        entry.user_text = request.user_text
        routed = self.router.route(request)
        if isinstance(routed, Hit):
            answer = plan(routed, request, dialect, self.seed, self.time_scale, state)
            entry.rule = routed.rule.name
            entry.call_index = routed.call_index
        else:
            message = routed.explain()
            entry.error = message
            payload = dialect.error_body(message, "mockllm_error", None, "no_rule_matched")
            answer = error_answer(NO_MATCH_STATUS, payload, _request_id(entry.index), _NO_RETRY)
        entry.status = answer.status
        answer.entry = entry
        return answer

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
            names.extend(s.spec.model for s in rule.replies if s.spec.model)
        return list(dict.fromkeys(names))

    def models(self) -> Answer:
        return Answer(200, list(JSON_HEADERS), models_body(self.model_ids()))

    def model(self, model_id: str) -> Answer:
        known = model_id in self.model_ids() or any(
            r.match.model and fnmatchcase(model_id, r.match.model) for r in self.router.rules
        )
        if not known:
            message = f"The model `{model_id}` does not exist or you do not have access to it."
            body = error_body(message, "invalid_request_error", None, "model_not_found")
            return error_answer(404, body, _request_id(-1))
        return Answer(200, list(JSON_HEADERS), dumps(model_object(model_id)).encode())


def _not_found(method: str, path: str) -> Answer:
    return Answer(404, list(JSON_HEADERS), error_body(f"Invalid URL ({method} {path})", "invalid_request_error"))


def _request_id(index: int) -> str:
    return Derived(0, "engine", index).request_id
