"""The control plane: a running server's rules, journal and sequences, read and changed over HTTP.

Every route is under `/_mockllm` (no provider uses the prefix), for the default engine and, as
`/_mockllm/ns/{ns}/...`, for each namespace's. It knows no web framework: `ControlPlane.answer`
takes a request's method, path, query, headers and body and gives an Answer, which the starlette
app sends (mockllm/app.py). What it answers is JSON (the shapes: `rule_json`, `Entry.to_json`),
and the inspector's page and files (mockllm/inspector).

Guard: the routes answer when the server listens on loopback and has no admin token, or when the
request has `Authorization: Bearer TOKEN` for the admin token it has (any address). Beyond loopback
without a token they answer 403: whoever reaches the port could otherwise rewrite the rules.
`health` and the inspector's page and files always answer: they say nothing (containers, which listen
beyond loopback, poll `health`; the page asks the guarded routes with the token of its `#token=`).
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson

from .answer import Answer, Header
from .dialects import ENDPOINTS
from .engine import Engine
from .errors import ScenarioError
from .loader import load_mapping
from .router import Rule
from .yamltext import PathKey, parse_yaml

__all__ = ["PREFIX", "SOURCE", "ControlPlane", "is_loopback", "rule_json"]

PREFIX = "/_mockllm"
SOURCE = "<control>"  # the source rules added over HTTP name, in their origin and in errors
RESETS = ("all", "sequences", "journal")
_FILTERS = ("rule", "endpoint", "status", "since", "limit")
_JSON: Header = (b"content-type", b"application/json")
_NO_STORE: Header = (b"cache-control", b"no-store")  # the journal and the rules change under a poller

# Route (after the prefix and any namespace) -> the methods it takes.
_METHODS: dict[str, tuple[str, ...]] = {
    "": ("GET",),
    "health": ("GET",),
    "version": ("GET",),
    "rules": ("GET", "POST"),
    "rules/{name}": ("DELETE",),
    "journal": ("GET",),
    "reset": ("POST",),
    "inspector/{file}": ("GET",),
}


def is_loopback(host: str) -> bool:
    """Whether a listening address reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def rule_json(rule: Rule, calls: int) -> dict[str, Any]:
    """A rule as the control API lists it. `left` is null with no limit, and for a rule whose sequence
    counts per conversation (its capacity is each conversation's: a new one starts with all of it)."""
    capacity = rule.capacity
    left = None if capacity is None or rule.per_conversation else max(0, capacity - calls)
    return {
        "name": rule.name,
        "origin": rule.origin,
        "calls": calls,
        "capacity": capacity,
        "left": left,
        "optional": rule.optional,
        "priority": rule.priority,
        "sequence": "conversation" if rule.per_conversation else "server",
    }


