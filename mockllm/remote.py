"""`mockllm.Remote`: a running mockllm server's control API (/_mockllm), from another process.

A test suite whose app runs in a container, or against a `mockllm serve` started elsewhere, reads
the journal and changes the rules with it, and asserts as the pytest fixture does:

    remote = mockllm.Remote("http://127.0.0.1:8000")
    remote.reset()
    ... the app under test sends its requests ...
    remote.assert_called(times=1, rule="greeting")
    assert remote.last_request.json["model"] == "gpt-4o-mini"

It uses the standard library only (urllib), so it needs nothing the core does not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .asserts import called_problem, usage_problems
from .errors import MockLLMError

__all__ = ["Remote", "RemoteEntry", "RemoteError"]


class RemoteError(MockLLMError):
    """The control API refused a request (a bad rule, an unknown name, the guard): its status and message."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class RemoteEntry:
    """One journal entry, as the control API sends it (see mockllm/journal.py, Entry.to_json)."""

    index: int
    endpoint: str
    method: str
    path: str
    status: int
    rule: str | None
    origin: str | None
    call_index: int | None
    stream: bool
    user_text: str | None
    error: str | None
    arrived: float
    request: Any  # the request body, parsed (None: it was not JSON)
    headers: Mapping[str, str]  # credentials shown as "[redacted]"
    writes: tuple[Mapping[str, Any], ...]  # {"at", "sent", "size", "text"} per network write
    aborted: bool
    raised: bool
    retry_after: float | None  # the seconds this answer asked the client to wait (retry-after), if any
    backoff: Mapping[str, Any] | None  # a retry's verdict: {"after", "asked", "waited", "honoured"}

    @property
    def json(self) -> Any:
        """The request body, parsed (as the fixture's Entry.json)."""
        return self.request

    @property
    def matched(self) -> bool:
        return self.rule is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RemoteEntry:
        return cls(
            index=data["index"],
            endpoint=data["endpoint"],
            method=data.get("method", "POST"),
            path=data["path"],
            status=data["status"],
            rule=data.get("rule"),
            origin=data.get("origin"),
            call_index=data.get("call_index"),
            stream=data.get("stream", False),
            user_text=data.get("user_text"),
            error=data.get("error"),
            arrived=data.get("arrived", 0.0),
            request=data.get("request"),
            headers=data.get("headers", {}),
            writes=tuple(data.get("writes", ())),
            aborted=data.get("aborted", False),
            raised=data.get("raised", False),
            retry_after=data.get("retry_after"),
            backoff=data.get("backoff"),
        )

    def __repr__(self) -> str:
        return f"<RemoteEntry #{self.index} {self.endpoint} status={self.status} rule={self.rule!r}>"


