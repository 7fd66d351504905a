"""The pytest11 entry point: options, the `mockllm` marker, and the fixtures.

- `mockllm` (function scope): a `MockLLM` for the test, served in the session's server
  under a namespace of its own, or in-process (no socket), per the mode setting.
- `mockllm_server` (session scope, so one per xdist worker): the BackgroundServer, started
  on first use only.

What the journal says should fail a test (a request no rule matched, a callable that raised) is
reported once: in the test's own failure when it failed, else as an error at its teardown. With
`assert_all_used = session`, the rules are checked once, after the last test (mockllm_pytest/usage.py).
The record modes (`--mockllm-record`) replay and record each test's cassette (mockllm_pytest/cassette.py).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mockllm import Engine, Scenario, ScenarioError, load
from mockllm.asserts import count

from .cassette import CassetteRecorder, cassette_of, recording_keys
from .handle import MockLLM, readable
from .settings import MARKER, Settings, TestSettings, add_options, read_settings, test_settings
from .usage import SessionUsage

if TYPE_CHECKING:
    from mockllm.server import BackgroundServer

__all__ = ["mockllm", "mockllm_server"]

_settings = pytest.StashKey[Settings]()
_defaults = pytest.StashKey[list[Scenario]]()  # the mockllm_scenarios option's, loaded once
_call_report = pytest.StashKey[pytest.TestReport]()
_handle = pytest.StashKey[tuple[MockLLM, TestSettings]]()  # the test's, while its fixture is up
_recorder = pytest.StashKey[CassetteRecorder]()  # the test's, while it records
_usage = pytest.StashKey[SessionUsage]()  # assert_all_used=session: every test's rules
_verdict = pytest.StashKey[list[str]]()  # and what the summary says of them
_names = itertools.count()  # the readable part of a test's namespace (see `_namespace`)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    settings = read_settings(config)
    defaults: list[Scenario] = []
    if settings.scenarios is not None:
        try:
            defaults = load(readable(settings.scenarios))
        except ScenarioError as exc:
            raise pytest.UsageError(f"mockllm: the scenarios option names files that do not load:\n{exc}") from None
    config.stash[_settings] = settings
    config.stash[_defaults] = defaults
    if settings.assert_all_used == "session":
        config.stash[_usage] = SessionUsage()


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[_settings].header()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_call_report] = report  # the fixture's teardown checks more when the test passed
        found = item.stash.get(_handle, None)
        if report.failed and found is not None:
            # Said here, in the failure, the teardown does not add an error of its own for them.
            handle, settings = found
            problems = handle.request_problems(allow_unmatched=settings.allow_unmatched, failure=report.longreprtext)
            recorder = item.stash.get(_recorder, None)
            if recorder is not None:
                problems += recorder.problems()
            if problems:
                _add_section(report, "\n\n".join(problems))
    return report


def _add_section(report: pytest.TestReport, text: str) -> None:
    """Add `text` to a failure's report, under the traceback (or with the captured output, for a
    failure that has no traceback)."""
    add = getattr(report.longrepr, "addsection", None)
    if callable(add):
        add("mockllm", text)
    else:
        report.sections.append(("mockllm", text))


def pytest_deselected(items: list[pytest.Item]) -> None:
    usage = items[0].config.stash.get(_usage, None) if items else None
    if usage is not None:
        usage.deselected += len(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """assert_all_used=session: the check, after the last test (an xdist worker hands its tally over)."""
    try:
        return (yield)
    finally:  # also when the loop stops early (-x raises out of it): the summary says it did not check
        config = session.config
        usage = config.stash.get(_usage, None)
        if usage is not None and hasattr(config, "workerinput"):  # the controller checks (pytest_testnodedown)
            workeroutput: dict[str, Any] = config.workeroutput  # type: ignore[attr-defined]
            workeroutput["mockllm_usage"] = usage.dump()
        elif usage is not None:
            verdict = _session_verdict(session, usage)
            if verdict:
                config.stash[_verdict] = verdict
            if verdict[1:]:
                session.testsfailed += 1  # the exit code says the run failed (as pytest-cov's fail-under does)


def _session_verdict(session: pytest.Session, usage: SessionUsage) -> list[str]:
    """The summary's lines: [headline] when all is well or the check cannot run, [headline, *problems]."""
    if not usage.tallies:
        return []  # no test used the fixture
    headline = "mockllm: assert_all_used=session"
    if session.testsfailed:
        return [f"{headline}: not checked, {count(session.testsfailed, 'test')} failed"]
    if session.shouldstop or session.shouldfail:
        return [f"{headline}: not checked, the run stopped early"]
    if usage.deselected:
        return [
            f"{headline}: not checked, {count(usage.deselected, 'test')} deselected"
            " (the rules they use would show as unused)"
        ]
    problems = usage.problems()
    if not problems:
        return [f"{headline}: each of the {count(usage.checked_rules(), 'rule')} checked was used by a test"]
    return [f"{headline}: rules no test used", *problems]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, on the controller: a worker is done; add its tests' tally."""
    usage = node.config.stash.get(_usage, None)
    dumped = getattr(node, "workeroutput", {}).get("mockllm_usage")
    if usage is not None and dumped is not None:
        usage.merge(dumped)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    verdict = config.stash.get(_verdict, None)
    if not verdict:
        return
    headline, *problems = verdict
    if not problems:
        terminalreporter.write_line(headline)
        return
    terminalreporter.write_sep("=", headline, red=True)
    terminalreporter.write_line("\n\n".join(problems))


