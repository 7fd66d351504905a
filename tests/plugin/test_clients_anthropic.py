"""The anthropic SDK through the fixture's `anthropic_client()` / `async_anthropic_client()`, in both modes.

Wire facts: ../shared/dialects.md section 2 (Anthropic Messages). The SDK appends `/v1/messages`
to its base URL (anthropic/_base_client.py, `_prepare_url`), so it is given the root, and it
reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY when built with no arguments (anthropic/_client.py).
anthropic 2.x sends through httpx2 (`DefaultHttpxClient` is an `httpx2.Client`), so in-process
the fixture hands it an httpx2 transport; an app-built client reaches the Engine through the
default httpx2 transports the fixture routes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import anthropic
import netguard
import pytest
from mockllm_pytest import API_KEY, MockLLM
from plugin_helpers import in_both_modes, warm_up

from mockllm.transport import HOST

pytest_plugins = ["pytester"]
warm_up()

STORY = "Once upon a time, a fake model streamed a story, one token at a time."
TOOL: Any = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection or name lookup beyond loopback (tests/netguard.py): nothing reaches the real
    API, and in-process nothing looks up the fixture's `.invalid` host (no socket is used)."""
    refused = netguard.guard(monkeypatch)
    yield
    assert refused == []


@in_both_modes("scenarios/basic.yaml")
def test_base_url_is_the_root(mockllm: MockLLM, mode: str) -> None:
    assert mockllm.anthropic_base_url == mockllm.base_url.removesuffix("/v1")
    if mode == "inprocess":
        assert mockllm.anthropic_base_url == f"http://{HOST}"  # `.invalid` never resolves: no socket was used
    else:
        assert mockllm.anthropic_base_url.startswith("http://127.0.0.1:") and "/ns/" in mockllm.anthropic_base_url
    assert str(mockllm.anthropic_client().base_url).rstrip("/") == mockllm.anthropic_base_url


@in_both_modes("scenarios/basic.yaml")
def test_create(mockllm: MockLLM, mode: str) -> None:
    message = mockllm.anthropic_client().messages.create(model="claude-x", max_tokens=64, messages=ask("1+1?"))
    assert [(b.type, b.text) for b in message.content] == [("text", "Two.")]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.id.startswith("msg_01")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (18, 2)  # the scenario's usage
    entry = mockllm.last_request
    assert entry.endpoint == "anthropic" and entry.path.endswith("/v1/messages") and entry.rule == "one-plus-one"
    # anthropic 2.15 authenticates with a bearer token (dialects.md section 2, "Auth")
    assert entry.headers["anthropic-version"] and API_KEY in (
        entry.headers.get("authorization", "") + entry.headers.get("x-api-key", "")
    )
    assert mockllm.last_user_message == "1+1?"