class Remote:
    """The control API of the mockllm server at `url` (its root; a trailing /v1 is dropped), for its default
    engine or a `namespace`'s; `token`: its --admin-token (needed when it listens beyond loopback)."""

    def __init__(self, url: str, namespace: str | None = None, token: str | None = None, *, timeout: float = 10.0):
        root = url.rstrip("/").removesuffix("/v1").rstrip("/")
        self.url = root
        self.namespace = namespace
        self.base = f"{root}/_mockllm" + (f"/ns/{urllib.parse.quote(namespace, safe='')}" if namespace else "")
        self.token = token
        self.timeout = timeout
        # No proxy: a fake on loopback (or in a container next door) is never behind the environment's.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"Remote({self.base!r})"

    # -- the routes ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "version")
        return result

    def rules(self) -> list[dict[str, Any]]:
        """Every rule, in rule order: name, origin, calls, capacity, left, optional, priority, sequence."""
        result: list[dict[str, Any]] = self._call("GET", "rules")["rules"]
        return result

    def journal(
        self,
        *,
        rule: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> list[RemoteEntry]:
        """The journal's entries, oldest first, filtered by the server (`limit`: the newest N)."""
        given = {"rule": rule, "endpoint": endpoint, "status": status, "since": since, "limit": limit}
        query = urllib.parse.urlencode({k: v for k, v in given.items() if v is not None})
        found = self._call("GET", "journal" + (f"?{query}" if query else ""))
        return [RemoteEntry.from_json(entry) for entry in found["entries"]]

    @property
    def requests(self) -> list[RemoteEntry]:
        """Every request the server's journal holds, oldest first."""
        return self.journal()

    @property
    def last_request(self) -> RemoteEntry:
        entries = self.journal(limit=1)
        if not entries:
            raise LookupError("the journal is empty: no request reached mockllm")
        return entries[0]

    def reset(self, what: str = "all") -> None:
        """Start over: "all" (sequences and journal), "sequences" (call counts), or "journal"."""
        self._call("POST", "reset", json.dumps({"what": what}).encode(), "application/json")

    def add(self, rule_or_yaml: str | Mapping[str, Any]) -> list[str]:
        """Add rules: YAML text (one rule, or a scenario with `rules:`), or the same as a dict; the names added.
        A bad rule raises RemoteError with the loader's message (`<control>:LINE: key: what`)."""
        if isinstance(rule_or_yaml, str):
            body, kind = rule_or_yaml.encode(), "application/yaml"
        else:
            body, kind = json.dumps(rule_or_yaml).encode(), "application/json"
        added: list[str] = self._call("POST", "rules", body, kind)["added"]
        return added

    def remove(self, name: str) -> list[str]:
        """Remove the rules named `name` (RemoteError 404 when none is)."""
        removed: list[str] = self._call("DELETE", "rules/" + urllib.parse.quote(name, safe=""))["removed"]
        return removed

    # -- assertions, as the pytest fixture words them ------------------------------------

    def assert_called(self, times: int | None = None, *, rule: str | None = None) -> None:
        """Assert requests were received (exactly `times` of them, if given), all or those `rule` answered."""
        __tracebackhide__ = True
        problem = called_problem(self.requests, times, rule)
        if problem is not None:
            raise AssertionError(problem)

    def assert_not_called(self) -> None:
        __tracebackhide__ = True
        self.assert_called(times=0)

    def assert_all_used(self) -> None:
        """Assert every rule not marked `optional: true` was used, and used up where it has a limit."""
        __tracebackhide__ = True
        rules = [r for r in self.rules() if not r["optional"]]
        unused = [r for r in rules if not r["calls"]]
        unfinished = [r for r in rules if r["calls"] and r["left"]]
        problems = usage_problems(
            [(r["name"], r["origin"]) for r in unused],
            [(r["name"], r["origin"], f"played {r['calls']} of {r['capacity']}") for r in unfinished],
            unused_said="never used",
            unfinished_said="did not play all its replies",
            advice="Use them, remove them, or mark them `optional: true`.",
        )
        if problems:
            raise AssertionError("\n".join(problems))

    def assert_backoff_honoured(self, *, allow_none: bool = False) -> None:
        """Assert every retry of a refused request (a 429 or 503 that asked for a wait) waited as long as asked;
        with no retry at all it fails too, unless `allow_none` (a test proving its app backs off must see one)."""
        __tracebackhide__ = True
        from .backoff import unhonoured_report

        entries = self._call("GET", "journal")["entries"]
        report = unhonoured_report(entries, allow_none=allow_none)
        if report is not None:
            raise AssertionError(report)

    # -- HTTP ------------------------------------------------------------------------------

    def _call(self, method: str, route: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {"accept": "application/json"}
        if content_type is not None:
            headers["content-type"] = content_type
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.base}/{route}", data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            try:
                error = json.loads(raw)["error"]
                message, code = str(error["message"]), error.get("code")
            except (ValueError, KeyError, TypeError):
                message, code = f"{exc.code} {exc.reason}: {raw[:200]!r}", None
            raise RemoteError(exc.code, message, code) from None
        except urllib.error.URLError as exc:
            raise RemoteError(0, f"mockllm: cannot reach {self.base}: {exc.reason}") from None
