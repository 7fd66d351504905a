"""The OpenAI Agents SDK's tool loop scripted by scenario rules (tests/data/agents/), and run by the
bundled catch-all alone when streamed: `Runner.run` and `Runner.run_streamed`, each on
OpenAIResponsesModel and OpenAIChatCompletionsModel, against the real server on loopback.

The rules tell the loop's steps apart by the conversation (`tool`, `tool_result`, `turn`,
`last_role`), answer with what the request holds (`{tool_result}`, `{tool_name}`, `{turn}`,
`{user}`), leave a call's arguments to the offered schema, and count `replies` per conversation.
The Agents SDK's plain catch-all runs and the scripted `replies` loops: tests/test_agents_sdk.py.

openai-agents needs openai >= 3, so CI runs this file in environment 2 only; in environment 1 it
is skipped at import. Paths in comments are in the installed `agents` package (0.24).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import netguard
import pytest
from helpers import ROOT, SCENARIOS

# Nothing may leave loopback: the SDK exports traces to api.openai.com by default (see
# tests/test_agents_sdk.py for the whole story). The env var is read on first use of the trace
# provider, so it is set before the SDK is imported.
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

agents = pytest.importorskip(
    "agents", reason="openai-agents needs openai >= 3: CI runs this file in environment 2 (.ci/run)"
)

import openai  # noqa: E402
from agents import (  # noqa: E402
    Agent,
    RunConfig,
    Runner,
    function_tool,
    set_trace_processors,
    set_tracing_disabled,
)
from agents.items import ToolCallItem  # noqa: E402
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel  # noqa: E402
from agents.models.openai_responses import OpenAIResponsesModel  # noqa: E402
from openai.types.responses import ResponseTextDeltaEvent  # noqa: E402

# Tracing off globally, no processor at all, and RunConfig(tracing_disabled=True) on every run.
set_tracing_disabled(True)
set_trace_processors([])

AGENTS = ROOT / "tests" / "data" / "agents"
MODEL = "gpt-4o-mini"
NO_TRACE = RunConfig(tracing_disabled=True)
APIS = ["responses", "chat"]
ASK = "What's the weather in Paris?"

CALLS: list[str] = []
LOOKUPS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    CALLS.append(city)
    return f"Sunny in {city}"


@function_tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    CALLS.append(f"time {city}")
    return f"Noon in {city}"


@function_tool
def lookup(query: str) -> str:
    """Look something up in the notes."""
    LOOKUPS.append(query)
    return f"notes on {query}"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection or name lookup beyond loopback, during any test here (tests/netguard.py)."""
    refused = netguard.guard(monkeypatch)
    yield
    assert refused == []


@pytest.fixture(autouse=True)
def fresh_calls() -> None:
    CALLS.clear()
    LOOKUPS.clear()


def agent(api: str, client: openai.AsyncOpenAI, *tools: Any) -> Agent[Any]:
    # models/openai_chatcompletions.py is what OpenAIProvider(use_responses=False) gives
    model: Any = (
        OpenAIResponsesModel(model=MODEL, openai_client=client)
        if api == "responses"
        else OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
    )
    return Agent(name="Assistant", instructions="Be brief.", model=model, tools=list(tools))


async def run_agent(api: str, client: openai.AsyncOpenAI, question: str, streamed: bool, *tools: Any) -> Any:
    """Runner.run, or Runner.run_streamed with every event read (the streamed text deltas must add up
    to the final output)."""
    if not streamed:
        return await Runner.run(agent(api, client, *tools), question, run_config=NO_TRACE)
    result = Runner.run_streamed(agent(api, client, *tools), question, run_config=NO_TRACE)
    deltas: list[str] = []
    async for event in result.stream_events():
        # the Responses event, which the chat model makes of its chunks too (chatcmpl_stream_handler.py)
        if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
            deltas.append(event.data.delta)
    assert "".join(deltas) == result.final_output
    return result


def run_with(served: Any, make: Any, **client_options: Any) -> Any:
    """Run `make(client)` in a fresh loop with an AsyncOpenAI client on the served namespace."""

    async def main() -> Any:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test", max_retries=0, **client_options) as c:
            return await make(c)

    return asyncio.run(main())


