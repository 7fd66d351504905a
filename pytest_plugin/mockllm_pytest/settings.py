"""The plugin's settings: command-line options, their ini twins, and the `mockllm` marker.

Each setting is read from the command line, else the ini file, else its default, and
checked once at start-up: a bad value stops the run with a `pytest.UsageError`. The
marker overrides them for one test; the marker closest to the test wins, whole.

The record modes (`record`, `upstream`, the marker's `cassette`) are pytest-recording's:
mockllm_pytest/cassette.py does what they say.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from .cassette import upstream_part

__all__ = [
    "ASSERT_ALL_USED",
    "MARKER",
    "MODES",
    "RECORD_MODES",
    "Settings",
    "TestSettings",
    "add_options",
    "read_settings",
    "test_settings",
]

MODES = ("server", "inprocess")
# assert_all_used: off; each test checks its own rules at teardown; or once, over the whole session.
ASSERT_ALL_USED = ("false", "true", "session")
# none: replay the cassette only; once: record a test that has no cassette yet, else replay; new_episodes:
# replay what the cassette has and record what it lacks; all: record everything again.
RECORD_MODES = ("none", "once", "new_episodes", "all")
MARKER = (
    "mockllm(*paths, mode=None, seed=None, time_scale=None, env=False, assert_all_used=None, allow_unmatched=False,"
    " cassette=None): scenario files or folders for the `mockllm` fixture (relative to the test file's folder, else"
    " the rootdir), the test's cassette (relative to the test file's folder; default"
    " cassettes/<module>/<test>.yaml there), and settings for this test that override the mockllm options;"
    " the closest marker wins."
)
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The session's effective settings."""

    mode: str = "server"
    scenarios: Path | None = None  # loaded by every `mockllm` fixture, before the marker's
    seed: int = 0
    time_scale: float = 0.0  # 0: streams are sent at once; 1: as the scenarios' timing says
    # "false"; "true": each test that passed fails at teardown for the rules it left unused; "session":
    # one check at the end of the session, where a rule counts as used if any test used it.
    assert_all_used: str = "false"
    record: str = "none"  # one of RECORD_MODES
    upstream: str | None = None  # where the record modes send what no rule answers

    def header(self) -> str:
        scenarios = self.scenarios if self.scenarios is not None else "none"
        header = (
            f"mockllm: mode={self.mode}, scenarios={scenarios}, seed={self.seed}, "
            f"time_scale={self.time_scale:g}, assert_all_used={self.assert_all_used}"
        )
        if self.record != "none" or self.upstream is not None:
            header += f", record={self.record}, upstream={self.upstream or 'none'}"
        return header


@dataclass(frozen=True)
class TestSettings:
    """One test's settings: the session's, overridden by its closest `mockllm` marker."""

    __test__ = False  # not a test class, whatever its name says

    mode: str
    seed: int
    time_scale: float
    assert_all_used: bool  # this test checks its own rules at teardown
    # Its rules are among those the session checks at its end (assert_all_used=session; a marker's
    # assert_all_used=False takes them out). What it uses counts as used either way.
    session_check: bool = False
    paths: tuple[str, ...] = ()
    env: bool = False
    allow_unmatched: bool = False
    cassette: str | None = None  # the marker's cassette path, as given
    record: str = "none"  # the session's record mode and upstream (no marker changes them)
    upstream: str | None = None


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockllm", "mockllm: a fake OpenAI-compatible provider")
    options = [
        ("mode", "server (one uvicorn server per session, a namespace per test) or inprocess (no socket)", MODES[0]),
        ("scenarios", "scenario file or folder every `mockllm` fixture loads first", "none"),
        ("seed", "seed for ids, timestamps and generated text", "0"),
        ("time-scale", "multiplier of the scenarios' timing: 0 sends at once, 1 as written", "0"),
        (
            "record",
            "cassettes: none (replay only), once (record a test with no cassette), new_episodes (record what the"
            " cassette lacks), all (record everything again)",
            "none",
        ),
        (
            "upstream",
            "the provider the record modes record from, e.g. https://api.openai.com/v1; or several, comma-separated,"
            " each but one as PROVIDER=URL (anthropic=https://api.anthropic.com)",
            "none",
        ),
    ]
    for name, help_text, default in options:
        group.addoption(
            f"--mockllm-{name}",
            dest=f"mockllm_{name.replace('-', '_')}",
            default=None,
            metavar="VALUE",
            help=f"{help_text} (default: {default})",
        )
        parser.addini(f"mockllm_{name.replace('-', '_')}", f"{help_text} (default: {default})", default="")
    # Two flags, not one option with an optional value: `--mockllm-assert-all-used tests/` would
    # take the path for its value.
    group.addoption(
        "--mockllm-assert-all-used",
        dest="mockllm_assert_all_used",
        action="store_const",
        const="true",
        default=None,
        help="fail a test that passed but left rules unused, or replies not all played",
    )
    group.addoption(
        "--mockllm-assert-all-used-session",
        dest="mockllm_assert_all_used",
        action="store_const",
        const="session",
        help="check once, at the end of the session, that every rule was used by some test",
    )
    parser.addini(
        "mockllm_assert_all_used",
        "true: fail a test that left rules unused; session: check once over the whole session (default: false)",
        default="",
    )


