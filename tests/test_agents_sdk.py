"""The OpenAI Agents SDK (openai-agents) against the real server's Responses API on loopback.

openai-agents needs openai >= 3, so CI runs this file in environment 2 only; in environment 1 it
is skipped at import. Paths in comments are in the installed `agents` package (0.24).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import netguard
import pytest
from helpers import SCENARIOS
from pydantic import BaseModel

# Nothing may leave loopback. By default the SDK exports every trace to
# https://api.openai.com/v1/traces/ingest (tracing/processors.py, BackendSpanExporter), with the
# key of the client given to set_default_openai_client (use_for_tracing=True, __init__.py). The
# env var is read once, on first use of the trace provider (tracing/provider.py,
# _refresh_disabled_flag), so it is set before the SDK is imported.
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"

agents = pytest.importorskip(
    "agents", reason="openai-agents needs openai >= 3: CI runs this file in environment 2 (.ci/run)"
)

import openai  # noqa: E402
from agents import (  # noqa: E402
    Agent,
    ModelBehaviorError,
    ModelRetrySettings,
    ModelSettings,
    RunConfig,
    Runner,
    TracingProcessor,
    add_trace_processor,
    function_tool,
    set_default_openai_client,
    set_trace_processors,
    set_tracing_disabled,
)
from agents.items import ToolCallItem, ToolCallOutputItem  # noqa: E402
from agents.models import _openai_shared  # noqa: E402
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel  # noqa: E402
from agents.models.openai_responses import OpenAIResponsesModel  # noqa: E402
from agents.tracing import get_trace_provider  # noqa: E402
from openai.types.responses import ResponseTextDeltaEvent  # noqa: E402

# Belt and braces: tracing off globally, and no processor at all (the default one is the
# BatchTraceProcessor around BackendSpanExporter), so even a run that turned tracing back on
# would export nowhere. Every run below but the one of test_tracing_is_off_and_exports_nowhere
# also passes RunConfig(tracing_disabled=True), and tests/netguard.py refuses any connection or
# name lookup beyond loopback during each test.
set_tracing_disabled(True)
set_trace_processors([])

MODEL = "gpt-4o-mini"
NO_TRACE = RunConfig(tracing_disabled=True)
FAST_RETRY = {"retry-after-ms": "10"}  # openai waits 10 ms instead of its 0.5 s+ backoff (or 429's 1 s)
T = TypeVar("T")


def run(make: Callable[[openai.AsyncOpenAI], Awaitable[T]], served: Any, **client_options: Any) -> T:
    """Run `make(client)` in a fresh loop with an AsyncOpenAI client on the served namespace."""

    async def main() -> T:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test", **client_options) as client:
            return await make(client)

    return asyncio.run(main())


def assistant(client: openai.AsyncOpenAI, **kwargs: Any) -> Agent[Any]:
    model = OpenAIResponsesModel(model=MODEL, openai_client=client)
    return Agent(name="Assistant", instructions="Be brief.", model=model, **kwargs)


async def streamed_text(result: Any) -> tuple[list[str], list[str]]:
    """(the text deltas, every raw event type) of a run_streamed result."""
    deltas: list[str] = []
    kinds: list[str] = []
    async for event in result.stream_events():
        if event.type == "raw_response_event":
            kinds.append(event.data.type)
            if isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)
    return deltas, kinds


def responses_entries(served: Any) -> list[Any]:
    entries = list(served.journal)
    assert all(e.endpoint == "responses" for e in entries), [e.endpoint for e in entries]
    return entries


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection or name lookup beyond loopback, during any test here (tests/netguard.py)."""
    refused = netguard.guard(monkeypatch)
    yield
    assert refused == []


@pytest.fixture
def default_client() -> Iterator[None]:
    """Leave the SDK's process-wide default client as it was found."""
    before = _openai_shared.get_default_openai_client()
    yield
    _openai_shared.set_default_openai_client(before)  # type: ignore[arg-type]


# -- nothing is traced -------------------------------------------------------------------------


