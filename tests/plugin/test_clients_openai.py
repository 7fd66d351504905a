"""The openai SDK (2.x on httpx, or 3.x on httpx2) through the fixture, in both modes."""

from __future__ import annotations

import asyncio
import json

import openai
from mockllm_pytest import MockLLM
from plugin_helpers import in_both_modes, user

STORY = "Once upon a time, a fake model streamed a story, one token at a time."


@in_both_modes("scenarios/basic.yaml")
def test_sync_create(mockllm: MockLLM, mode: str) -> None:
    answer = mockllm.client().chat.completions.create(model="gpt-4o-mini", messages=user("What's 1+1?"))
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == "Two."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (18, 2)


@in_both_modes("scenarios/basic.yaml")
def test_sync_stream_with_usage(mockllm: MockLLM, mode: str) -> None:
    with mockllm.client().chat.completions.create(
        model="gpt-4o-mini", messages=user("a story"), stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == STORY
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1
    assert mockllm.requests.last.json["stream_options"] == {"include_usage": True}


@in_both_modes("scenarios/basic.yaml")
def test_stream_helper_with_tool_calls(mockllm: MockLLM, mode: str) -> None:
    with mockllm.client().chat.completions.stream(model="gpt-4o-mini", messages=user("weather in Paris?")) as stream:
        for _event in stream:
            pass
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]


@in_both_modes("scenarios/basic.yaml")
def test_async_create_and_stream(mockllm: MockLLM, mode: str) -> None:
    async def main() -> tuple[str | None, str]:
        async with mockllm.async_client() as client:
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=user("1+1"))
            parts: list[str] = []
            async with await client.chat.completions.create(
                model="gpt-4o-mini", messages=user("story"), stream=True
            ) as stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
            return answer.choices[0].message.content, "".join(parts)

    assert asyncio.run(main()) == ("Two.", STORY)


@in_both_modes("scenarios/basic.yaml")
def test_retry_on_429_then_success(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.client(max_retries=2)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=user("please retry"))
    assert answer.choices[0].message.content == "ok after a retry"
    assert [(e.status, e.call_index) for e in mockllm.requests] == [(429, 0), (200, 1)]


@in_both_modes("scenarios/basic.yaml", allow_unmatched=True)
def test_unmatched_is_an_immediate_non_retried_error(mockllm: MockLLM, mode: str) -> None:
    client = mockllm.client(max_retries=5)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("something unexpected"))
    except openai.APIStatusError as exc:
        assert exc.status_code == 418
        assert "no rule matched" in exc.message
    else:
        raise AssertionError("an unmatched request must fail")
    assert len(mockllm.requests) == 1  # x-should-retry: false
