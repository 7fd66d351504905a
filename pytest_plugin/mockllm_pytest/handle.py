"""`MockLLM`, what the `mockllm` fixture gives a test: a fake provider of its own.

It holds an Engine (rules, sequences, journal) served either under a namespace of the
session's server or in-process, hands out clients of the OpenAI, Anthropic and Gemini SDKs
pointed at it, and says what went wrong: requests no rule matched, requests a test's
callable raised for, and (opt-in) rules never used or replies never played. The SDKs are
optional: each is imported when its client is asked for.
"""

from __future__ import annotations

import functools
import importlib
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import pytest

from mockllm import Engine, Entry, Journal, Request, Rule, Scenario, load
from mockllm.asserts import called_problem

from .reports import request_report, usage_report

if TYPE_CHECKING:
    import anthropic
    import openai
    from google import genai

__all__ = ["API_KEY", "MockLLM"]

API_KEY = "sk-mockllm-test"


class MockLLM:
    """A fake LLM provider for one test, speaking every API mockllm serves (OpenAI's, Anthropic's, Gemini's).

    Rules are tried in the order they were added (the `mockllm_scenarios` option's, the
    marker's, then the test's own), higher `priority:` first; the first that matches answers.
    """

    def __init__(
        self,
        engine: Engine,
        base_url: str,
        mode: str,
        *,
        search: tuple[Path, ...] = (),
        keys: Mapping[str, str] | None = None,
        in_process: bool | None = None,
    ) -> None:
        self.engine = engine
        self.base_url = base_url  # OpenAI's: ends with /v1, as OpenAI clients want it
        self.mode = mode  # "server" or "inprocess"
        # Whether clients reach the Engine with no socket: in-process mode, but for a test that records
        # (its clients then go through the recorder on loopback, mockllm_pytest/cassette.py).
        self.in_process = mode == "inprocess" if in_process is None else in_process
        # The API keys the clients send, by API ("openai", "anthropic", "gemini"): ours, or the real
        # ones from the environment when the test records.
        self.keys = {"openai": API_KEY, "anthropic": API_KEY, "gemini": API_KEY, **(keys or {})}
        # More to say under a report of unmatched requests (how to record them), given those requests.
        self.unmatched_hint: Callable[[list[Entry]], str] | None = None
        self._search = search  # folders relative paths are looked up in
        self._closers: list[Callable[[], Any]] = []
        self._env = pytest.MonkeyPatch()
        self._files: set[Path] = set()  # scenario files loaded, so none is loaded twice
        self._reported: set[int] = set()  # the journal entries (by index) a report named already

    def __repr__(self) -> str:
        return (
            f"<MockLLM {self.mode} {self.base_url} rules={len(self.engine.router.rules)} requests={len(self.requests)}>"
        )

    # -- rules -------------------------------------------------------------------------

    def load(self, path: str | Path) -> list[Scenario]:
        """Add the rules of a scenario file or folder (relative: to the test file's folder, else the rootdir).

        A file already loaded for this test (say, by the `mockllm_scenarios` option and again by
        the marker) is not loaded twice: its rules would shadow themselves.
        """
        return self.use(_load(self.resolve(path)))

    def use(self, scenarios: list[Scenario]) -> list[Scenario]:
        """Add loaded scenarios' rules, skipping files this test has already loaded."""
        added = []
        for scenario in scenarios:
            file = Path(scenario.source).resolve()
            if file not in self._files:
                self._files.add(file)
                self.engine.use(scenario)
                added.append(scenario)
        return added

    @overload
    def add(
        self,
        data: None = None,
        /,
        *,
        match: Mapping[str, Any] | Callable[[Request], Any] | None = None,
        reply: Mapping[str, Any] | str | Callable[[Request], Any] | None = None,
        replies: Sequence[Mapping[str, Any] | str] | None = None,
        name: str | None = None,
        times: int | None = None,
        priority: int | None = None,
        optional: bool | None = None,
        sequence: Literal["server", "conversation"] | None = None,
    ) -> Rule: ...

    @overload
    def add(self, data: Mapping[str, Any], /) -> Rule | Scenario: ...

    def add(
        self,
        data: Mapping[str, Any] | None = None,
        /,
        *,
        match: Mapping[str, Any] | Callable[[Request], Any] | None = None,
        reply: Mapping[str, Any] | str | Callable[[Request], Any] | None = None,
        replies: Sequence[Mapping[str, Any] | str] | None = None,
        name: str | None = None,
        times: int | None = None,
        priority: int | None = None,
        optional: bool | None = None,
        sequence: Literal["server", "conversation"] | None = None,
    ) -> Rule | Scenario:
        """Add one rule, and return it.

        `match`: the conditions of a scenario's `match:` as a dict (user, system, model, endpoint,
        stream, headers, tool, tool_result, turn, last_role), or a callable taking the
        `mockllm.Request` that returns whether the rule matches; left out, it matches any request.
        `reply`: reply keys as a dict, a str (the content), or a callable taking the Request that
        returns one of those, made anew for each call. `replies`: a list of dicts or strs, played one
        per call. A callable may be async (awaited on a loop of mockllm's own, not the test's); what
        it raises answers the request 500 and fails the test, with the traceback. The other keywords
        are the rule keys of a scenario file (`sequence`: "server" or "conversation").

        A mapping instead of keywords is one rule as a scenario file writes it (`{"match": ...,
        "reply": ...}`), or a whole scenario (`{"rules": [...]}`), whose Scenario is returned.
        """
        source = _caller()
        keywords = {"match": match, "reply": reply, "replies": replies, "name": name, "times": times}
        keywords |= {"priority": priority, "optional": optional, "sequence": sequence}
        given = [key for key, value in keywords.items() if value is not None]
        if data is not None:
            if given:
                raise TypeError(
                    "mockllm.add() takes one rule as a mapping or as keywords, not both;"
                    f" got a mapping and {', '.join(f'{key}=' for key in given)}"
                )
            if not isinstance(data, Mapping):
                raise TypeError(
                    f"mockllm.add() takes a rule mapping ({{'match': ..., 'reply': ...}}); got {type(data).__name__}"
                )
            scenario = self.engine.add(data, source=source)
            return scenario if "rules" in data else scenario.rules[0]
        if reply is not None and replies is not None:
            raise TypeError("mockllm.add() takes reply= (every call's) or replies= (one per call), not both")
        if reply is None and replies is None:
            raise TypeError("mockllm.add() needs reply= (a dict, a str or a callable) or replies= (a list)")
        rule: dict[str, Any] = {}
        when = respond = None
        if callable(match):
            when = match
        elif match is not None:
            if not isinstance(match, Mapping):
                raise TypeError(f"mockllm.add(match=...) takes a dict of conditions or a callable; got {_kind(match)}")
            rule["match"] = dict(match)
        if callable(reply):
            respond = reply
        elif reply is not None:
            rule["reply"] = _reply_keys(reply, "reply")
        if replies is not None:
            rule["replies"] = _reply_list(replies, "mockllm.add")
        rule |= {key: keywords[key] for key in ("name", "times", "priority", "optional", "sequence") if key in given}
        return self.engine.add(rule, source=source, when=when, respond=respond).rules[0]

    def reply(
        self,
        content: str | None = None,
        *,
        replies: Sequence[Mapping[str, Any] | str] | None = None,
        when_user_contains: str | None = None,
        when_model: str | None = None,
        name: str | None = None,
        times: int | None = None,
        **reply_keys: Any,
    ) -> Rule:
        """Add a rule that answers `content` (or any reply keys: chunks=, tool_calls=, error=, model=...),
        or plays `replies` (strs or dicts of reply keys) one per call.

        `when_user_contains` and `when_model` (a glob) are its conditions; left out, it matches any
        request. `model=` is a reply key, as in a scenario file: the model the answer reports.
        """
        source = _caller()
        if replies is not None and (content is not None or reply_keys):
            given = ["content"] * (content is not None) + [f"{key}=" for key in reply_keys]
            raise TypeError(
                "mockllm.reply() takes content and reply keys, or replies=, not both;"
                f" got {', '.join(given)} and replies="
            )
        model = reply_keys.get("model")
        if isinstance(model, str) and any(ch in model for ch in "*?["):
            # Before issue 14, `model=` was the condition: a glob here is surely one.
            raise TypeError(
                f"mockllm.reply(model={model!r}): model= is the model the answer reports; to match"
                f" the request's model, write when_model={model!r}"
            )
        match: dict[str, Any] = {}
        if when_user_contains is not None:
            match["user"] = {"contains": when_user_contains}
        if when_model is not None:
            match["model"] = when_model
        rule: dict[str, Any] = {"match": match}
        if replies is not None:
            rule["replies"] = _reply_list(replies, "mockllm.reply")
        else:
            rule["reply"] = reply_keys if content is None else {**reply_keys, "content": content}
        if name is not None:
            rule["name"] = name
        if times is not None:
            rule["times"] = times
        return self.engine.add(rule, source=source).rules[0]

    # -- clients -----------------------------------------------------------------------

    @property
    def anthropic_base_url(self) -> str:
        """The URL to give an Anthropic client: the root, without `/v1` (the SDK appends `/v1/messages`)."""
        return self.base_url.removesuffix("/v1")

    @property
    def gemini_base_url(self) -> str:
        """The URL to give a google-genai client: the root (the SDK appends `/{version}/models/...`)."""
        return self.base_url.removesuffix("/v1")

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """An `openai.OpenAI` pointed at this fake; keyword arguments go to the constructor."""
        import openai

        kwargs.setdefault("api_key", self.keys["openai"])
        if "http_client" not in kwargs:
            kwargs["http_client"] = openai.DefaultHttpxClient(**self._http_options(openai.DefaultHttpxClient))
        client = openai.OpenAI(base_url=self.base_url, **kwargs)
        self._closers.append(client.close)
        return client

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An `openai.AsyncOpenAI` pointed at this fake; keyword arguments go to the constructor."""
        import openai

        kwargs.setdefault("api_key", self.keys["openai"])
        if "http_client" not in kwargs:
            kwargs["http_client"] = openai.DefaultAsyncHttpxClient(**self._http_options(openai.DefaultHttpxClient))
        return openai.AsyncOpenAI(base_url=self.base_url, **kwargs)

    def anthropic_client(self, **kwargs: Any) -> anthropic.Anthropic:
        """An `anthropic.Anthropic` pointed at this fake; keyword arguments go to the constructor."""
        import anthropic

        _anthropic_key(kwargs, self.keys["anthropic"])
        if "http_client" not in kwargs:
            kwargs["http_client"] = anthropic.DefaultHttpxClient(**self._http_options(anthropic.DefaultHttpxClient))
        client = anthropic.Anthropic(base_url=self.anthropic_base_url, **kwargs)
        self._closers.append(client.close)
        return client

    def async_anthropic_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """An `anthropic.AsyncAnthropic` pointed at this fake; keyword arguments go to the constructor."""
        import anthropic

        _anthropic_key(kwargs, self.keys["anthropic"])
        if "http_client" not in kwargs:
            options = self._http_options(anthropic.DefaultHttpxClient)
            kwargs["http_client"] = anthropic.DefaultAsyncHttpxClient(**options)
        return anthropic.AsyncAnthropic(base_url=self.anthropic_base_url, **kwargs)

    def gemini_client(self, **kwargs: Any) -> genai.Client:
        """A `google.genai.Client` pointed at this fake (its `.aio` too); keyword arguments go to the constructor.

        `http_options` (an `HttpOptions` or a dict) is kept, with `base_url` filled in if unset
        and, in-process, the Engine as the transport of the SDK's HTTP clients, sync and async.
        """
        from google import genai
        from google.genai import types

        given = kwargs.get("http_options")
        options = (
            given.model_copy()
            if isinstance(given, types.HttpOptions)
            else types.HttpOptions.model_validate(given or {})
        )
        if options.base_url is None:
            options.base_url = self.gemini_base_url
        # The shared SSL context under each name the SDK looks for (httpx's `verify`, aiohttp's and
        # its websockets' `ssl`): it would otherwise load the CA bundle three times, ~60 ms a client
        # (google/genai/_api_client.py, `_ensure_httpx_ssl_ctx`, `_ensure_aiohttp_ssl_ctx`...).
        sync_args: dict[str, Any] = {"verify": _ssl_context()}
        async_args: dict[str, Any] = {"verify": _ssl_context(), "ssl": _ssl_context()}
        if self.in_process:
            # A transport in the client arguments also makes the SDK read through httpx(2), not
            # aiohttp (`_use_aiohttp`), and of the transport's library (`_detect_http_backend`).
            to_engine = self._transport(_genai_http_client())
            if options.httpx_client is None:
                sync_args["transport"] = to_engine
            if options.httpx_async_client is None and getattr(options, "aiohttp_client", None) is None:
                async_args["transport"] = to_engine
        options.client_args = {**sync_args, **(options.client_args or {})}
        options.async_client_args = {**async_args, **(options.async_client_args or {})}
        kwargs["http_options"] = options
        if not any(kwargs.get(name) for name in ("api_key", "credentials", "vertexai", "enterprise")):
            kwargs["api_key"] = self.keys["gemini"]
        client = genai.Client(**kwargs)
        self._closers.append(client.close)
        return client

    def _http_options(self, http_client: type) -> dict[str, Any]:
        """Options for an SDK's own HTTP client class: in-process, the Engine as its transport.

        Over the server, it shares one SSL context: the connection is plain HTTP on loopback,
        and building a context per client (loading the CA bundle) costs ~30 ms a test.
        """
        if self.in_process:
            return {"transport": self._transport(http_client)}
        return {"verify": _ssl_context()}

    def _transport(self, http_client: type) -> Any:
        """The Engine as a transport of the HTTP library `http_client` is of (httpx or httpx2)."""
        from mockllm.transport import transport

        from .inprocess import library_of

        return transport(self.engine, library=library_of(http_client))

    def patch_env(self) -> None:
        """Point the clients the app builds itself at this fake, for this test (restored after).

        OpenAI: OPENAI_BASE_URL, OPENAI_API_KEY. Anthropic: ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY.
        google-genai: GOOGLE_GEMINI_BASE_URL, and GOOGLE_API_KEY and GEMINI_API_KEY (it reads
        the first, apps often the second), with the Vertex AI switches unset.
        """
        env = self._env
        env.setenv("OPENAI_BASE_URL", self.base_url)
        env.setenv("OPENAI_API_KEY", self.keys["openai"])
        env.setenv("ANTHROPIC_BASE_URL", self.anthropic_base_url)
        env.setenv("ANTHROPIC_API_KEY", self.keys["anthropic"])
        env.setenv("GOOGLE_GEMINI_BASE_URL", self.gemini_base_url)
        for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
            env.setenv(name, self.keys["gemini"])
        for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE"):
            env.delenv(name, raising=False)

    # -- the journal -------------------------------------------------------------------

    @property
    def requests(self) -> Journal:
        """Every request received, in order: Entry(.json, .headers, .rule, .status, .sent, ...)."""
        return self.engine.journal

    @property
    def last_request(self) -> Entry:
        return self.engine.journal.last

    @property
    def last_user_message(self) -> str | None:
        """The last user input of the last request, in whichever API, as `match.user` saw it
        (None: it had none, or it was refused before any rule saw it)."""
        return self.last_request.user_text

    def assert_called(self, times: int | None = None, *, rule: str | None = None) -> None:
        """Assert requests were received (exactly `times` of them, if given), all or those `rule` answered."""
        __tracebackhide__ = True
        problem = called_problem(list(self.requests), times, rule)
        if problem is not None:
            raise AssertionError(problem)

    def assert_not_called(self) -> None:
        __tracebackhide__ = True
        self.assert_called(times=0)

    # -- teardown ----------------------------------------------------------------------

    def problems(self, *, allow_unmatched: bool, assert_all_used: bool) -> list[str]:
        """What should fail the test: `request_problems`, and (opt-in) `usage_problems`."""
        return self.request_problems(allow_unmatched=allow_unmatched) + (
            self.usage_problems() if assert_all_used else []
        )

    def request_problems(self, *, allow_unmatched: bool, failure: str = "") -> list[str]:
        """The requests that should fail the test and were not reported yet: those no rule matched
        (unless allowed), and those whose Python code (a callable of `add()`) raised. Each request is
        reported once: in the failure of a test that failed, else at its teardown.

        `failure`: the text of the test's failure, when it failed. A report it already holds (the
        SDK's exception quotes the error message: openai >= 3 line by line) is not copied again.
        """
        fresh = [entry for entry in self.requests if entry.index not in self._reported]
        missed = set() if allow_unmatched else {entry.index for entry in self.requests.unmatched}
        unmatched = [entry for entry in fresh if entry.index in missed]
        raised = [entry for entry in fresh if entry.raised]
        self._reported.update(entry.index for entry in unmatched + raised)
        hint = self.unmatched_hint(unmatched) if self.unmatched_hint is not None and unmatched else None
        return request_report(unmatched, raised, failure, no_rules=not self.engine.router.rules, hint=hint)

    def usage_problems(self) -> list[str]:
        """The rules this test left unused, and the `replies` it did not play out (`optional: true`
        rules aside)."""
        return usage_report(self.engine.router)

    def close(self) -> None:
        """Close the clients made by `client()`, and restore the environment."""
        for close in self._closers:
            close()
        self._closers.clear()
        self._env.undo()

    def resolve(self, path: str | Path) -> Path:
        """A scenario path: absolute as is; relative, in the test file's folder, else the rootdir."""
        path = Path(path)
        if path.is_absolute():
            return readable(path)
        for folder in self._search:
            if (folder / path).exists():
                return readable(folder / path)
        # Each folder once: the test file's may be the rootdir.
        tried = ", ".join(dict.fromkeys(str(folder / path) for folder in self._search))
        raise FileNotFoundError(f"no scenario file or folder {str(path)!r} (looked at: {tried})")

    def assert_backoff_honoured(self, *, allow_none: bool = False) -> None:
        """Assert every request that retried a refused one (a 429 or 503 that asked for a wait: a scenario's
        `limits`, or a scripted `retry-after`) came no sooner than its `retry-after` asked (mockllm/backoff.py).
        No retry at all fails too, unless `allow_none`: a test that proves its app backs off must see it retry."""
        __tracebackhide__ = True
        from mockllm.backoff import unhonoured_report

        entries = [
            {
                "index": e.index,
                "endpoint": e.endpoint,
                "path": e.path,
                "status": e.status,
                "rule": e.rule,
                "error": e.error,
                "retry_after": e.retry_after,
                "backoff": e.backoff,
            }
            for e in self.requests
        ]
        report = unhonoured_report(entries, allow_none=allow_none)
        if report is not None:
            raise AssertionError(report)