class Recorder(TracingProcessor):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_trace_start(self, trace: Any) -> None:
        self.seen.append(f"trace {trace.name}")

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        self.seen.append(f"span {type(span.span_data).__name__}")

    def on_span_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def test_tracing_is_off_and_exports_nowhere(serve) -> None:
    served = serve({"reply": {"content": "Not traced."}})
    provider = get_trace_provider()
    assert provider._multi_processor._processors == ()  # type: ignore[attr-defined]
    recorder = Recorder()
    add_trace_processor(recorder)
    try:
        # no RunConfig here: the global switch alone must keep traces (and spans) from starting
        result = run(lambda c: Runner.run(assistant(c), "Hi"), served)
    finally:
        set_trace_processors([])
    assert result.final_output == "Not traced."
    assert recorder.seen == []


# -- Runner.run (not streamed) -----------------------------------------------------------------


def test_run_final_output_and_request(serve) -> None:
    served = serve({"name": "hello", "match": {"endpoint": "responses"}, "reply": {"content": "Hello there, friend!"}})
    result = run(lambda c: Runner.run(assistant(c), "Hi", run_config=NO_TRACE), served)
    assert result.final_output == "Hello there, friend!"
    (entry,) = responses_entries(served)
    assert (entry.rule, entry.status, entry.stream) == ("hello", 200, False)
    # models/openai_responses.py _build_response_create_kwargs: the agent's instructions, the
    # input as a list (items.py ItemHelpers.input_to_new_input_list), `include` and `tools` sent
    # even when empty, no `stream` key on a non-streamed call, everything else omitted
    assert entry.json == {
        "model": MODEL,
        "include": [],
        "input": [{"content": "Hi", "role": "user"}],
        "instructions": "Be brief.",
        "tools": [],
    }
    assert entry.headers["user-agent"] == f"Agents/Python {agents.__version__}"  # _HEADERS
    # the response id and request id reach the run result (openai_responses.py get_response)
    (raw,) = result.raw_responses
    assert raw.response_id is not None and raw.response_id.startswith("resp_")
    assert raw.request_id is not None and raw.request_id.startswith("req_")


def test_run_usage_reaches_context_wrapper(serve) -> None:
    served = serve({"reply": {"content": "Counted.", "usage": {"prompt_tokens": 11, "completion_tokens": 7}}})
    result = run(lambda c: Runner.run(assistant(c), "Count", run_config=NO_TRACE), served)
    usage = result.context_wrapper.usage
    # usage.py _response_usage_to_usage: input/output/total tokens, one request
    assert (usage.requests, usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1, 11, 7, 18)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


def test_default_client_path_uses_responses(serve, default_client) -> None:
    # models/_openai_shared.py: _use_responses_by_default = True, so a model given by name goes
    # through MultiProvider -> OpenAIProvider.get_model -> OpenAIResponsesModel (openai_provider.py)
    # with the default client (OpenAIProvider._get_client -> get_default_openai_client()).
    assert _openai_shared.get_use_responses_by_default() is True
    served = serve({"reply": {"content": "By default, Responses."}})

    async def go(client: openai.AsyncOpenAI) -> Any:
        # use_for_tracing=False: the client's key must not become a tracing key either
        set_default_openai_client(client, use_for_tracing=False)
        agent = Agent(name="Assistant", instructions="Be brief.", model=MODEL)
        return await Runner.run(agent, "Hi", run_config=NO_TRACE)

    result = run(go, served)
    assert result.final_output == "By default, Responses."
    (entry,) = responses_entries(served)
    assert entry.json["model"] == MODEL


# -- Runner.run_streamed -----------------------------------------------------------------------


def test_run_streamed_text_deltas(serve) -> None:
    served = serve(
        {"reply": {"content": "The quick brown fox.", "usage": {"prompt_tokens": 9, "completion_tokens": 5}}}
    )

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, list[str], list[str]]:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        deltas, kinds = await streamed_text(result)
        return result, deltas, kinds

    result, deltas, kinds = run(go, served)
    assert deltas == ["The", " quick", " brown", " fox", "."]
    assert "".join(deltas) == result.final_output == "The quick brown fox."
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 5
    # the usage of the stream comes from response.completed (run_internal/run_loop.py)
    usage = result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1, 9, 5, 14)
    (entry,) = responses_entries(served)
    assert entry.stream is True and entry.json["stream"] is True


def test_run_streamed_explicit_chunks(serve) -> None:
    chunks = ["Hel", "lo", "", ", wor", "ld"]
    served = serve({"reply": {"chunks": chunks}})

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, list[str]]:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        deltas, _ = await streamed_text(result)
        return result, deltas

    result, deltas = run(go, served)
    assert deltas == chunks  # one output_text.delta per chunk, the empty one too
    assert result.final_output == "Hello, world"


