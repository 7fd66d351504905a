"""`MockLLM`, what the `mockllm` fixture gives a test: a fake provider of its own.

It holds an Engine (rules, sequences, journal) served either under a namespace of the
session's server or in-process, and says at teardown what went wrong: requests no rule
matched, and (opt-in) rules never used or replies never played.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mockllm import Engine, Entry, Journal, Rule, Scenario, load

if TYPE_CHECKING:
    import openai

__all__ = ["API_KEY", "MockLLM"]

API_KEY = "sk-mockllm-test"


class MockLLM:
    """A fake OpenAI-compatible provider for one test.

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
        library: Callable[[], str] | None = None,
    ) -> None:
        self.engine = engine
        self.base_url = base_url  # ends with /v1, as OpenAI clients want it
        self.mode = mode  # "server" or "inprocess"
        self._search = search  # folders relative paths are looked up in
        self._library = library  # in-process: which HTTP library the openai SDK uses
        self._closers: list[Callable[[], Any]] = []
        self._env = pytest.MonkeyPatch()
        self._files: set[Path] = set()  # scenario files loaded, so none is loaded twice

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
                self.engine.router.add(scenario.rules)
                added.append(scenario)
        return added

    def add(self, data: Mapping[str, Any]) -> Scenario:
        """Add one rule (`{"match": ..., "reply": ...}`) or a whole scenario mapping (`{"rules": [...]}`)."""
        return self.engine.add(data, source=_caller())

    def reply(
        self,
        content: str | None = None,
        *,
        when_user_contains: str | None = None,
        model: str | None = None,
        name: str | None = None,
        times: int | None = None,
        **reply: Any,
    ) -> Rule:
        """Add a rule that answers `content` (or any reply keys: chunks=, tool_calls=, error=, fault=...).

        `when_user_contains` and `model` (a glob) are its conditions; left out, it matches any request.
        """
        match: dict[str, Any] = {}
        if when_user_contains is not None:
            match["user"] = {"contains": when_user_contains}
        if model is not None:
            match["model"] = model
        if content is not None:
            reply["content"] = content
        rule: dict[str, Any] = {"match": match, "reply": reply}
        if name is not None:
            rule["name"] = name
        if times is not None:
            rule["times"] = times
        return self.engine.add(rule, source=_caller()).rules[0]

    # -- clients -----------------------------------------------------------------------

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """An `openai.OpenAI` pointed at this fake; keyword arguments go to the constructor."""
        import openai

        kwargs.setdefault("api_key", API_KEY)
        if "http_client" not in kwargs:
            kwargs["http_client"] = openai.DefaultHttpxClient(**self._http_options())
        client = openai.OpenAI(base_url=self.base_url, **kwargs)
        self._closers.append(client.close)
        return client

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An `openai.AsyncOpenAI` pointed at this fake; keyword arguments go to the constructor."""
        import openai

        kwargs.setdefault("api_key", API_KEY)
        if "http_client" not in kwargs:
            kwargs["http_client"] = openai.DefaultAsyncHttpxClient(**self._http_options())
        return openai.AsyncOpenAI(base_url=self.base_url, **kwargs)

    def _http_options(self) -> dict[str, Any]:
        """The SDK's own HTTP client, with the Engine as its transport in-process.

        Over the server, it shares one SSL context: the connection is plain HTTP on loopback,
        and building a context per client (loading the CA bundle) costs ~30 ms a test.
        """
        if self.mode == "inprocess":
            from mockllm.transport import transport

            return {"transport": transport(self.engine, library=self._library() if self._library else "httpx")}
        return {"verify": _ssl_context()}

    def patch_env(self) -> None:
        """Set OPENAI_BASE_URL and OPENAI_API_KEY for this test (restored after), for clients the app builds."""
        self._env.setenv("OPENAI_BASE_URL", self.base_url)
        self._env.setenv("OPENAI_API_KEY", API_KEY)

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
        entries = [e for e in self.requests if rule is None or e.rule == rule]
        if (times is None and not entries) or (times is not None and len(entries) != times):
            wanted = "at least 1 request" if times is None else _count(times, "request")
            if rule is not None:
                wanted += f" answered by rule {rule!r}"
            raise AssertionError(f"mockllm: expected {wanted}, got {len(entries)}\n{self._listing()}")

    def assert_not_called(self) -> None:
        __tracebackhide__ = True
        self.assert_called(times=0)

    def _listing(self) -> str:
        if not self.requests:
            return "  (no requests received)"
        return "\n".join(f"  {_describe(e)}" for e in self.requests)

    # -- teardown ----------------------------------------------------------------------

    def problems(self, *, allow_unmatched: bool, assert_all_used: bool) -> list[str]:
        """What should fail the test: unmatched requests, and (opt-in) rules not used or not played out."""
        out: list[str] = []
        unmatched = [] if allow_unmatched else self.requests.unmatched
        if unmatched:
            lines = [
                f"mockllm: {_count(len(unmatched), 'request')} matched no rule (answered {unmatched[0].status}"
                " no_rule_matched, which the code under test may have swallowed):"
            ]
            for entry in unmatched:
                lines += ["", f"{_describe(entry)}", entry.error or ""]
            lines += ["", "If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True)."]
            out.append("\n".join(lines))
        if assert_all_used:
            router = self.engine.router
            unused, unfinished = router.unused(), [r for r in router.unfinished() if router.calls(r)]
            if unused:
                lines = [f"mockllm: {_count(len(unused), 'rule')} never used (assert_all_used is on):"]
                lines += [f"  - {r.name} ({r.origin})" for r in unused]
                out.append("\n".join(lines))
            if unfinished:
                lines = [f"mockllm: {_count(len(unfinished), 'rule')} did not play all its replies:"]
                lines += [
                    f"  - {r.name} ({r.origin}): played {router.calls(r)} of {len(r.replies)}" for r in unfinished
                ]
                out.append("\n".join(lines))
            if unused or unfinished:
                out.append("Use them, remove them, or mark the test @pytest.mark.mockllm(assert_all_used=False).")
        return out

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
        tried = ", ".join(str(folder / path) for folder in self._search)
        raise FileNotFoundError(f"no scenario file or folder {str(path)!r} (looked at: {tried})")


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


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _describe(entry: Entry) -> str:
    answered = f"rule {entry.rule!r}" if entry.rule else "no rule"
    return f"#{entry.index} POST {entry.path} -> {entry.status} ({answered})"  # the path names the API


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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