def called_arguments(result: Any) -> list[dict[str, Any]]:
    """The arguments of each tool call the run made, as the SDK parsed them off the wire."""
    calls = [item.raw_item for item in result.new_items if isinstance(item, ToolCallItem)]
    # Responses: a ResponseFunctionToolCall; chat: the same type, made by chatcmpl_converter.py
    return [json.loads(call.arguments) for call in calls]


# -- rules that script the loop ----------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True], ids=["run", "run_streamed"])
@pytest.mark.parametrize("api", APIS)
def test_rules_script_the_tool_loop(serve, api: str, streamed: bool) -> None:
    # weather.yaml: turn 0 with the tool offered -> call get_weather(Paris); a get_weather result
    # at turn 1 -> quote it
    served = serve(AGENTS / "weather.yaml")
    result = run_with(served, lambda c: run_agent(api, c, ASK, streamed, get_weather))
    assert CALLS == ["Paris"]
    assert called_arguments(result) == [{"city": "Paris"}]
    assert result.final_output == "get_weather said: Sunny in Paris (turn 1)"
    assert [(e.endpoint, e.rule, e.stream) for e in served.journal] == [
        (api, "call-the-tool", streamed),
        (api, "quote-the-result", streamed),
    ]


@pytest.mark.parametrize("api", APIS)
def test_arguments_generated_from_the_tools_schema(serve, api: str) -> None:
    # seeded.yaml: `tool_calls: [{name: get_weather}]`, no arguments. The SDK offers a strict schema
    # (function_schema.py, strict_schema.py: {"city": {"title": "City", "type": "string"}}, required,
    # no other keys) and validates the arguments against it before the tool runs (tool.py): ones
    # that do not fit never reach get_weather
    served = serve(AGENTS / "seeded.yaml")
    result = run_with(served, lambda c: run_agent(api, c, ASK, False, get_weather))
    (city,) = CALLS
    assert isinstance(city, str) and city
    assert called_arguments(result) == [{"city": city}]
    assert result.final_output == f"Result: Sunny in {city} (gpt-4o-mini)"
    assert [e.rule for e in served.journal] == ["call-with-generated-arguments", "answer"]


def test_turns_count_through_the_previous_response_id_chain(serve) -> None:
    # auto_previous_response_id: the second request sends only the tool's result, chained to the
    # first response (run.py -> openai_responses.py previous_response_id); the rule for turn 1
    # must see the stored call in that chain
    served = serve(AGENTS / "weather.yaml")
    result = run_with(
        served,
        lambda c: Runner.run(
            agent("responses", c, get_weather), ASK, auto_previous_response_id=True, run_config=NO_TRACE
        ),
    )
    assert CALLS == ["Paris"]
    assert result.final_output == "get_weather said: Sunny in Paris (turn 1)"
    first, second = list(served.journal)
    assert (first.rule, second.rule) == ("call-the-tool", "quote-the-result")
    assert [item["type"] for item in second.json["input"]] == ["function_call_output"]
    assert second.json["previous_response_id"] == result.raw_responses[0].response_id


@pytest.mark.parametrize("api", APIS)
def test_parallel_results_match_if_any_does_and_the_last_is_quoted(serve, api: str) -> None:
    served = serve(
        {
            "rules": [
                {
                    "name": "answer",
                    # the turn ends in two results: this holds for get_weather's, which is not the last
                    "match": {"tool_result": {"name": "get_weather", "equals": "Sunny in Oslo"}},
                    "reply": {"content": "{tool_name}: {tool_result}"},
                },
                {
                    "name": "both-at-once",
                    "match": {"turn": 0, "tool": ["get_weather", "get_time"]},
                    "reply": {
                        "tool_calls": [
                            {"name": "get_weather", "arguments": {"city": "Oslo"}},
                            {"name": "get_time", "arguments": {"city": "Lima"}},
                        ]
                    },
                },
            ]
        }
    )
    result = run_with(served, lambda c: run_agent(api, c, "Both, please.", False, get_weather, get_time))
    assert sorted(CALLS) == ["Oslo", "time Lima"]
    # the results go back in the calls' order (run_internal/tool_execution.py
    # _FunctionToolBatchExecutor keeps each tool run's result), so the last is get_time's, and
    # `{tool_result}` quotes the last result of the turn
    _, second = list(served.journal)
    sent = second.json["input"] if api == "responses" else second.json["messages"]
    assert sent[-1]["output" if api == "responses" else "content"] == "Noon in Lima"
    assert result.final_output == "get_time: Noon in Lima"
    assert [e.rule for e in served.journal] == ["both-at-once", "answer"]