# -- a tool loop -------------------------------------------------------------------------------

CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    CALLS.append(city)
    return f"Sunny in {city}"


def weather_scenario(call_id: str | None) -> dict[str, Any]:
    call: dict[str, Any] = {"name": "get_weather", "arguments": {"city": "Paris"}}
    if call_id is not None:
        call["id"] = call_id
    return {
        "name": "weather",
        "match": {"endpoint": "responses", "user": {"contains": "weather"}},
        "replies": [
            {"tool_calls": [call], "usage": {"prompt_tokens": 30, "completion_tokens": 8}},
            {"content": "It is sunny in Paris.", "usage": {"prompt_tokens": 50, "completion_tokens": 6}},
        ],
    }


def check_tool_round_trip(served: Any, result: Any, call_id: str | None) -> None:
    assert result.final_output == "It is sunny in Paris."
    first, second = responses_entries(served)
    assert (first.call_index, second.call_index) == (0, 1)
    # the tool the agent offers, flat as the Responses API wants it
    # (openai_responses.py Converter._convert_function_tool; strict schema by default)
    (tool,) = first.json["tools"]
    assert (tool["type"], tool["name"], tool["description"]) == (
        "function",
        "get_weather",
        "Get the weather for a city.",
    )
    assert tool["strict"] is True
    assert tool["parameters"]["properties"] == {"city": {"title": "City", "type": "string"}}
    assert tool["parameters"]["required"] == ["city"]

    # the SDK ran the tool once, with the scripted arguments
    called = [item for item in result.new_items if isinstance(item, ToolCallItem)]
    outputs = [item for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert len(called) == 1 and len(outputs) == 1
    sent_call_id = called[0].raw_item.call_id
    if call_id is not None:
        assert sent_call_id == call_id
    else:
        assert sent_call_id.startswith("call_") and len(sent_call_id) > len("call_")
    assert called[0].raw_item.id.startswith("fc_")
    assert json.loads(called[0].raw_item.arguments) == {"city": "Paris"}

    # the second request replays the whole turn: user item, the model's function_call item, and
    # the tool's result under the same call_id (run_internal/turn_resolution.py, items.py
    # ItemHelpers.tool_call_output_item)
    items = second.json["input"]
    assert items[0] == {"content": "What's the weather in Paris?", "role": "user"}
    call_items = [i for i in items if i.get("type") == "function_call"]
    output_items = [i for i in items if i.get("type") == "function_call_output"]
    assert len(call_items) == 1 and len(output_items) == 1
    assert call_items[0]["call_id"] == sent_call_id and call_items[0]["name"] == "get_weather"
    assert json.loads(call_items[0]["arguments"]) == {"city": "Paris"}
    assert output_items[0] == {"call_id": sent_call_id, "output": "Sunny in Paris", "type": "function_call_output"}
    assert items.index(call_items[0]) < items.index(output_items[0])
    assert "previous_response_id" not in second.json  # the SDK keeps the history client-side

    usage = result.context_wrapper.usage
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 80, 14)


def test_tool_loop(serve) -> None:
    CALLS.clear()
    served = serve(weather_scenario("call_weather_1"))
    agent_run = lambda c: Runner.run(  # noqa: E731
        assistant(c, tools=[get_weather]), "What's the weather in Paris?", run_config=NO_TRACE
    )
    result = run(agent_run, served)
    assert CALLS == ["Paris"]
    check_tool_round_trip(served, result, "call_weather_1")


def test_tool_loop_streamed_with_derived_call_id(serve) -> None:
    CALLS.clear()
    served = serve(weather_scenario(None))

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, list[str]]:
        result = Runner.run_streamed(
            assistant(client, tools=[get_weather]), "What's the weather in Paris?", run_config=NO_TRACE
        )
        _, kinds = await streamed_text(result)
        return result, kinds

    result, kinds = run(go, served)
    assert CALLS == ["Paris"]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.count("response.completed") == 2  # one per model call
    check_tool_round_trip(served, result, None)
    assert all(e.stream for e in served.journal)


# -- scripted errors and the SDK's retries -----------------------------------------------------


