"""The `mockllm` fixture's API, in both modes, with the real openai SDK (whichever is installed)."""

from __future__ import annotations

import os

import httpx
import openai
import pytest
from mockllm_pytest import API_KEY, MockLLM
from plugin_helpers import SCENARIOS, in_both_modes, user


@in_both_modes("scenarios/basic.yaml")
def test_marker_scenarios_answer_and_the_journal_records(mockllm: MockLLM, mode: str) -> None:
    assert mockllm.mode == mode
    assert mockllm.base_url.endswith("/v1")
    answer = mockllm.client().chat.completions.create(
        model="gpt-4o-mini", messages=user("What's 1+1?"), extra_headers={"x-trace": "abc"}
    )
    assert answer.choices[0].message.content == "Two."
    assert answer.usage is not None and answer.usage.prompt_tokens == 18
    entry = mockllm.requests[-1]
    assert entry.json["messages"] == user("What's 1+1?")
    assert entry.headers["x-trace"] == "abc"
    assert entry.headers["authorization"] == f"Bearer {API_KEY}"
    assert (entry.rule, entry.status, entry.stream) == ("one-plus-one", 200, False)
    assert mockllm.last_user_message == "What's 1+1?"
    mockllm.assert_called(times=1, rule="one-plus-one")


@in_both_modes("scenarios/basic.yaml", time_scale=1)
def test_stream_records_when_each_chunk_was_sent(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply("one two three", when_user_contains="paced", timing={"ttft_ms": 50, "chunk_ms": 30})
    client = mockllm.client()
    with client.chat.completions.create(model="gpt-4o-mini", messages=user("tell a story"), stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Once upon a time, a fake model streamed a story, one token at a time."
    # role chunk + 18 tokens + finish + [DONE], each its own write
    assert len(mockllm.requests.last.sent) == 1 + 18 + 1 + 1
    with client.chat.completions.create(model="gpt-4o-mini", messages=user("paced"), stream=True) as stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "one two three"
    sent = mockllm.requests.last.sent
    # The schedule, in seconds from arrival: the role chunk and "one" at ttft, a token every 30 ms,
    # the finish chunk and [DONE] with the last token. Each write is recorded at its deadline or
    # later, never early (2 ms: the event loop's clock resolution); no upper bound, the machine may be busy.
    due = [0.05, 0.05, 0.08, 0.11, 0.11, 0.11]
    assert len(sent) == len(due)
    assert all(s >= d - 0.002 for s, d in zip(sent, due, strict=True)), (sent, due)


@in_both_modes()
def test_builder_and_add_and_load(mockllm: MockLLM, mode: str) -> None:
    rule = mockllm.reply("Bonjour", when_user_contains="french", name="french")
    mockllm.add({"name": "any-gpt-5", "match": {"model": "gpt-5*"}, "reply": {"content": "five"}})
    mockllm.add(
        {"rules": [{"name": "in-a-scenario", "match": {"user": {"equals": "ping"}}, "reply": {"content": "pong"}}]}
    )
    scenarios = mockllm.load("scenarios/basic.yaml")  # relative to this file's folder
    assert rule.name == "french" and rule.origin.startswith("test_fixture.py:")
    assert [s.source for s in scenarios] == [str(mockllm.resolve("scenarios/basic.yaml"))]
    client = mockllm.client()

    def ask(text: str, model: str = "gpt-4o-mini") -> str | None:
        return client.chat.completions.create(model=model, messages=user(text)).choices[0].message.content

    assert ask("say it in french") == "Bonjour"
    assert ask("anything", model="gpt-5-mini") == "five"
    assert ask("ping") == "pong"
    assert ask("1+1") == "Two."
    assert [e.rule for e in mockllm.requests] == ["french", "any-gpt-5", "in-a-scenario", "one-plus-one"]


@in_both_modes()
def test_builder_error_reply_and_times(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply(error={"status": 503}, times=1, name="down-once")
    mockllm.reply("back up", name="up")
    client = mockllm.client(max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hello"))
    assert client.chat.completions.create(model="gpt-4o-mini", messages=user("hello")).choices[0].message.content == (
        "back up"
    )
    assert [e.status for e in mockllm.requests] == [503, 200]


@in_both_modes("scenarios/basic.yaml")
def test_client_retries_as_configured(mockllm: MockLLM, mode: str) -> None:
    answer = mockllm.client(max_retries=1).chat.completions.create(model="gpt-4o-mini", messages=user("retry please"))
    assert answer.choices[0].message.content == "ok after a retry"
    assert [e.status for e in mockllm.requests] == [429, 200]
    assert mockllm.requests[1].headers["x-stainless-retry-count"] == "1"


@in_both_modes("scenarios/basic.yaml")
def test_async_client(mockllm: MockLLM, mode: str) -> None:
    import asyncio

    async def main() -> tuple[str | None, str]:
        client = mockllm.async_client()
        async with client:
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=user("1+1"))
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=user("story"), stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return answer.choices[0].message.content, text

    content, text = asyncio.run(main())
    assert content == "Two."
    assert text.startswith("Once upon a time")
    mockllm.assert_called(times=2)


@in_both_modes("scenarios/basic.yaml")
def test_patch_env_serves_clients_the_app_builds(mockllm: MockLLM, mode: str) -> None:
    mockllm.patch_env()
    assert os.environ["OPENAI_BASE_URL"] == mockllm.base_url
    assert os.environ["OPENAI_API_KEY"] == API_KEY
    client = openai.OpenAI()  # as application code would: configured by the environment
    assert (
        client.chat.completions.create(model="gpt-4o-mini", messages=user("1+1")).choices[0].message.content == "Two."
    )
    client.close()


_before = dict(os.environ)


@pytest.mark.mockllm("scenarios/basic.yaml", env=True, mode="inprocess")
def test_env_marker_sets_then_restores(mockllm: MockLLM) -> None:
    assert os.environ["OPENAI_BASE_URL"] == mockllm.base_url


def test_env_was_restored() -> None:  # runs after the test above (file order)
    assert os.environ.get("OPENAI_BASE_URL") == _before.get("OPENAI_BASE_URL")
    assert os.environ.get("OPENAI_API_KEY") == _before.get("OPENAI_API_KEY")


@in_both_modes()
def test_assert_called_messages(mockllm: MockLLM, mode: str) -> None:
    mockllm.assert_not_called()
    with pytest.raises(AssertionError, match=r"expected at least 1 request, got 0\n  \(no requests received\)"):
        mockllm.assert_called()
    mockllm.reply("hi", name="hi")
    mockllm.client().chat.completions.create(model="gpt-4o-mini", messages=user("hello"))
    with pytest.raises(AssertionError, match=r"expected 2 requests, got 1\n  #0 POST /\S*v1/chat/completions -> 200"):
        mockllm.assert_called(times=2)
    with pytest.raises(AssertionError, match="expected at least 1 request answered by rule 'other', got 0"):
        mockllm.assert_called(rule="other")


@in_both_modes("scenarios/basic.yaml")
def test_models_endpoint(mockllm: MockLLM, mode: str) -> None:
    ids = [m.id for m in mockllm.client().models.list()]
    assert "gpt-4o-mini" in ids


@pytest.mark.mockllm(str(SCENARIOS / "basic.yaml"), seed=7, time_scale=0)
def test_absolute_paths_and_seed(mockllm: MockLLM) -> None:
    assert mockllm.engine.seed == 7
    answer = mockllm.client().chat.completions.create(model="gpt-4o-mini", messages=user("1+1"))
    assert answer.id.startswith("chatcmpl-")


@pytest.mark.mockllm("tests/plugin/scenarios/basic.yaml")
def test_paths_fall_back_to_the_rootdir(mockllm: MockLLM) -> None:
    assert mockllm.engine.router.rules[0].origin.startswith("tests/plugin/scenarios/basic.yaml:")


@pytest.mark.mockllm(mode="server")
def test_namespaces_are_removed_after_each_test(mockllm: MockLLM, mockllm_server: object) -> None:
    from mockllm.server import BackgroundServer

    assert isinstance(mockllm_server, BackgroundServer)
    # Only this test's namespace is served: the earlier tests' were removed at their teardown.
    assert list(mockllm_server.namespaces.values()) == [mockllm.engine]
    name = mockllm.base_url.split("/ns/")[1].split("/")[0]
    gone = httpx.post(f"{mockllm_server.url}/ns/not-{name}/v1/chat/completions", json={})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_namespace"
