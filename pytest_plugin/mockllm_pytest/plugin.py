"""The pytest11 entry point: options, the `mockllm` marker, and the fixtures.

- `mockllm` (function scope): a `MockLLM` for the test, served in the session's server
  under a namespace of its own, or in-process (no socket), per the mode setting.
- `mockllm_server` (session scope, so one per xdist worker): the BackgroundServer, started
  on first use only.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mockllm import Engine, Scenario, ScenarioError, load

from .handle import MockLLM, readable
from .settings import MARKER, Settings, add_options, read_settings, test_settings

if TYPE_CHECKING:
    from mockllm.server import BackgroundServer

__all__ = ["mockllm", "mockllm_server"]

_settings = pytest.StashKey[Settings]()
_defaults = pytest.StashKey[list[Scenario]]()  # the mockllm_scenarios option's, loaded once
_call_report = pytest.StashKey[pytest.TestReport]()
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


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[_settings].header()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_call_report] = report  # the fixture's teardown checks more when the test passed
    return report


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
    `@pytest.mark.mockllm(*paths, ...)` marker. At teardown, a request that no rule matched
    fails the test; so do unused rules and unplayed replies, with `assert_all_used`.
    """
    config = request.config
    settings = test_settings(config.stash[_settings], request.node.get_closest_marker("mockllm"))
    engine = Engine(seed=settings.seed, time_scale=settings.time_scale)
    search = (Path(request.path).parent, config.rootpath)
    name = _namespace()

    if settings.mode == "server":
        server: BackgroundServer = request.getfixturevalue("mockllm_server")
        handle = MockLLM(engine, f"{server.url}/ns/{name}/v1", "server", search=search)
        server.namespaces[name] = engine
        undo: Callable[[], object] = lambda: server.namespaces.pop(name, None)  # noqa: E731
    else:
        from mockllm.transport import HOST

        from .inprocess import Interceptor

        handle = MockLLM(engine, f"http://{HOST}/v1", "inprocess", search=search)
        interceptor = Interceptor(engine)
        interceptor.start()
        undo = interceptor.stop

    try:
        handle.use(config.stash[_defaults])
        for path in settings.paths:
            try:
                handle.load(path)
            except (ScenarioError, FileNotFoundError) as exc:
                pytest.fail(f"mockllm: @pytest.mark.mockllm: {exc}", pytrace=False)
        if settings.env:
            handle.patch_env()
        yield handle
    finally:
        problems = handle.problems(
            allow_unmatched=settings.allow_unmatched,
            assert_all_used=settings.assert_all_used and _passed(request.node),
        )
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