def test_429_raises_rate_limit_error_without_retry(serve) -> None:
    served = serve({"reply": {"error": {"status": 429}}})
    with pytest.raises(openai.RateLimitError) as caught:
        # the Runner adds no retry of its own by default (run_internal/model_retry.py
        # get_response_with_retry: no retry settings -> only the client's); the client has none here
        run(lambda c: Runner.run(assistant(c), "Hi", run_config=NO_TRACE), served, max_retries=0)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.response.headers["retry-after"] == "1"
    assert error.request_id is not None and error.request_id.startswith("req_")
    (entry,) = responses_entries(served)
    assert entry.status == 429


def test_500_is_retried_by_the_openai_client_then_raises(serve) -> None:
    served = serve({"reply": {"error": {"status": 500, "headers": FAST_RETRY}}})
    with pytest.raises(openai.InternalServerError) as caught:
        # the client's default max_retries=2: three requests in all
        run(lambda c: Runner.run(assistant(c), "Hi", run_config=NO_TRACE), served)
    assert caught.value.status_code == 500
    entries = responses_entries(served)
    assert [e.status for e in entries] == [500, 500, 500]
    assert [e.headers.get("x-stainless-retry-count") for e in entries] == ["0", "1", "2"]


def test_429_then_answer_recovers_through_client_retry(serve) -> None:
    served = serve({"replies": [{"error": {"status": 429, "headers": FAST_RETRY}}, {"content": "Second time lucky."}]})
    result = run(lambda c: Runner.run(assistant(c), "Hi", run_config=NO_TRACE), served)
    assert result.final_output == "Second time lucky."
    assert [e.status for e in responses_entries(served)] == [429, 200]
    # the client's retry is invisible to the SDK: one request counted
    assert result.context_wrapper.usage.requests == 1


def test_model_retry_settings_zero_disables_the_client_retries(serve) -> None:
    # run_internal/model_retry.py _should_disable_provider_managed_retries: max_retries <= 0
    # also turns off the openai client's own retries (openai_responses.py _get_client,
    # with_options(max_retries=0))
    served = serve({"reply": {"error": {"status": 500, "headers": FAST_RETRY}}})
    settings = ModelSettings(retry=ModelRetrySettings(max_retries=0))
    with pytest.raises(openai.InternalServerError):
        run(lambda c: Runner.run(assistant(c, model_settings=settings), "Hi", run_config=NO_TRACE), served)
    assert [e.status for e in responses_entries(served)] == [500]


def test_streamed_500_raises_from_stream_events(serve) -> None:
    served = serve({"reply": {"error": {"status": 500, "message": "Boom."}}})

    async def go(client: openai.AsyncOpenAI) -> None:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        await streamed_text(result)

    with pytest.raises(openai.InternalServerError) as caught:
        run(go, served, max_retries=0)
    assert caught.value.status_code == 500
    assert caught.value.message.endswith("Boom.")
    (entry,) = responses_entries(served)
    assert entry.stream is True and entry.status == 500


def test_mid_stream_error_event_raises_api_error(serve) -> None:
    served = serve({"reply": {"content": "One two three four.", "fault": {"kind": "error_event", "after_chunks": 2}}})
    deltas: list[str] = []

    async def go(client: openai.AsyncOpenAI) -> None:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)

    # openai/_streaming.py: `event: error` with a truthy nested `error` raises APIError before the
    # SDK sees the event (the SDK's own `error` handling, openai_responses.py stream_response,
    # would raise ModelBehaviorError for the flat shape)
    with pytest.raises(openai.APIError) as caught:
        run(go, served, max_retries=0)
    assert not isinstance(caught.value, openai.APIStatusError)
    assert deltas == ["One", " two"]


def test_incomplete_response_raises_model_behavior_error(serve) -> None:
    served = serve({"reply": {"content": "Cut short", "finish_reason": "length"}})
    with pytest.raises(ModelBehaviorError) as caught:
        # openai_responses.py _fetch_response: status failed/incomplete -> _response_terminal.py
        run(lambda c: Runner.run(assistant(c), "Hi", run_config=NO_TRACE), served)
    message = str(caught.value)
    assert "`response.incomplete`" in message and "status=incomplete" in message
    assert "max_output_tokens" in message


def test_incomplete_stream_raises_model_behavior_error(serve) -> None:
    served = serve({"reply": {"content": "Cut short", "finish_reason": "length"}})

    async def go(client: openai.AsyncOpenAI) -> list[str]:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        deltas, _ = await streamed_text(result)
        return deltas

    with pytest.raises(ModelBehaviorError) as caught:
        # run_internal/run_loop.py: a response.incomplete event raises
        run(go, served)
    assert "`response.incomplete`" in str(caught.value)


