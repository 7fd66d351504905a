"""`mockllm.Remote` against a `mockllm serve` in another process: every route, and the assertion helpers
failing with the fixture's messages."""

from __future__ import annotations

import contextlib
import functools
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import mockllm
from mockllm.remote import RemoteEntry, RemoteError

SCENARIO = """\
version: 1
rules:
  - name: greeting
    match: {user: {contains: hello}}
    reply: {content: "Hi there."}
  - name: steps
    match: {user: {contains: step}}
    replies: [{content: one}, {content: two}]
  - name: spare
    optional: true
    match: {model: never}
    reply: {content: "-"}
"""


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m mockllm serve --port 0` on loopback; its root URL, read from what it prints."""
    scenario = tmp_path_factory.mktemp("remote") / "remote.yaml"
    scenario.write_text(SCENARIO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--time-scale", "0", "--scenarios", str(scenario)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    root = None
    for line in proc.stderr:
        if "OPENAI_BASE_URL=" in line:
            root = line.split("OPENAI_BASE_URL=", 1)[1].strip().removesuffix("/v1")
            break
    if root is None:
        proc.wait(10)
        pytest.fail("mockllm serve did not start")
    try:
        yield root
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


@pytest.fixture
def remote(url: str) -> mockllm.Remote:
    made = mockllm.Remote(url + "/v1")  # a base URL as the SDKs take it works too
    made.reset()
    for rule in made.rules():
        if rule["origin"].startswith("<control>"):
            made.remove(rule["name"])
    return made


@functools.cache
def client_of(base_url: str) -> openai.OpenAI:
    """One client per URL: making one (its SSL context) costs more than the requests of a test."""
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)


def ask(url: str, text: str) -> str | None:
    client = client_of(f"{url}/v1")
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content


def test_health_version_and_rules(remote: mockllm.Remote) -> None:
    assert remote.health() == {"status": "ok"}
    assert remote.version()["version"] == mockllm.__version__
    rules = remote.rules()
    assert [r["name"] for r in rules] == ["greeting", "steps", "spare"]
    assert rules[1]["origin"].endswith("remote.yaml:6") and (rules[1]["capacity"], rules[1]["left"]) == (2, 2)


def test_the_journal_from_another_process(remote: mockllm.Remote, url: str) -> None:
    assert ask(url, "hello") == "Hi there."
    assert ask(url, "step") == "one"
    entries = remote.requests
    assert [(e.index, e.rule, e.status) for e in entries] == [(0, "greeting", 200), (1, "steps", 200)]
    last = remote.last_request
    assert isinstance(last, RemoteEntry) and last.json["messages"] == [{"role": "user", "content": "step"}]
    assert last.matched and last.headers["authorization"] == "[redacted]" and last.origin.endswith("remote.yaml:6")
    assert [e.index for e in remote.journal(rule="greeting")] == [0]
    assert [e.index for e in remote.journal(since=1)] == [1]
    assert [e.index for e in remote.journal(limit=1, endpoint="chat")] == [1]
    assert remote.journal(status=418) == []
    remote.reset("journal")
    with pytest.raises(LookupError, match="the journal is empty"):
        _ = remote.last_request
    assert ask(url, "step") == "two"  # the sequence went on
    remote.reset("sequences")
    assert ask(url, "step") == "one"


def test_add_and_remove(remote: mockllm.Remote, url: str) -> None:
    assert remote.add("name: weather\nmatch: {user: {contains: weather}}\nreply: {content: Sunny.}\n") == ["weather"]
    assert remote.add({"name": "dict-rule", "match": {"user": {"contains": "dict"}}, "reply": {"content": "D"}}) == [
        "dict-rule"
    ]
    assert ask(url, "weather?") == "Sunny." and ask(url, "a dict") == "D"
    assert remote.remove("weather") == ["weather"]
    with pytest.raises(openai.APIStatusError):
        ask(url, "weather?")
    with pytest.raises(RemoteError) as caught:
        remote.remove("weather")
    assert caught.value.status == 404 and caught.value.code == "unknown_rule"
    with pytest.raises(RemoteError) as caught:
        remote.add("name: bad\nreply:\n  contnet: x\n")
    assert caught.value.status == 400
    assert str(caught.value).startswith("<control>:3: reply.contnet: unknown key (did you mean 'content'?)")


def test_a_namespace_that_is_not_there(url: str) -> None:
    with pytest.raises(RemoteError) as caught:
        mockllm.Remote(url, namespace="nobody").rules()
    assert (caught.value.status, caught.value.code) == (404, "unknown_namespace")


def test_assert_called(remote: mockllm.Remote, url: str) -> None:
    with pytest.raises(AssertionError) as caught:
        remote.assert_called()
    assert str(caught.value) == "mockllm: expected at least 1 request, got 0\n  (no requests received)"
    remote.assert_not_called()
    ask(url, "hello")
    remote.assert_called()
    remote.assert_called(times=1, rule="greeting")
    with pytest.raises(AssertionError) as caught:
        remote.assert_called(times=2, rule="greeting")
    assert str(caught.value) == (
        "mockllm: expected 2 requests answered by rule 'greeting', got 1\n"
        "  #0 POST /v1/chat/completions -> 200 (rule 'greeting')"
    )
    with pytest.raises(AssertionError, match="expected 0 requests, got 1"):
        remote.assert_not_called()


def test_assert_all_used(remote: mockllm.Remote, url: str) -> None:
    with pytest.raises(AssertionError) as caught:
        remote.assert_all_used()
    message = str(caught.value)
    assert message.startswith("mockllm: 2 rules never used:\n  - greeting (")
    assert "spare" not in message  # optional
    ask(url, "hello")
    ask(url, "step")
    with pytest.raises(AssertionError) as caught:
        remote.assert_all_used()
    assert "mockllm: 1 rule did not play all its replies:\n  - steps (" in str(caught.value)
    assert str(caught.value).endswith("): played 1 of 2\nUse them, remove them, or mark them `optional: true`.")
    ask(url, "step")
    remote.assert_all_used()


def test_assert_backoff_honoured(remote: mockllm.Remote, url: str) -> None:
    remote.assert_backoff_honoured(allow_none=True)
    with pytest.raises(AssertionError, match="no answer asked for a wait"):
        remote.assert_backoff_honoured()
    remote.add(
        {
            "name": "busy",
            "match": {"user": {"contains": "busy"}},
            "replies": [
                {"error": {"status": 429, "headers": {"retry-after": "30"}}},
                {"content": "ok now"},
            ],
        }
    )
    client = client_of(f"{url}/v1")
    for _ in range(2):  # a retry at once, where 30 s were asked
        with contextlib.suppress(openai.RateLimitError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "busy"}])
    entries = remote.requests
    assert entries[-1].backoff is not None and entries[-1].backoff["honoured"] is False
    with pytest.raises(AssertionError) as caught:
        remote.assert_backoff_honoured()
    assert "1 of 1 retried request(s) came sooner than retry-after asked" in str(caught.value)
    assert f"#{entries[-1].index} chat /v1/chat/completions" in str(caught.value)


def test_the_token_goes_as_a_bearer(url: str) -> None:
    # On loopback with no admin token any Authorization is fine: the header is sent, nothing breaks.
    assert mockllm.Remote(url, token="t").health() == {"status": "ok"}


def test_an_unreachable_server(tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match="cannot reach"):
        mockllm.Remote("http://127.0.0.1:9", timeout=2).health()
