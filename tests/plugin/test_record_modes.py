"""The record modes (`--mockllm-record`, issue 15) through pytester: the upstream is another mockllm on
loopback, each mode end to end in both modes, with the openai SDK (whole, streamed, and the app's own
client through `env=True`) and the anthropic SDK. A replay runs with the upstream stopped, so a test
that passes then was answered by its cassette."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from plugin_helpers import MODES, warm_up

from mockllm import Engine
from mockllm.server import BackgroundServer

pytest_plugins = ["pytester"]
warm_up()
anthropic = pytest.importorskip("anthropic")

UPSTREAM = {
    "version": 1,
    "rules": [
        {"name": "hello", "match": {"user": {"contains": "Hello"}}, "reply": {"content": "Hi there, friend."}},
        {"name": "bye", "match": {"user": {"contains": "Bye"}}, "reply": {"content": "Goodbye."}},
    ],
}
SECRET = "sk-live-secret-0123456789"
NO_PLUGINS = [
    f"-p no:{name}" for name in ("hypothesispytest", "faker", "langsmith_plugin", "anyio", "xdist", "cacheprovider")
]

APP = """
import openai
import pytest

HELLO = [{"role": "user", "content": "Hello"}]


def test_openai(mockllm):
    client = mockllm.client(max_retries=0)
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True) as stream:
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert (whole.choices[0].message.content, text) == ("Hi there, friend.", "Hi there, friend.")
    assert [entry.status for entry in mockllm.requests] == [200, 200]


def test_anthropic(mockllm):
    claude = mockllm.anthropic_client(max_retries=0)
    message = claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO)
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=HELLO) as stream:
        streamed = stream.get_final_text()
    assert (message.content[0].text, streamed) == ("Hi there, friend.", "Hi there, friend.")


@pytest.mark.mockllm(env=True)
def test_the_apps_own_client(mockllm):
    answer = openai.OpenAI(max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert answer.choices[0].message.content == "Hi there, friend."
"""

ASK = """
import pytest

ASKED = {asked!r}


@pytest.mark.parametrize("who", ["a/b c"])
def test_ask(mockllm, who):
    client = mockllm.client(max_retries=0)
    for text in ASKED:
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{{"role": "user", "content": text}}])
        print("ANSWER", answer.choices[0].message.content)
"""


@contextmanager
def upstream(scenario: dict[str, Any] = UPSTREAM) -> Iterator[BackgroundServer]:
    engine = Engine(time_scale=0)
    engine.add(scenario)
    with BackgroundServer(engine) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner runs send the environment's keys when they record: none but the tests' own."""
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """An inner run, without the plugins it does not need: pytester forgets the modules a run imports, so
    each run would import (and assertion-rewrite) hypothesis and the others again, a second or more."""
    return pytester.runpytest(*NO_PLUGINS, *args)


def cassette(pytester: pytest.Pytester, module: str, test: str) -> Path:
    return pytester.path / "cassettes" / module / f"{test}.yaml"


def rules(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text())["rules"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", MODES)
def test_once_records_then_replays_with_the_upstream_gone(pytester: pytest.Pytester, mode: str) -> None:
    pytester.makepyfile(test_app=APP)
    with upstream() as server:
        first = run(pytester, f"--mockllm-mode={mode}", "--mockllm-record=once", f"--mockllm-upstream={server.url}")
        first.assert_outcomes(passed=3)
        heard = [(entry.endpoint, entry.stream) for entry in server.engine.journal]
    # Each request went through to the upstream: the cassettes hold what it answered.
    assert heard == [("chat", False), ("chat", True), ("anthropic", False), ("anthropic", True), ("chat", False)]
    openai_rules = rules(cassette(pytester, "test_app", "test_openai"))
    assert [len(rule["replies"]) for rule in openai_rules] == [2]  # the same request twice: a sequence
    assert openai_rules[0]["match"]["endpoint"] == "chat"
    assert [rule["match"]["endpoint"] for rule in rules(cassette(pytester, "test_app", "test_anthropic"))] == [
        "anthropic"
    ]
    assert cassette(pytester, "test_app", "test_the_apps_own_client").is_file()
    # The upstream is gone (nothing listens on port 9): `once` with the cassettes there replays them.
    again = run(pytester, f"--mockllm-mode={mode}", "--mockllm-record=once", "--mockllm-upstream=http://127.0.0.1:9")
    again.assert_outcomes(passed=3)


def test_none_without_a_cassette_fails_naming_the_command_that_records_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APP)
    result = run(pytester, "-k", "openai or anthropic")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*matched no rule*",
            "The test has no cassette (cassettes/test_app/test_openai.yaml). To record one, from the provider:",
            "  pytest test_app.py::test_openai --mockllm-record=once --mockllm-upstream=https://api.openai.com/v1",
            "The test has no cassette (cassettes/test_app/test_anthropic.yaml). To record one, from the provider:",
            "  pytest test_app.py::test_anthropic --mockllm-record=once --mockllm-upstream=https://api.anthropic.com",
        ]
    )