# -- conversations: replayed history, and previous_response_id chains -------------------------

NAME_RULES: dict[str, Any] = {
    "rules": [
        {"name": "intro", "match": {"user": {"contains": "name is"}}, "reply": {"content": "Nice to meet you, Ada."}},
        {"name": "recall", "match": {"user": {"contains": "my name?"}}, "reply": {"content": "Your name is Ada."}},
    ]
}


def test_second_turn_replays_the_assistant_output_items(serve) -> None:
    served = serve(NAME_RULES)

    async def go(client: openai.AsyncOpenAI) -> Any:
        agent = assistant(client)
        first = await Runner.run(agent, "My name is Ada.", run_config=NO_TRACE)
        history = [*first.to_input_list(), {"role": "user", "content": "What is my name?"}]
        return await Runner.run(agent, history, run_config=NO_TRACE)

    result = run(go, served)
    assert result.final_output == "Your name is Ada."
    first, second = responses_entries(served)
    assert (first.rule, second.rule) == ("intro", "recall")
    # result.py to_input_list: the assistant turn goes back as the output item it came as, an
    # output_text part with its msg_ id and status (items.py _output_item_to_input_item)
    user, said, again = second.json["input"]
    assert user == {"content": "My name is Ada.", "role": "user"}
    assert (said["type"], said["role"], said["status"]) == ("message", "assistant", "completed")
    assert said["id"].startswith("msg_")
    (part,) = said["content"]
    assert (part["type"], part["text"]) == ("output_text", "Nice to meet you, Ada.")
    assert again == {"role": "user", "content": "What is my name?"}


def test_previous_response_id_chain_counts_the_stored_history(serve) -> None:
    served = serve(NAME_RULES)

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, Any, Any]:
        agent = assistant(client)
        first = await Runner.run(agent, "My name is Ada.", run_config=NO_TRACE)
        assert first.last_response_id is not None
        replayed = await Runner.run(
            agent, [*first.to_input_list(), {"role": "user", "content": "What is my name?"}], run_config=NO_TRACE
        )
        chained = await Runner.run(
            agent, "What is my name?", previous_response_id=first.last_response_id, run_config=NO_TRACE
        )
        return first, replayed, chained

    first, replayed, chained = run(go, served)
    assert chained.final_output == "Your name is Ada."
    *_, third = responses_entries(served)
    assert third.rule == "recall"
    # only the new turn is sent, with the id of the stored response (run.py passes
    # previous_response_id to the model call, openai_responses.py _build_response_create_kwargs)
    assert third.json["previous_response_id"] == first.last_response_id
    assert third.json["input"] == [{"content": "What is my name?", "role": "user"}]
    # the chained request counts its stored history as the replayed one counts it inline
    tokens = [r.context_wrapper.usage.input_tokens for r in (first, replayed, chained)]
    assert tokens[2] == tokens[1] > tokens[0]


def test_unknown_previous_response_id_is_not_found(serve) -> None:
    served = serve({"reply": {"content": "unused"}})
    with pytest.raises(openai.NotFoundError) as caught:
        run(
            lambda c: Runner.run(assistant(c), "Hi", previous_response_id="resp_nope", run_config=NO_TRACE),
            served,
            max_retries=0,
        )
    error = caught.value
    assert (error.code, error.param) == ("previous_response_not_found", "previous_response_id")
    assert error.message.endswith("Previous response with id 'resp_nope' not found.")


def test_tool_loop_with_auto_previous_response_id(serve) -> None:
    CALLS.clear()
    served = serve(weather_scenario("call_weather_2"))
    result = run(
        lambda c: Runner.run(
            assistant(c, tools=[get_weather]),
            "What's the weather in Paris?",
            auto_previous_response_id=True,
            run_config=NO_TRACE,
        ),
        served,
    )
    assert CALLS == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
    first, second = responses_entries(served)
    # the second turn sends only the tool result, chained to the first response, whose stored
    # function_call the server must find (the rule matches the user text in that history)
    assert second.rule == "weather"
    assert second.json["previous_response_id"] == result.raw_responses[0].response_id
    assert second.json["input"] == [
        {"call_id": "call_weather_2", "output": "Sunny in Paris", "type": "function_call_output"}
    ]
    assert "previous_response_id" not in first.json


