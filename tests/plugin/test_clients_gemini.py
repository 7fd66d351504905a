"""google-genai through the fixture's `gemini_client()` (sync and `.aio`), in both modes.

Wire facts: ../shared/dialects.md section 3 (Gemini). The SDK joins its base URL, the API
version and `models/{model}:generateContent` (google/genai/_api_client.py, `join_url_path`),
so it is given the root; 3.x asks for `v1` by default, 1.x for `v1beta`. It reads
GOOGLE_GEMINI_BASE_URL (google/genai/_base_url.py) and GOOGLE_API_KEY, else GEMINI_API_KEY
(`get_env_api_key`), when built with no arguments. It reads through httpx2 when installed
(`_DEFAULT_HTTP_CLIENT_BACKEND`), its async client through aiohttp when that is installed and
no transport is given (`_use_aiohttp`): in-process, `gemini_client()` hands both an httpx2
transport; an app-built sync client reaches the Engine through the default httpx2 transports
the fixture routes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import netguard
import pytest
from google import genai
from google.genai import errors, types
from mockllm_pytest import API_KEY, MockLLM
from plugin_helpers import in_both_modes, warm_up

from mockllm.transport import HOST

pytest_plugins = ["pytester"]
warm_up()

MODEL = "gemini-2.5-flash"
STORY = "Once upon a time, a fake model streamed a story, one token at a time."
WEATHER_TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="The weather in a city.",
            parameters=types.Schema(type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}),
        )
    ]
)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection or name lookup beyond loopback (tests/netguard.py): nothing reaches the real
    API, and in-process nothing looks up the fixture's `.invalid` host (no socket is used)."""
    refused = netguard.guard(monkeypatch)
    yield
    assert refused == []


@in_both_modes("scenarios/basic.yaml")
def test_base_url_is_the_root(mockllm: MockLLM, mode: str) -> None:
    assert mockllm.gemini_base_url == mockllm.base_url.removesuffix("/v1")
    if mode == "inprocess":
        assert mockllm.gemini_base_url == f"http://{HOST}"  # `.invalid` never resolves: no socket was used
    else:
        assert mockllm.gemini_base_url.startswith("http://127.0.0.1:") and "/ns/" in mockllm.gemini_base_url


@in_both_modes("scenarios/basic.yaml")
def test_generate_content(mockllm: MockLLM, mode: str) -> None:
    response = mockllm.gemini_client().models.generate_content(model=MODEL, contents="What's 1+1?")
    assert response.text == "Two."
    assert response.candidates is not None and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and (usage.prompt_token_count, usage.candidates_token_count) == (18, 2)
    assert usage.total_token_count == 20  # prompt + candidates (dialects.md section 3)
    assert response.response_id and len(response.response_id) == 23 and response.model_version
    entry = mockllm.last_request
    assert entry.endpoint == "gemini" and entry.rule == "one-plus-one" and not entry.stream
    assert entry.path.endswith(f"/v1/models/{MODEL}:generateContent")  # 3.x's default version
    assert entry.headers["x-goog-api-key"] == API_KEY
    assert entry.json["contents"] == [{"parts": [{"text": "What's 1+1?"}], "role": "user"}]
    assert mockllm.last_user_message == "What's 1+1?"