def test_new_episodes_appends_what_the_cassette_lacks(pytester: pytest.Pytester) -> None:
    path = cassette(pytester, "test_ask", "test_ask[a_b_c]")  # the parametrized id, made file-safe
    options = ["--mockllm-mode=inprocess", "-s"]
    with upstream() as server:
        pytester.makepyfile(test_ask=ASK.format(asked=["Hello"]))
        record = [f"--mockllm-upstream={server.url}"]
        run(pytester, *options, "--mockllm-record=once", *record).assert_outcomes(passed=1)
        before = path.read_text()
        pytester.makepyfile(test_ask=ASK.format(asked=["Hello", "Bye"]))
        # Replay only: the new request fails the test, which says how to record what the cassette lacks,
        # from the upstream the ini file names.
        pytester.makeini(f"[pytest]\nmockllm_upstream = {server.url}/v1\n")
        replayed = run(pytester, *options)
        replayed.assert_outcomes(failed=1)
        replayed.stdout.fnmatch_lines(
            [
                "The test's cassette (cassettes/test_ask/test_ask?a_b_c?.yaml) has no rule for it.*",
                "  pytest 'test_ask.py::test_ask?a/b c?' --mockllm-record=new_episodes"
                f" --mockllm-upstream={server.url}/v1",
                "(or --mockllm-record=all to record the whole test again)",
            ]
        )
        sent = len(server.engine.journal)
        appended = run(pytester, *options, "--mockllm-record=new_episodes", *record)
        appended.assert_outcomes(passed=1)
        appended.stdout.fnmatch_lines(["*ANSWER Hi there, friend.", "ANSWER Goodbye."])
        # Only the request the cassette lacked reached the upstream; the old rules are kept as they were.
        assert [entry.user_text for entry in server.engine.journal][sent:] == ["Bye"]
    after = path.read_text()
    assert after.startswith(before)
    assert [rule["reply"]["content"] for rule in rules(path)] == ["Hi there, friend.", "Goodbye."]
    run(pytester, *options).assert_outcomes(passed=1)  # both replayed, the upstream gone


def test_all_records_everything_again(pytester: pytest.Pytester) -> None:
    mode = "server"
    path = cassette(pytester, "test_ask", "test_ask[a_b_c]")
    pytester.makepyfile(test_ask=ASK.format(asked=["Hello", "Bye"]))
    with upstream() as server:
        options = [f"--mockllm-mode={mode}", f"--mockllm-upstream={server.url}"]
        run(pytester, *options, "--mockllm-record=once").assert_outcomes(passed=1)
    assert [rule["reply"]["content"] for rule in rules(path)] == ["Hi there, friend.", "Goodbye."]
    changed = {"version": 1, "rules": [{"match": {"user": {"contains": "Hello"}}, "reply": {"content": "Hi again."}}]}
    pytester.makepyfile(test_ask=ASK.format(asked=["Hello"]))
    with upstream(changed) as server:
        options = [f"--mockllm-mode={mode}", f"--mockllm-upstream={server.url}", "-s"]
        result = run(pytester, *options, "--mockllm-record=all")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*ANSWER Hi again."])  # the cassette was not replayed
        assert len(server.engine.journal) == 1
    assert [rule["reply"]["content"] for rule in rules(path)] == ["Hi again."]  # rewritten: "Bye" is gone