# -- more agent shapes: structured output, parallel tools, a handoff --------------------------


class Weather(BaseModel):
    city: str
    temperature_c: int


def test_structured_output(serve) -> None:
    served = serve({"reply": {"content": '{"city":"Paris","temperature_c":21}'}})
    result = run(lambda c: Runner.run(assistant(c, output_type=Weather), "Paris?", run_config=NO_TRACE), served)
    assert result.final_output == Weather(city="Paris", temperature_c=21)
    # agent_output.py / openai_responses.py Converter.get_response_format: a strict json_schema
    text = responses_entries(served)[0].json["text"]
    assert text["format"]["type"] == "json_schema"
    assert text["format"]["name"] == "final_output" and text["format"]["strict"] is True
    assert set(text["format"]["schema"]["properties"]) == {"city", "temperature_c"}


@function_tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    CALLS.append(f"time {city}")
    return f"Noon in {city}"


def test_parallel_tool_calls_each_get_their_result(serve) -> None:
    CALLS.clear()
    served = serve(
        {
            "replies": [
                {
                    "tool_calls": [
                        {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_a"},
                        {"name": "get_time", "arguments": {"city": "Lima"}, "id": "call_b"},
                    ]
                },
                {"content": "Done."},
            ]
        }
    )
    result = run(
        lambda c: Runner.run(assistant(c, tools=[get_weather, get_time]), "Both, please.", run_config=NO_TRACE),
        served,
    )
    assert result.final_output == "Done."
    assert sorted(CALLS) == ["Oslo", "time Lima"]
    _, second = responses_entries(served)
    items = second.json["input"]
    calls = {i["call_id"]: i["name"] for i in items if i.get("type") == "function_call"}
    outputs = {i["call_id"]: i["output"] for i in items if i.get("type") == "function_call_output"}
    assert calls == {"call_a": "get_weather", "call_b": "get_time"}
    assert outputs == {"call_a": "Sunny in Oslo", "call_b": "Noon in Lima"}


def test_handoff_switches_instructions(serve) -> None:
    served = serve(
        {
            "rules": [
                {
                    "name": "triage",
                    "match": {"system": {"contains": "Route"}},
                    "reply": {"tool_calls": [{"name": "transfer_to_spanish_agent", "arguments": {}}]},
                },
                {"name": "spanish", "match": {"system": {"contains": "Spanish"}}, "reply": {"content": "Hola."}},
            ]
        }
    )

    async def go(client: openai.AsyncOpenAI) -> Any:
        model = OpenAIResponsesModel(model=MODEL, openai_client=client)
        spanish = Agent(name="Spanish agent", instructions="Answer in Spanish.", model=model)
        triage = Agent(name="Triage", instructions="Route to the right agent.", model=model, handoffs=[spanish])
        return await Runner.run(triage, "Hola!", run_config=NO_TRACE)

    result = run(go, served)
    assert result.final_output == "Hola."
    assert result.last_agent.name == "Spanish agent"
    first, second = responses_entries(served)
    assert (first.rule, second.rule) == ("triage", "spanish")
    # handoffs/__init__.py: the handoff is a function tool named transfer_to_<agent name>
    assert [t["name"] for t in first.json["tools"]] == ["transfer_to_spanish_agent"]
    assert second.json["instructions"] == "Answer in Spanish."
    outputs = [i for i in second.json["input"] if i.get("type") == "function_call_output"]
    assert len(outputs) == 1 and json.loads(outputs[0]["output"]) == {"assistant": "Spanish agent"}


# -- mid-stream faults: what the SDK raises for each ---------------------------------------------

TEXT = "One two three four."

# kind -> what Runner.run_streamed(...).stream_events() raises (None: the run ends normally)
STREAM_FAULTS: dict[str, type[BaseException] | None] = {
    "disconnect": openai.APIConnectionError,  # openai 3.x wraps the dropped chunked body
    "stall": openai.APITimeoutError,  # the client's read timeout (0.5 s) before stall_ms
    "error_event": openai.APIError,  # raised by openai/_streaming.py, see above
    "malformed": json.JSONDecodeError,  # the half event's JSON, unwrapped
    # run_internal/run_loop.py: no response.completed -> "Model did not produce a final response!"
    "no_done": ModelBehaviorError,
    # the SDK reads the output from response.completed, so missing .done events change nothing
    "no_finish": None,
}


@pytest.mark.parametrize("kind", sorted(STREAM_FAULTS))
def test_stream_fault(serve, kind: str) -> None:
    fault: dict[str, Any] = {"kind": kind, "after_chunks": 2}
    if kind == "stall":
        fault["stall_ms"] = 1500
    served = serve({"reply": {"content": TEXT, "fault": fault}})
    deltas: list[str] = []

    async def go(client: openai.AsyncOpenAI) -> Any:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
                deltas.append(event.data.delta)
        return result.final_output

    expected = STREAM_FAULTS[kind]
    if expected is None:
        assert run(go, served, max_retries=0, timeout=0.5) == TEXT
    else:
        with pytest.raises(expected) as caught:
            run(go, served, max_retries=0, timeout=0.5)
        if kind == "error_event":
            assert not isinstance(caught.value, openai.APIStatusError)
        if kind == "no_done":
            assert str(caught.value) == "Model did not produce a final response!"
    if kind in {"no_done", "no_finish"}:
        assert "".join(deltas) == TEXT  # every delta came
    else:
        assert deltas == ["One", " two"]  # after_chunks: 2
    assert len(served.journal) == 1


def test_non_streamed_disconnect_is_a_connection_error(serve) -> None:
    served = serve({"reply": {"content": TEXT, "fault": {"kind": "disconnect"}}})
    with pytest.raises(openai.APIConnectionError):
        run(lambda c: Runner.run(assistant(c), "Hi", run_config=NO_TRACE), served, max_retries=0)
    assert len(served.journal) == 1


def test_stored_response_can_be_retrieved_after_a_streamed_run(serve) -> None:
    served = serve({"reply": {"content": TEXT}})

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, Any]:
        result = Runner.run_streamed(assistant(client), "Hi", run_config=NO_TRACE)
        await streamed_text(result)
        assert result.last_response_id is not None
        return result, await client.responses.retrieve(result.last_response_id)

    result, stored = run(go, served)
    assert stored.id == result.last_response_id
    assert (stored.status, stored.output_text, stored.instructions) == ("completed", TEXT, "Be brief.")
    assert stored.usage is not None
    assert stored.usage.output_tokens == result.context_wrapper.usage.output_tokens


