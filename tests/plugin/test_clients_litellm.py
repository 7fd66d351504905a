"""LiteLLM through the fixture, in both modes (in-process: its httpx and aiohttp-backed clients alike)."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no cost-map fetch at import
os.environ.setdefault("LITELLM_TELEMETRY", "False")
litellm = pytest.importorskip("litellm")  # litellm pins openai < 3: the openai-3 environment runs without it

from mockllm_pytest import MockLLM  # noqa: E402
from plugin_helpers import in_both_modes, user  # noqa: E402

STORY = "Once upon a time, a fake model streamed a story, one token at a time."


@in_both_modes("scenarios/basic.yaml")
def test_completion(mockllm: MockLLM, mode: str) -> None:
    answer = litellm.completion(
        model="openai/gpt-4o-mini", api_base=mockllm.base_url, api_key="k", messages=user("What's 1+1?")
    )
    assert answer.choices[0].message.content == "Two."
    assert mockllm.requests.last.json["model"] == "gpt-4o-mini"


@in_both_modes("scenarios/basic.yaml")
def test_completion_stream(mockllm: MockLLM, mode: str) -> None:
    stream = litellm.completion(
        model="openai/gpt-4o-mini", api_base=mockllm.base_url, api_key="k", messages=user("story"), stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream) == STORY
    assert mockllm.requests.last.stream


@in_both_modes("scenarios/basic.yaml")
def test_acompletion_stream(mockllm: MockLLM, mode: str) -> None:
    async def main() -> str:
        stream = await litellm.acompletion(
            model="openai/gpt-4o-mini", api_base=mockllm.base_url, api_key="k", messages=user("story"), stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(main()) == STORY
    mockllm.assert_called(times=1, rule="story")


@in_both_modes("scenarios/timed.yaml")
def test_a_dropped_stream_becomes_litellms_mid_stream_error(mockllm: MockLLM, mode: str) -> None:
    got: list[str] = []
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):
        for chunk in litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=mockllm.base_url,
            api_key="k",
            messages=user("drop"),
            stream=True,
            max_retries=0,
        ):
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "one two"