def test_the_marker_names_the_cassette_and_no_secret_reaches_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # the real key a recording run is given
    pytester.makepyfile(
        test_named=f"""
        import pytest

        def ask(mockllm, text):
            answer = mockllm.client(max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": text}}]
            )
            assert answer.choices[0].message.content == "Hi there, friend."

        @pytest.mark.mockllm(cassette="recorded/hello.yaml")
        def test_hello(mockllm):
            ask(mockllm, "Hello")

        def test_key(mockllm):
            ask(mockllm, "Hello, my key is {SECRET}")
        """
    )
    with upstream() as server:
        run(pytester, "--mockllm-record=once", f"--mockllm-upstream={server.url}").assert_outcomes(passed=2)
        assert server.engine.journal.last.headers["authorization"] == f"Bearer {SECRET}"  # sent to the upstream
    named = pytester.path / "recorded" / "hello.yaml"
    assert [rule["match"]["endpoint"] for rule in rules(named)] == ["chat"]
    assert sorted(p.name for p in (pytester.path / "cassettes" / "test_named").iterdir()) == ["test_key.yaml"]
    for path in (named, cassette(pytester, "test_named", "test_key")):
        assert SECRET not in path.read_text()
    assert "Hello, my key is [redacted]" in cassette(pytester, "test_named", "test_key").read_text()
    run(pytester, "-k", "hello").assert_outcomes(passed=1)  # replayed from the marker's cassette


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--mockllm-record=once"],
            "mockllm: --mockllm-record=once records from a provider, and none is given: add --mockllm-upstream URL*",
        ),
        (["--mockllm-record=sometimes"], "mockllm: --mockllm-record must be one of none, once, new_episodes, all*"),
        (["--mockllm-upstream=api.openai.com"], "mockllm: --mockllm-upstream must be an http(s) URL*"),
        (
            ["--mockllm-upstream=https://api.openai.com/v1,claude=https://api.anthropic.com"],
            "mockllm: --mockllm-upstream must be an http(s) URL*each as PROVIDER=URL (openai, anthropic, gemini)*",
        ),
    ],
    ids=["no-upstream", "bad-mode", "bad-upstream", "bad-provider"],
)
def test_bad_record_settings_stop_the_run(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile(test_app=APP)
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_an_upstream_that_does_not_answer_fails_the_test_saying_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ask=ASK.format(asked=["Hello"]))
    result = run(pytester, "--mockllm-record=once", "--mockllm-upstream=http://127.0.0.1:9")  # nothing listens
    result.assert_outcomes(failed=1)  # in the test's failure, once: no error at teardown as well
    result.stdout.fnmatch_lines(
        [
            "*InternalServerError: Error code: 502*",
            "mockllm: recording from http://127.0.0.1:9: 1 request(s) got no answer from it:",
            "  POST /v1/chat/completions: the upstream did not answer (ConnectError*",
        ]
    )
    assert not (pytester.path / "cassettes").exists()


CHAIN = """
def test_chain(mockllm):
    client = mockllm.client(max_retries=0)
    first = client.responses.create(model="gpt-4.1-mini", input="Hello")
    second = client.responses.create(model="gpt-4.1-mini", input="Bye", previous_response_id=first.id)
    print("CHAIN", first.id, first.output_text, second.output_text)
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_previous_response_id_chain_records_and_replays(pytester: pytest.Pytester, mode: str) -> None:
    """The second request names the upstream's response, which the test's Engine never made: while
    recording it goes on to the upstream (the Engine's 404 would end the chain), and the replay answers
    the first request with the recorded id, so the second finds it."""
    pytester.makepyfile(test_chain=CHAIN)
    options = [f"--mockllm-mode={mode}", "-s"]
    with upstream() as server:
        recorded = run(pytester, *options, "--mockllm-record=once", f"--mockllm-upstream={server.url}")
        recorded.assert_outcomes(passed=1)
        assert [entry.status for entry in server.engine.journal] == [200, 200]
        first_id = server.engine.journal[1].json["previous_response_id"]
    recorded.stdout.fnmatch_lines([f"*CHAIN {first_id} Hi there, friend. Goodbye."])
    replayed = run(pytester, *options, "--mockllm-upstream=http://127.0.0.1:9")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines([f"*CHAIN {first_id} Hi there, friend. Goodbye."])


TWO_PROVIDERS = """
def test_both(mockllm):
    chat = mockllm.client(max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
    )
    claude = mockllm.anthropic_client(max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=50, messages=[{"role": "user", "content": "Hello"}]
    )
    print("BOTH", chat.choices[0].message.content, "|", claude.content[0].text)
"""


@pytest.mark.parametrize("mode", MODES)
def test_one_run_records_from_an_upstream_per_provider(pytester: pytest.Pytester, mode: str) -> None:
    """`--mockllm-upstream URL,anthropic=URL`: OpenAI's requests go to the first, Anthropic's to the
    second, into the test's one cassette; the replay needs neither."""
    pytester.makepyfile(test_both=TWO_PROVIDERS)
    openai_side = {"version": 1, "rules": [{"match": {"endpoint": "chat"}, "reply": {"content": "Hi from OpenAI."}}]}
    claude_side = {
        "version": 1,
        "rules": [{"match": {"endpoint": "anthropic"}, "reply": {"content": "Hi from Claude."}}],
    }
    options = [f"--mockllm-mode={mode}", "-s"]
    with upstream(openai_side) as first, upstream(claude_side) as second:
        both = f"--mockllm-upstream={first.url}/v1,anthropic={second.url}"
        recorded = run(pytester, *options, "--mockllm-record=once", both)
        recorded.assert_outcomes(passed=1)
        assert [entry.endpoint for entry in first.engine.journal] == ["chat"]
        assert [entry.endpoint for entry in second.engine.journal] == ["anthropic"]
    recorded.stdout.fnmatch_lines(["*BOTH Hi from OpenAI. | Hi from Claude."])
    assert [rule["match"]["endpoint"] for rule in rules(cassette(pytester, "test_both", "test_both"))] == [
        "chat",
        "anthropic",
    ]
    replayed = run(pytester, *options)
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*BOTH Hi from OpenAI. | Hi from Claude."])