@in_both_modes("scenarios/basic.yaml")
def test_stream(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.anthropic_client()
    events = list(client.messages.create(model="claude-x", max_tokens=64, messages=ask("a story"), stream=True))
    # named events, message_start first and message_stop last; the SDK's iterator drops `ping`
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert "".join(deltas) == STORY and len(deltas) > 10
    with client.messages.stream(model="claude-x", max_tokens=64, messages=ask("a story")) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == deltas
    assert final.content[0].text == STORY and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert [e.stream for e in mockllm.requests] == [True, True]


@in_both_modes("scenarios/basic.yaml")
def test_tool_call(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.anthropic_client()
    message = client.messages.create(model="claude-x", max_tokens=64, tools=[TOOL], messages=ask("weather in Paris?"))
    assert message.stop_reason == "tool_use"
    (use,) = message.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    assert use.id.startswith("toolu_01")
    # streamed: a tool_use block whose input arrives in input_json_delta fragments, the first empty
    with client.messages.stream(
        model="claude-x", max_tokens=64, tools=[TOOL], messages=ask("weather in Paris?")
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert fragments[0] == "" and json.loads("".join(fragments)) == {"city": "Paris"}
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert mockllm.requests[0].json["tools"][0]["name"] == "get_weather"


@in_both_modes("scenarios/basic.yaml")
def test_error_status_raises_the_sdks_exception(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply(when_user_contains="overload", error={"status": 529}, name="overloaded")
    with pytest.raises(anthropic.OverloadedError) as raised:
        mockllm.anthropic_client(max_retries=0).messages.create(
            model="claude-x", max_tokens=8, messages=ask("overload")
        )
    # Anthropic's envelope (dialects.md section 2, "Errors"), and its request-id header
    body: Any = raised.value.body
    assert raised.value.status_code == 529 and body["error"]["type"] == "overloaded_error"
    assert raised.value.request_id == body["request_id"]


@in_both_modes("scenarios/basic.yaml")
def test_the_sdk_retries_a_rate_limit(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.anthropic_client(max_retries=2)
    message = client.messages.create(model="claude-x", max_tokens=8, messages=ask("please retry"))
    assert message.content[0].text == "ok after a retry"  # type: ignore[union-attr]
    assert [e.status for e in mockllm.requests] == [429, 200]
    assert mockllm.requests[1].headers["x-stainless-retry-count"] == "1"


@in_both_modes("scenarios/basic.yaml", allow_unmatched=True)
def test_unmatched_is_an_immediate_non_retried_error(mockllm: MockLLM, mode: str) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        mockllm.anthropic_client(max_retries=5).messages.create(model="claude-x", max_tokens=8, messages=ask("hmm"))
    assert raised.value.status_code == 418 and "no rule matched" in raised.value.message
    assert len(mockllm.requests) == 1  # x-should-retry: false


@in_both_modes("scenarios/basic.yaml")
def test_async_client(mockllm: MockLLM, mode: str) -> None:
    async def main() -> tuple[Any, list[str], Any]:
        async with mockllm.async_anthropic_client() as client:
            whole = await client.messages.create(model="claude-x", max_tokens=64, messages=ask("1+1"))
            async with client.messages.stream(model="claude-x", max_tokens=64, messages=ask("story")) as stream:
                texts = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
        return whole, texts, final

    whole, texts, final = asyncio.run(main())
    assert whole.content[0].text == "Two." and "".join(texts) == STORY == final.content[0].text
    assert [e.rule for e in mockllm.requests] == ["one-plus-one", "story"]


@in_both_modes("scenarios/basic.yaml", env=True)
def test_env_points_an_app_built_client_at_the_fake(mockllm: MockLLM, mode: str) -> None:
    assert os.environ["ANTHROPIC_BASE_URL"] == mockllm.anthropic_base_url
    assert os.environ["ANTHROPIC_API_KEY"] == API_KEY
    message = anthropic.Anthropic().messages.create(model="claude-x", max_tokens=8, messages=ask("1+1"))

    async def main() -> Any:
        async with anthropic.AsyncAnthropic() as client:
            return await client.messages.create(model="claude-x", max_tokens=64, messages=ask("a story"))

    assert message.content[0].text == "Two."  # type: ignore[union-attr]
    assert asyncio.run(main()).content[0].text == STORY
    assert [e.rule for e in mockllm.requests] == ["one-plus-one", "story"]


def test_env_is_restored_after_the_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://example.test")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.mockllm(env=True)
        def test_one(mockllm):
            assert os.environ["ANTHROPIC_BASE_URL"] == mockllm.anthropic_base_url

        def test_two():
            assert os.environ["ANTHROPIC_BASE_URL"] == "https://example.test"
            assert "ANTHROPIC_API_KEY" not in os.environ
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


@pytest.mark.parametrize("mode", ["server", "inprocess"])
def test_an_unmatched_anthropic_request_fails_the_test_with_a_readable_report(
    pytester: pytest.Pytester, mode: str
) -> None:
    pytester.makefile(
        ".yaml",
        scenario="""\
version: 1
rules:
  - name: greeting
    match: {endpoint: anthropic, user: {contains: hello}}
    reply: {content: "Hi!"}
  - name: chat-only
    match: {endpoint: chat}
    reply: {content: "from chat"}
""",
    )
    pytester.makepyfile(
        """
        import anthropic, pytest

        @pytest.mark.mockllm("scenario.yaml")
        def test_app_swallows_the_error(mockllm):
            try:
                mockllm.anthropic_client().messages.create(
                    model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "what's up?"}]
                )
            except anthropic.APIStatusError as exc:
                assert exc.status_code == 418
        """
    )
    result = pytester.runpytest(f"--mockllm-mode={mode}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_app_swallows_the_error*",
            "mockllm: 1 request matched no rule (answered 418 no_rule_matched, which the code under test may have"
            " swallowed):",
            "",
            "#0 POST /*v1/messages -> 418 (no rule)",
            "mockllm: no rule matched this anthropic request",
            "  request: model='claude-x' stream=false user=\"what's up?\"",
            "  nearest rules (of 2):",
            "    - greeting (scenario.yaml:3): user: \"what's up?\" does not contain 'hello'",
            "    - chat-only (scenario.yaml:6): endpoint: wanted chat, got anthropic",
            "  Add a rule that matches this request, or loosen the conditions of one above.",
            "",
            "If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True).",
        ]
    )
    assert "Traceback" not in result.stdout.str()