def read_settings(config: pytest.Config) -> Settings:
    """The session's settings: command line, else ini, else default; UsageError on a bad value."""

    def raw(name: str) -> tuple[Any, str] | None:
        value = config.getoption(name)
        if value is not None:
            return value, f"--{name.replace('_', '-')}"
        ini = config.getini(name)
        if ini not in ("", None):
            return ini, f"ini option {name}"
        return None

    def get(name: str, parse: Callable[[Any, str], T], default: T) -> T:
        found = raw(name)
        return default if found is None else parse(*found)

    scenarios = None
    found = raw("mockllm_scenarios")
    if found is not None:
        value, where = found
        # Paths on the command line are relative to where pytest was run; in an ini file, to that file.
        if where.startswith("--"):
            base = config.invocation_params.dir
        else:
            base = config.inipath.parent if config.inipath is not None else config.rootpath
        scenarios = _existing_path(base / str(value), where)
    record = get("mockllm_record", _record, "none")
    upstream: str | None = get("mockllm_upstream", _upstream, None)
    if record != "none" and upstream is None:
        given = raw("mockllm_record")
        on_command_line = given is not None and given[1].startswith("--")
        said = f"--mockllm-record={record}" if on_command_line else f"the ini option mockllm_record = {record}"
        raise pytest.UsageError(
            f"mockllm: {said} records from a provider, and none is given: add --mockllm-upstream URL"
            " (or the mockllm_upstream ini option), e.g. --mockllm-upstream=https://api.openai.com/v1"
        )
    return Settings(
        mode=get("mockllm_mode", _mode, "server"),
        scenarios=scenarios,
        seed=get("mockllm_seed", _seed, 0),
        time_scale=get("mockllm_time_scale", _time_scale, 0.0),
        assert_all_used=get("mockllm_assert_all_used", _assert_all_used, "false"),
        record=record,
        upstream=upstream,
    )