def test_reasoning_item_first_then_replayed(serve) -> None:
    # scenarios/edge-cases/responses-reasoning-first.yaml: a reasoning item at output_index 0, the
    # message at 1 (a verbatim o4-mini stream)
    served = serve(SCENARIOS)
    served.engine.add({"name": "again", "match": {"user": {"equals": "Again?"}}, "reply": {"content": "Hi again!"}})

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, list[str], Any]:
        reasoner = Agent(
            name="Reasoner", model=OpenAIResponsesModel(model="edge-responses-reasoning-first", openai_client=client)
        )
        first = Runner.run_streamed(reasoner, "Hi", run_config=NO_TRACE)
        deltas, _ = await streamed_text(first)
        follow_up = [*first.to_input_list(), {"role": "user", "content": "Again?"}]
        second = await Runner.run(assistant(client), follow_up, run_config=NO_TRACE)
        return first, deltas, second

    first, deltas, second = run(go, served)
    assert "".join(deltas) == first.final_output == "Hi there!"
    assert [type(item).__name__ for item in first.new_items] == ["ReasoningItem", "MessageOutputItem"]
    assert first.context_wrapper.usage.output_tokens_details.reasoning_tokens == 64
    # the reasoning item goes back as it came (items.py), and the server takes it as input
    assert second.final_output == "Hi again!"
    _, entry = responses_entries(served)
    kinds = [item.get("type", "message") for item in entry.json["input"]]
    assert kinds == ["message", "reasoning", "message", "message"]
    assert entry.json["input"][1]["id"].startswith("rs_")