class ControlPlane:
    """The control routes of one server: its default engine, its namespaces, and its guard.

    `host`: the address the server listens on (beyond loopback, the routes need `admin_token`).
    """

    def __init__(
        self,
        engine: Engine,
        namespaces: Mapping[str, Engine] | None = None,
        *,
        host: str = "127.0.0.1",
        admin_token: str | None = None,
    ) -> None:
        if admin_token is not None and not admin_token:
            raise ValueError("admin_token must not be empty (None: no token)")
        self.engine = engine
        self.namespaces: Mapping[str, Engine] = namespaces if namespaces is not None else {}
        self.host = host
        self.loopback = is_loopback(host)
        self.admin_token = admin_token

    def answer(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """The answer to a request for `path` (which starts with PREFIX); `headers` have lower-case names."""
        rest = path[len(PREFIX) :]
        namespace = None
        if rest.startswith("/ns/"):
            namespace, slash, tail = rest[4:].partition("/")
            rest = slash + tail
        template, param = _template(rest[1:])
        if template not in _OPEN:
            refused = self._guard(headers)
            if refused is not None:
                return refused
        engine = self.engine
        if namespace is not None:
            found = self.namespaces.get(namespace)
            if found is None:
                message = f"mockllm: no namespace {namespace!r} is served here ({path})"
                return _error(404, message, "unknown_namespace")
            engine = found
        methods = _METHODS.get(template)
        if methods is None:
            return _error(404, f"mockllm: no control route {method} {path}; see {PREFIX}/version", "unknown_route")
        if method not in methods:
            allow = ", ".join(methods)
            answer = _error(405, f"Method {method} not allowed on {path}; it takes {allow}.", "method_not_allowed")
            answer.headers.append((b"allow", allow.encode()))
            return answer
        if template in ("", "inspector/{file}"):
            return _inspector(param)
        if template == "health":
            return _json(200, {"status": "ok"})
        if template == "version":
            from . import __version__

            return _json(200, {"version": __version__, "apis": list(ENDPOINTS)})
        if template == "rules":
            return _rules(engine) if method == "GET" else _add(engine, body)
        if template == "rules/{name}":
            return _remove(engine, param)
        if template == "journal":
            return _journal(engine, query)
        return _reset(engine, body)

    @staticmethod
    def error(status: int, message: str, code: str) -> Answer:
        """An answer in the control API's error envelope: `{"error": {"message", "code"}}`."""
        return _error(status, message, code)

    def _guard(self, headers: Mapping[str, str]) -> Answer | None:
        """None when the request may use the control routes; else the 403 or 401 that says why not."""
        token = self.admin_token
        if token is None:
            if self.loopback:
                return None
            message = (
                f"mockllm: the control API is closed: this server listens on {self.host}, beyond loopback, with no "
                "admin token. Restart it with --admin-token TOKEN (BackgroundServer(admin_token=...)) and send "
                "Authorization: Bearer TOKEN."
            )
            return _error(403, message, "admin_token_required")
        given = headers.get("authorization", "")
        if given[:7].lower() == "bearer " and hmac.compare_digest(given[7:].strip().encode(), token.encode()):
            return None
        why = "a wrong admin token" if given else "no Authorization header"
        message = f"mockllm: the control API needs the admin token (got {why}): send Authorization: Bearer TOKEN."
        answer = _error(401, message, "admin_token_invalid")
        answer.headers.append((b"www-authenticate", b"Bearer"))
        return answer


# Routes the guard leaves open: `health` says nothing and containers poll it; the inspector's page and
# files hold no data (the page asks the guarded routes, with the token of its URL's `#token=`).
_OPEN = ("health", "", "inspector/{file}")


def _template(route: str) -> tuple[str, str]:
    """The route's template and its parameter: `rules/a b` -> (`rules/{name}`, `a b`)."""
    for head, template in (("rules/", "rules/{name}"), ("inspector/", "inspector/{file}")):
        if route.startswith(head) and len(route) > len(head):
            return template, route[len(head) :]
    return route.rstrip("/") if route.count("/") == 1 and route.endswith("/") else route, ""


def _json(status: int, value: Any) -> Answer:
    try:
        body = orjson.dumps(value)
    except TypeError:  # an integer past 64 bits in a request body: the standard library writes any
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return Answer(status, [_JSON, _NO_STORE], body)


def _error(status: int, message: str, code: str) -> Answer:
    return _json(status, {"error": {"message": message, "code": code}})


def _inspector(name: str) -> Answer:
    try:
        from .inspector import page
    except ImportError:  # the inspector is not there (a stripped install): its routes are unknown
        found = None
    else:
        found = page(name)
    if found is None:
        return _error(404, f"mockllm: the inspector has no file {name!r}", "unknown_file")
    data, content_type = found
    return Answer(200, [(b"content-type", content_type.encode()), _NO_STORE], data)


def _rules(engine: Engine) -> Answer:
    return _json(200, {"rules": [rule_json(rule, calls) for rule, calls in engine.router.counts()]})


def _add(engine: Engine, body: bytes) -> Answer:
    """Rules from a YAML or JSON body: one rule, a list of rules, or a scenario (`rules:`)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(400, f"{SOURCE}: the body is not UTF-8 ({exc})", "bad_rule")
    if not text.strip():
        return _error(400, f"{SOURCE}: the body is empty: send a rule or a scenario, as YAML or JSON", "bad_rule")
    single = False  # one rule posted alone: its errors name its keys as the body does (not rules[0].)
    try:
        data, parsed_lines = parse_yaml(text, SOURCE)
        lines: Mapping[PathKey, int] = parsed_lines
        if isinstance(data, list):
            data, lines = {"version": 1, "rules": data}, _Under(("rules",), parsed_lines)
        elif isinstance(data, dict) and "rules" not in data:
            data, lines, single = {"version": 1, "rules": [data]}, _Under(("rules", 0), parsed_lines), True
        elif isinstance(data, dict) and "version" not in data:
            data = {"version": 1, **data}
        scenario = load_mapping(data, SOURCE, lines)
    except ScenarioError as exc:
        problems = exc.problems
        if single:
            problems = [dataclasses.replace(p, key=p.key.removeprefix("rules[0]").removeprefix(".")) for p in problems]
        return _error(400, str(ScenarioError(problems)), "bad_rule")
    engine.use(scenario)
    return _json(201, {"added": [rule.name for rule in scenario.rules]})


class _Under(Mapping[PathKey, int]):
    """The lines of a YAML document that `load_mapping` sees under `prefix` (one rule posted alone is
    rule 0 of a scenario): its errors then name the body's own lines."""

    def __init__(self, prefix: PathKey, lines: Mapping[PathKey, int]) -> None:
        self.prefix = prefix
        self.lines = lines

    def __getitem__(self, at: PathKey) -> int:
        n = len(self.prefix)
        if at[:n] == self.prefix:
            return self.lines[at[n:]]
        if at == self.prefix[: len(at)]:
            return self.lines[()]
        raise KeyError(at)

    def __iter__(self) -> Any:
        return ((*self.prefix, *at) for at in self.lines)

    def __len__(self) -> int:
        return len(self.lines)


def _remove(engine: Engine, name: str) -> Answer:
    removed = engine.router.remove(name)
    if not removed:
        names = [rule.name for rule in engine.router.rules]
        shown = ", ".join(repr(n) for n in names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        return _error(404, f"mockllm: no rule is named {name!r}; the rules are: {shown or 'none'}", "unknown_rule")
    return _json(200, {"removed": [rule.name for rule in removed]})


def _journal(engine: Engine, query: str) -> Answer:
    filters: dict[str, Any] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in _FILTERS:
            return _error(400, f"mockllm: unknown journal filter {key!r}; it takes {', '.join(_FILTERS)}", "bad_filter")
        value = values[-1]
        if key in ("rule", "endpoint"):
            filters[key] = value
            continue
        try:
            number = int(value)
        except ValueError:
            return _error(400, f"mockllm: journal filter {key}={value!r} is not a whole number", "bad_filter")
        if key == "limit" and number < 0:
            return _error(400, f"mockllm: journal filter limit={number} is negative", "bad_filter")
        filters[key] = number
    journal = engine.journal
    entries = journal.select(**filters)
    origins: dict[str, str] = {}
    if any(entry.rule is not None and entry.origin is None for entry in entries):
        for rule in engine.router.rules:
            origins.setdefault(rule.name, rule.origin)
    listed = [entry.to_json(origins.get(entry.rule) if entry.rule is not None else None) for entry in entries]
    return _json(200, {"entries": listed, "next": journal.next_index})


def _reset(engine: Engine, body: bytes) -> Answer:
    what = "all"
    if body.strip():
        try:
            given = json.loads(body)
        except ValueError:
            given = None
        if not isinstance(given, dict) or given.get("what", "all") not in RESETS or set(given) - {"what"}:
            message = f'mockllm: reset takes {{"what": "all" | "sequences" | "journal"}} (or no body); got {body!r}'
            return _error(400, message[:500], "bad_reset")
        what = given.get("what", "all")
    if what == "sequences":
        engine.router.reset()
        engine.backoff.clear()  # the refusals waiting for their retry name journal entries by index
    elif what == "journal":
        engine.journal.clear()  # (indexes start again at 0)
        engine.backoff.clear()
    else:
        engine.reset()
    return _json(200, {"reset": what})