def test_settings(settings: Settings, marker: pytest.Mark | None) -> TestSettings:
    """Apply a `mockllm` marker to the session's settings (pytest.fail on a bad marker)."""
    base = TestSettings(
        settings.mode,
        settings.seed,
        settings.time_scale,
        assert_all_used=settings.assert_all_used == "true",
        session_check=settings.assert_all_used == "session",
        record=settings.record,
        upstream=settings.upstream,
    )
    if marker is None:
        return base
    kwargs: Mapping[str, Any] = marker.kwargs
    known = {f.name for f in dataclasses.fields(TestSettings)} - {"paths", "session_check", "record", "upstream"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        pytest.fail(
            f"mockllm: @pytest.mark.mockllm: unknown argument(s) {', '.join(unknown)};"
            f" known: {', '.join(sorted(known))}",
            pytrace=False,
        )
    bad_paths = [p for p in marker.args if not isinstance(p, str | Path)]
    if bad_paths:
        pytest.fail(
            f"mockllm: @pytest.mark.mockllm: scenario paths must be str or Path, got {bad_paths[0]!r}", pytrace=False
        )
    where = "@pytest.mark.mockllm"
    try:
        changes: dict[str, Any] = {"paths": tuple(str(p) for p in marker.args)}
        if kwargs.get("mode") is not None:
            changes["mode"] = _mode(kwargs["mode"], f"{where}(mode=...)")
        if kwargs.get("seed") is not None:
            changes["seed"] = _seed(kwargs["seed"], f"{where}(seed=...)")
        if kwargs.get("time_scale") is not None:
            changes["time_scale"] = _time_scale(kwargs["time_scale"], f"{where}(time_scale=...)")
        if kwargs.get("cassette") is not None:
            changes["cassette"] = _cassette(kwargs["cassette"], f"{where}(cassette=...)")
        for flag in ("env", "allow_unmatched", "assert_all_used"):
            if kwargs.get(flag) is not None:
                changes[flag] = _flag(kwargs[flag], f"{where}({flag}=...)")
        if changes.get("assert_all_used") is False:
            changes["session_check"] = False  # out of the session's check too
    except pytest.UsageError as exc:
        problem = str(exc)
    else:
        return dataclasses.replace(base, **changes)
    pytest.fail(problem, pytrace=False)  # out of the except: the error says it once, not chained


# -- parsers: (value, where it came from) -> value, or UsageError --------------------------------


def _mode(value: Any, where: str) -> str:
    text = str(value).strip().lower().replace("-", "").replace("_", "")
    if text not in MODES:
        raise pytest.UsageError(f"mockllm: {where} must be one of {', '.join(MODES)}; got {value!r}")
    return text


def _seed(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise pytest.UsageError(f"mockllm: {where} must be an integer; got {value!r}")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise pytest.UsageError(f"mockllm: {where} must be an integer; got {value!r}") from None


def _time_scale(value: Any, where: str) -> float:
    problem = f"mockllm: {where} must be a number >= 0 (0 sends at once, 1 keeps the scenarios' timing); got {value!r}"
    if isinstance(value, bool):
        raise pytest.UsageError(problem)
    try:
        scale = float(str(value).strip()) if not isinstance(value, int | float) else float(value)
    except ValueError:
        raise pytest.UsageError(problem) from None
    if scale < 0 or not math.isfinite(scale):
        raise pytest.UsageError(problem)
    return scale


# What the ini option may say (pytest's words for a bool, and "session"), and what it means.
_USED_WORDS = dict.fromkeys(("true", "1", "yes", "on", "y", "t"), "true")
_USED_WORDS |= dict.fromkeys(("false", "0", "no", "off", "n", "f"), "false") | {"session": "session"}


def _assert_all_used(value: Any, where: str) -> str:
    text = str(value).strip().lower()
    if text not in _USED_WORDS:
        raise pytest.UsageError(f"mockllm: {where} must be one of {', '.join(ASSERT_ALL_USED)}; got {value!r}")
    return _USED_WORDS[text]


def _record(value: Any, where: str) -> str:
    text = str(value).strip().lower().replace("-", "_")
    if text not in RECORD_MODES:
        raise pytest.UsageError(f"mockllm: {where} must be one of {', '.join(RECORD_MODES)}; got {value!r}")
    return text


UPSTREAM_PROVIDERS = ("openai", "anthropic", "gemini")


def _upstream(value: Any, where: str) -> str:
    """One URL for every API, or several, comma-separated, each for one provider as `PROVIDER=URL`
    (`https://api.openai.com/v1,anthropic=https://api.anthropic.com`): a suite that talks to several
    providers records them in one run."""
    said = []
    for part in str(value).split(","):
        provider, url = upstream_part(part.strip())
        parts = urlsplit(url)
        if (
            (provider and provider not in UPSTREAM_PROVIDERS)
            or parts.scheme not in ("http", "https")
            or not parts.netloc
        ):
            raise pytest.UsageError(
                f"mockllm: {where} must be an http(s) URL, e.g. https://api.openai.com/v1, or several, comma-separated,"
                f" each as PROVIDER=URL ({', '.join(UPSTREAM_PROVIDERS)}); got {value!r}"
            )
        said.append(f"{provider}={url.rstrip('/')}" if provider else url.rstrip("/"))
    return ",".join(said)


def _cassette(value: Any, where: str) -> str:
    if not isinstance(value, str | Path) or not str(value).strip():
        raise pytest.UsageError(f"mockllm: {where} must be a path (str or Path) to a .yaml file; got {value!r}")
    return str(value)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise pytest.UsageError(f"mockllm: {where} must be True or False; got {value!r}")
    return value


def _existing_path(path: Path, where: str) -> Path:
    if not path.exists():
        raise pytest.UsageError(f"mockllm: {where}: no such scenario file or folder: {path}")
    return path.resolve()