def test_text_and_tool_call_in_one_streamed_answer(serve) -> None:
    CALLS.clear()
    served = serve(
        {
            "replies": [
                {"content": "Let me check.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]},
                {"content": "Sunny in Rome."},
            ]
        }
    )

    async def go(client: openai.AsyncOpenAI) -> tuple[Any, list[str]]:
        result = Runner.run_streamed(assistant(client, tools=[get_weather]), "Rome?", run_config=NO_TRACE)
        deltas, _ = await streamed_text(result)
        return result, deltas

    result, deltas = run(go, served)
    assert CALLS == ["Rome"]
    assert "".join(deltas) == "Let me check.Sunny in Rome."
    assert result.final_output == "Sunny in Rome."
    _, second = responses_entries(served)
    # the message item first, then the call (output_index 0, 1), then the tool's result
    kinds = [item.get("type", "message") for item in second.json["input"]]
    assert kinds == ["message", "message", "function_call", "function_call_output"]
    said = second.json["input"][1]
    assert said["role"] == "assistant" and said["content"][0]["text"] == "Let me check."


def test_store_false_response_cannot_be_chained_or_retrieved(serve) -> None:
    served = serve(NAME_RULES)

    async def go(client: openai.AsyncOpenAI) -> None:
        agent = assistant(client, model_settings=ModelSettings(store=False))
        first = await Runner.run(agent, "My name is Ada.", run_config=NO_TRACE)
        assert first.last_response_id is not None
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(first.last_response_id)
        with pytest.raises(openai.NotFoundError) as caught:
            await Runner.run(
                assistant(client), "What is my name?", previous_response_id=first.last_response_id, run_config=NO_TRACE
            )
        assert caught.value.code == "previous_response_not_found"

    run(go, served, max_retries=0)
    first, second = responses_entries(served)
    assert first.json["store"] is False  # ModelSettings.store -> the request's `store`
    assert second.status == 404


# -- Chat Completions, for contrast: one rule without match.endpoint answers both APIs ----------


@pytest.mark.parametrize(
    ("streamed", "include_usage"),
    [(False, None), (True, None), (True, True)],
    ids=["run", "run_streamed", "run_streamed_include_usage"],
)
def test_chat_completions_model_for_contrast(serve, streamed: bool, include_usage: bool | None) -> None:
    CALLS.clear()
    rule = weather_scenario("call_weather_3")
    del rule["match"]["endpoint"]
    served = serve(rule)

    async def go(client: openai.AsyncOpenAI) -> Any:
        # models/openai_chatcompletions.py, what OpenAIProvider(use_responses=False) gives
        model = OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
        settings = ModelSettings(include_usage=include_usage)
        agent = Agent(
            name="Assistant", instructions="Be brief.", model=model, tools=[get_weather], model_settings=settings
        )
        if not streamed:
            return await Runner.run(agent, "What's the weather in Paris?", run_config=NO_TRACE)
        result = Runner.run_streamed(agent, "What's the weather in Paris?", run_config=NO_TRACE)
        await streamed_text(result)
        return result

    result = run(go, served)
    assert CALLS == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
    first, second = list(served.journal)
    assert (first.endpoint, second.endpoint) == ("chat", "chat")
    assert first.json["messages"][0] == {"content": "Be brief.", "role": "system"}
    tool_message = second.json["messages"][-1]
    assert tool_message == {"role": "tool", "tool_call_id": "call_weather_3", "content": "Sunny in Paris"}
    usage = result.context_wrapper.usage
    if streamed and not include_usage:
        # unlike the Responses API, a Chat Completions stream has usage only when asked for
        # (chatcmpl_helpers.py get_stream_options_param: stream_options only with include_usage)
        assert "stream_options" not in first.json
        assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 0, 0)
    else:
        if streamed:
            assert first.json["stream_options"] == {"include_usage": True}
        assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 80, 14)


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_the_bundled_catch_all_runs_an_agent_loop_to_its_end(serve, api: str) -> None:
    """No scenario of the test's own: the bundled catch-all calls the agent's tool (arguments valid for
    its schema), then answers in text once the tool's result comes back (scenarios/default.yaml)."""
    CALLS.clear()
    served = serve(SCENARIOS)

    def agent(client: openai.AsyncOpenAI) -> Agent[Any]:
        model: Any = (
            OpenAIResponsesModel(model=MODEL, openai_client=client)
            if api == "responses"
            else OpenAIChatCompletionsModel(model=MODEL, openai_client=client)
        )
        return Agent(name="Assistant", instructions="Be brief.", model=model, tools=[get_weather])

    result = run(lambda c: Runner.run(agent(c), "Look up the weather, please.", run_config=NO_TRACE), served)
    assert len(CALLS) == 1 and isinstance(CALLS[0], str)  # the tool ran once, with a valid `city`
    assert isinstance(result.final_output, str) and result.final_output
    assert [(e.endpoint, e.rule) for e in served.journal] == [(api, "generated-text")] * 2