_loaded: dict[tuple[Path, tuple[tuple[str, int, int], ...]], list[Scenario]] = {}


def _load(path: Path) -> list[Scenario]:
    """`mockllm.load`, cached while the files are unchanged: a test's Engine shares the
    session's compiled rules (they are immutable; call counts live in each Engine's Router)."""
    root = path.resolve()
    files = sorted(root.rglob("*")) if root.is_dir() else [root]
    stats = [(f, f.stat()) for f in files if f.is_file()]
    stamp = tuple((str(f), st.st_mtime_ns, st.st_size) for f, st in stats)
    key = (path, stamp)  # the path as given: it names the rules' origins
    if key not in _loaded:
        if len(_loaded) > 256:
            _loaded.clear()
        _loaded[key] = load(path)
    return _loaded[key]


def _anthropic_key(kwargs: dict[str, Any], key: str) -> None:
    """`key`, unless the test gave a credential of its own (the SDK takes only one of them)."""
    if not any(kwargs.get(name) is not None for name in ("api_key", "auth_token", "credentials", "config", "profile")):
        kwargs["api_key"] = key


def _genai_http_client() -> type:
    """The HTTP client class google-genai reads through. 3.x: httpx2's unless GOOGLE_GENAI_HTTP_CLIENT
    says httpx or httpx2 is missing (google/genai/_api_client.py, `_get_http_client_backend`); it
    then follows the library of the transport it is given. 1.x knows httpx alone."""
    from google import genai

    from .inprocess import installed

    if int(genai.__version__.split(".")[0]) < 3:
        return importlib.import_module("httpx").Client  # type: ignore[no-any-return]
    name = os.environ.get("GOOGLE_GENAI_HTTP_CLIENT", "").strip().lower()
    if name not in ("httpx", "httpx2"):
        name = "httpx2" if installed("httpx2") else "httpx"
    return importlib.import_module(name).Client  # type: ignore[no-any-return]


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _reply_list(replies: Any, method: str) -> list[dict[str, Any]]:
    """`replies=`: a list (any sequence but a str) of strs or reply mappings."""
    if isinstance(replies, str | Mapping) or not isinstance(replies, Sequence):
        raise TypeError(f"{method}(replies=...) takes a list of dicts or strs; got {_kind(replies)}")
    return [_reply_keys(one, f"replies[{i}]") for i, one in enumerate(replies)]


def _reply_keys(value: Any, where: str) -> dict[str, Any]:
    """Reply keys from a str (the content) or a mapping."""
    if isinstance(value, str):
        return {"content": value}
    if isinstance(value, Mapping):
        return dict(value)
    hint = " (a callable goes in reply=)" if callable(value) else ""
    raise TypeError(f"mockllm: {where} must be a dict of reply keys or a str{hint}; got {_kind(value)}")


def _kind(value: Any) -> str:
    return type(value).__name__


def readable(path: Path) -> Path:
    """Relative to the working directory when under it, so diagnostics stay readable."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path.resolve()


def _caller() -> str:
    """Where the test added a rule (file:line), to name it in diagnostics."""
    import sys

    frame = sys._getframe(2)
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