# -- sequences per conversation ----------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
def test_two_conversations_in_parallel_each_play_the_sequence(serve, api: str) -> None:
    # conversation.yaml: one rule's `replies` (call lookup with the user's words, then quote the
    # result), counted per conversation; the two runs' requests interleave on one event loop
    served = serve(AGENTS / "conversation.yaml")

    async def both(client: openai.AsyncOpenAI) -> list[Any]:
        return await asyncio.gather(
            run_agent(api, client, "Look up apples", False, lookup),
            run_agent(api, client, "Look up pears", True, lookup),
        )

    apples, pears = run_with(served, both)
    assert sorted(LOOKUPS) == ["Look up apples", "Look up pears"]
    assert apples.final_output == "Found: notes on Look up apples"
    assert pears.final_output == "Found: notes on Look up pears"
    entries = list(served.journal)
    assert [(e.status, e.rule) for e in entries] == [(200, "lookup-loop")] * 4


def test_chained_conversations_are_told_apart_through_their_chain(serve) -> None:
    # auto_previous_response_id: each second request holds only the tool's result; its
    # conversation is the one of the chain's first user message
    served = serve(AGENTS / "conversation.yaml")

    async def both(client: openai.AsyncOpenAI) -> list[Any]:
        runs = [
            Runner.run(
                agent("responses", client, lookup), question, auto_previous_response_id=True, run_config=NO_TRACE
            )
            for question in ("Look up apples", "Look up pears")
        ]
        return await asyncio.gather(*runs)

    apples, pears = run_with(served, both)
    assert sum("previous_response_id" in e.json for e in served.journal) == 2
    assert sorted(LOOKUPS) == ["Look up apples", "Look up pears"]
    assert apples.final_output == "Found: notes on Look up apples"
    assert pears.final_output == "Found: notes on Look up pears"
    entries = list(served.journal)
    assert [(e.status, e.rule) for e in entries] == [(200, "lookup-loop")] * 4


def test_the_conversation_header_tells_apart_the_same_question(serve) -> None:
    # The same instructions and first message would make one conversation (its second run would
    # start at the sequence's answer); x-mockllm-conversation makes them two.
    served = serve(AGENTS / "conversation.yaml")

    async def both() -> list[Any]:
        async def one(name: str) -> Any:
            headers = {"x-mockllm-conversation": name}
            async with openai.AsyncOpenAI(
                base_url=served.base_url, api_key="test", max_retries=0, default_headers=headers
            ) as client:
                return await run_agent("responses", client, "Look up apples", False, lookup)

        return await asyncio.gather(one("first"), one("second"))

    results = asyncio.run(both())
    assert LOOKUPS == ["Look up apples", "Look up apples"]
    assert [r.final_output for r in results] == ["Found: notes on Look up apples"] * 2
    entries = list(served.journal)
    assert sorted(e.headers["x-mockllm-conversation"] for e in entries) == ["first", "first", "second", "second"]
    assert [(e.status, e.rule) for e in entries] == [(200, "lookup-loop")] * 4


# -- the bundled catch-all, streamed (Runner.run: tests/test_agents_sdk.py) -----------------------


@pytest.mark.parametrize("api", APIS)
def test_the_catch_all_runs_a_streamed_agent_loop(serve, api: str) -> None:
    served = serve(SCENARIOS)
    result = run_with(served, lambda c: run_agent(api, c, "Look up the weather, please.", True, get_weather))
    (city,) = CALLS  # once, with a `city` valid for the strict schema
    assert isinstance(city, str) and called_arguments(result) == [{"city": city}]
    assert isinstance(result.final_output, str) and result.final_output
    assert [(e.endpoint, e.rule, e.stream) for e in served.journal] == [(api, "generated-text", True)] * 2