@in_both_modes("scenarios/basic.yaml")
def test_v1beta_as_google_genai_1x_asks(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.gemini_client(http_options={"api_version": "v1beta", "headers": {"x-test": "kept"}})
    assert client.models.generate_content(model=MODEL, contents="1+1").text == "Two."
    entry = mockllm.last_request
    assert entry.path.endswith(f"/v1beta/models/{MODEL}:generateContent") and entry.headers["x-test"] == "kept"


@in_both_modes("scenarios/basic.yaml")
def test_stream(mockllm: MockLLM, mode: str) -> None:
    chunks = list(mockllm.gemini_client().models.generate_content_stream(model=MODEL, contents="a story"))
    assert "".join(c.text or "" for c in chunks) == STORY and len(chunks) > 10
    # each chunk a whole response: usage and response id on every one, the finish on the last
    assert all(c.usage_metadata is not None for c in chunks) and len({c.response_id for c in chunks}) == 1
    last = chunks[-1].candidates
    assert last is not None and last[0].finish_reason == types.FinishReason.STOP
    entry = mockllm.last_request
    assert entry.stream and entry.path.endswith(f"/models/{MODEL}:streamGenerateContent")


@in_both_modes("scenarios/basic.yaml")
def test_tool_call(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.gemini_client()
    config = types.GenerateContentConfig(tools=[WEATHER_TOOL])
    response = client.models.generate_content(model=MODEL, contents="weather in Paris?", config=config)
    assert response.function_calls is not None
    assert [(c.name, c.args) for c in response.function_calls] == [("get_weather", {"city": "Paris"})]
    assert response.candidates is not None and response.candidates[0].finish_reason == types.FinishReason.STOP
    # streamed: the call arrives whole in one part, with no argument deltas (dialects.md section 3)
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="weather in Paris?", config=config))
    calls = [(c.name, c.args) for chunk in chunks for c in chunk.function_calls or []]
    assert calls == [("get_weather", {"city": "Paris"})]
    assert mockllm.requests[0].json["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"


@pytest.mark.parametrize(
    ("status", "error", "name"),
    [(429, errors.ClientError, "RESOURCE_EXHAUSTED"), (503, errors.ServerError, "UNAVAILABLE")],
)
@in_both_modes("scenarios/basic.yaml")
def test_error_status_raises_the_sdks_exception(
    mockllm: MockLLM, mode: str, status: int, error: type[errors.APIError], name: str
) -> None:
    mockllm.reply(when_user_contains="fail", error={"status": status})
    with pytest.raises(error) as raised:
        mockllm.gemini_client().models.generate_content(model=MODEL, contents="fail now")
    # google.rpc Status: {"error": {"code", "message", "status"}} (dialects.md section 3, "Errors")
    assert (raised.value.code, raised.value.status) == (status, name) and raised.value.message


@in_both_modes("scenarios/basic.yaml")
def test_the_sdk_does_not_retry(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.gemini_client()
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=MODEL, contents="please retry")
    assert raised.value.code == 429 and len(mockllm.requests) == 1  # one request on 429 (dialects.md section 0)
    assert client.models.generate_content(model=MODEL, contents="please retry").text == "ok after a retry"


@in_both_modes("scenarios/basic.yaml")
def test_error_mid_stream(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply("one two three four five", when_user_contains="cut", fault={"kind": "error_event", "after_chunks": 2})
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as raised:
        for chunk in mockllm.gemini_client().models.generate_content_stream(model=MODEL, contents="cut"):
            seen.append(chunk.text or "")
    assert seen == ["one", " two"] and raised.value.code == 503


@in_both_modes("scenarios/basic.yaml", allow_unmatched=True)
def test_unmatched_is_an_immediate_error(mockllm: MockLLM, mode: str) -> None:
    with pytest.raises(errors.ClientError) as raised:
        mockllm.gemini_client().models.generate_content(model=MODEL, contents="something unexpected")
    assert raised.value.code == 418 and "no rule matched" in (raised.value.message or "")
    assert len(mockllm.requests) == 1


@in_both_modes("scenarios/basic.yaml")
def test_async_client(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.gemini_client()

    async def main() -> tuple[str | None, str]:
        whole = await client.aio.models.generate_content(model=MODEL, contents="1+1")
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="a story")
        texts = [chunk.text or "" async for chunk in stream]
        await client.aio.aclose()
        return whole.text, "".join(texts)

    assert asyncio.run(main()) == ("Two.", STORY)
    assert [(e.rule, e.stream) for e in mockllm.requests] == [("one-plus-one", False), ("story", True)]


@in_both_modes("scenarios/basic.yaml", env=True)
def test_env_points_an_app_built_client_at_the_fake(mockllm: MockLLM, mode: str) -> None:
    assert os.environ["GOOGLE_GEMINI_BASE_URL"] == mockllm.gemini_base_url
    assert os.environ["GOOGLE_API_KEY"] == os.environ["GEMINI_API_KEY"] == API_KEY
    with genai.Client() as client:
        assert client.models.generate_content(model=MODEL, contents="1+1").text == "Two."
    assert mockllm.last_request.headers["x-goog-api-key"] == API_KEY


@pytest.mark.mockllm("scenarios/basic.yaml", env=True)
def test_env_points_an_app_built_async_client_at_the_fake(mockllm: MockLLM) -> None:
    # Server mode only: with aiohttp installed, the SDK's async client reads through it, and
    # in-process mode catches httpx and httpx2 alone.
    async def main() -> Any:
        client = genai.Client()  # held: a dropped Client closes its connections
        async with client.aio as aio:
            return await aio.models.generate_content(model=MODEL, contents="a story")

    assert asyncio.run(main()).text == STORY
    assert mockllm.last_request.rule == "story"


def test_env_unsets_vertex_ai_and_restores_everything(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GOOGLE_GENAI_USE_VERTEXAI=true would send a client built with no arguments to Vertex AI's
    # URLs and auth (google/genai/_api_client.py, `BaseApiClient.__init__`).
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_API_KEY", "a-real-key")
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    pytester.makepyfile(
        """
        import os, pytest
        from google import genai

        @pytest.mark.mockllm(env=True)
        def test_one(mockllm):
            assert "GOOGLE_GENAI_USE_VERTEXAI" not in os.environ
            assert os.environ["GOOGLE_API_KEY"] == os.environ["GEMINI_API_KEY"] == "sk-mockllm-test"
            mockllm.reply("ok")
            client = genai.Client()
            assert not client.vertexai and client.models.generate_content(model="m", contents="hi").text == "ok"

        def test_two():
            assert os.environ["GOOGLE_GENAI_USE_VERTEXAI"] == "true" and os.environ["GOOGLE_API_KEY"] == "a-real-key"
            assert "GOOGLE_GEMINI_BASE_URL" not in os.environ
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_an_unmatched_gemini_request_fails_the_test_with_a_readable_report(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        scenario="""\
version: 1
rules:
  - name: greeting
    match: {endpoint: gemini, user: {contains: hello}}
    reply: {content: "Hi!"}
  - name: chat-only
    match: {endpoint: chat}
    reply: {content: "from chat"}
""",
    )
    pytester.makepyfile(
        f"""
        import pytest
        from google.genai import errors

        @pytest.mark.mockllm("scenario.yaml")
        def test_app_swallows_the_error(mockllm):
            try:
                mockllm.gemini_client().models.generate_content(model="{MODEL}", contents="what's up?")
            except errors.ClientError as exc:
                assert exc.code == 418
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_app_swallows_the_error*",
            "mockllm: 1 request matched no rule (answered 418 no_rule_matched, which the code under test may have"
            " swallowed):",
            "",
            f"#0 POST /ns/*/v1/models/{MODEL}:generateContent -> 418 (no rule)",
            "mockllm: no rule matched this gemini request",
            f"  request: model='{MODEL}' stream=false user=\"what's up?\"",
            "  nearest rules (of 2):",
            "    - greeting (scenario.yaml:3): user: \"what's up?\" does not contain 'hello'",
            "    - chat-only (scenario.yaml:6): endpoint: wanted chat, got gemini",
            "  Add a rule that matches this request, or loosen the conditions of one above.",
            "",
            "If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True).",
        ]
    )
    assert "Traceback" not in result.stdout.str()