@pytest.fixture(scope="session")
def mockllm_server() -> Iterator[BackgroundServer]:
    """The session's mockllm server (one per xdist worker); each test gets a namespace on it."""
    from mockllm.server import BackgroundServer

    # Its own engine answers the requests sent outside any test's namespace (418, no rule); nothing
    # reads its journal, which would otherwise keep every such request for the whole session.
    with BackgroundServer(Engine(journal_limit=0)) as server:
        yield server


@pytest.fixture
def mockllm(request: pytest.FixtureRequest) -> Iterator[MockLLM]:
    """A fake LLM provider for this test: `.client()`, `.anthropic_client()`, `.gemini_client()`, `.requests`...

    It loads the scenarios of the `mockllm_scenarios` option, then those of the test's
    `@pytest.mark.mockllm(*paths, ...)` marker, then the test's cassette if it has one and the record
    mode replays it. When the record mode records, the test's clients reach its Engine through a
    recorder on a loopback port (in-process mode too), which sends what no rule matches to the
    upstream and writes it into the cassette. A request that no rule matched fails the test, and
    so does one a callable of the test's rules raised for: in its failure if it failed, else at
    teardown. With `assert_all_used`, so do unused rules and unplayed replies, in a test that
    passed; with `assert_all_used = session`, its rules are tallied for the session's check.
    """
    config = request.config
    settings = test_settings(config.stash[_settings], request.node.get_closest_marker("mockllm"))
    engine = Engine(seed=settings.seed, time_scale=settings.time_scale)
    search = (Path(request.path).parent, config.rootpath)
    name = _namespace()
    cassette = cassette_of(request.node, settings.cassette, settings.record, settings.upstream)
    recorder: CassetteRecorder | None = None

    if cassette.records:
        keys = recording_keys()
        recorder = CassetteRecorder(engine, cassette, keys)
        handle = MockLLM(engine, f"{recorder.url}/v1", settings.mode, search=search, keys=keys, in_process=False)
        undo: Callable[[], object] = recorder.stop
    elif settings.mode == "server":
        server: BackgroundServer = request.getfixturevalue("mockllm_server")
        handle = MockLLM(engine, f"{server.url}/ns/{name}/v1", "server", search=search)
        server.namespaces[name] = engine
        undo = lambda: server.namespaces.pop(name, None)  # noqa: E731
    else:
        from mockllm.transport import HOST

        from .inprocess import Interceptor

        handle = MockLLM(engine, f"http://{HOST}/v1", "inprocess", search=search)
        interceptor = Interceptor(engine)
        interceptor.start()
        undo = interceptor.stop

    handle.unmatched_hint = cassette.hint
    item = request.node
    bad_marker = None
    try:
        handle.use(config.stash[_defaults])
        for path in settings.paths:
            try:
                handle.load(path)
            except (ScenarioError, FileNotFoundError) as exc:
                bad_marker = f"mockllm: @pytest.mark.mockllm: {exc}"
                break
        if bad_marker is None and cassette.replays:
            try:
                handle.use(load(readable(cassette.path)))
            except ScenarioError as exc:
                bad_marker = (
                    f"mockllm: the test's cassette does not load (record it again: --mockllm-record=all):\n{exc}"
                )
        if bad_marker is not None:
            pytest.fail(bad_marker, pytrace=False)  # out of the except: the error says it once, not chained
        if settings.env:
            handle.patch_env()
        item.stash[_handle] = (handle, settings)
        if recorder is not None:
            item.stash[_recorder] = recorder
        yield handle
    finally:
        for key in (_handle, _recorder):
            if key in item.stash:
                del item.stash[key]
        passed = _passed(item)
        problems = handle.request_problems(allow_unmatched=settings.allow_unmatched)
        if recorder is not None:
            problems += recorder.problems()
        if settings.assert_all_used and passed:
            problems += handle.usage_problems()
        usage = config.stash.get(_usage, None)
        if usage is not None and bad_marker is None:
            usage.record(engine.router, checked=settings.session_check and passed)
        handle.close()
        undo()
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def _namespace() -> str:
    """A test's namespace on the session server: `t<n>-` (which test, in messages) and 128 random bits.

    The server listens on loopback, but any process of this machine can reach its port: a name it
    cannot guess keeps it from reading a test's answers or using up its `times: 1` rules.
    """
    return f"t{next(_names)}-{secrets.token_urlsafe(16)}"


def _passed(item: pytest.Item) -> bool:
    report = item.stash.get(_call_report, None)
    return report is not None and report.passed
