"""The Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`) through the real openai SDK.

Runs under openai 2.x (httpx) and 3.x (httpx2) alike; where the generations differ (a dropped or
stalled stream: raw httpx errors in 2.x, APIConnectionError / APITimeoutError in 3.x, as
openai/_streaming.py `Stream._iter_events` of each shows), the expected exception is picked per
generation. Wire facts: ../shared/dialects.md section 1 ("OpenAI Responses") and
../shared/wire.md section 4; the SDK's stream helper is openai/lib/streaming/responses/_responses.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import openai
import pydantic
import pytest
from helpers import faulted

OPENAI_3 = int(openai.__version__.split(".")[0]) >= 3
if OPENAI_3:  # openai 3 _streaming.py: `except request_exceptions(): raise APIConnectionError` (timeouts first)
    DROPPED: type[BaseException] = openai.APIConnectionError
    TIMED_OUT: type[BaseException] = openai.APITimeoutError
else:  # openai 2.x _streaming.py iterates response.iter_bytes() unguarded: the raw httpx error escapes
    DROPPED = httpx.RemoteProtocolError
    TIMED_OUT = httpx.ReadTimeout

RESP_ID = re.compile(r"^resp_[0-9a-f]{48}$")
MSG_ID = re.compile(r"^msg_[0-9a-f]{48}$")
FC_ID = re.compile(r"^fc_[0-9a-f]{48}$")
CALL_ID = re.compile(r"^call_[0-9A-Za-z]{24}$")
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")

TEXT = "one two three four five"  # five deltas: "one", " two", " three", " four", " five"
PIECES = ["one", " two", " three", " four", " five"]
TEXT_EVENTS = [  # dialects.md section 1, "Stream, text"
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
# the final-response error of the stream helper (lib/streaming/responses/_responses.py, get_final_response)
NO_COMPLETED = "Didn't receive a `response.completed` event."
WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


def client(served: Any, **kwargs: Any) -> openai.OpenAI:
    kwargs.setdefault("max_retries", 0)
    return openai.OpenAI(base_url=served.base_url, api_key="test", **kwargs)


def stream_events(c: openai.OpenAI, **kwargs: Any) -> tuple[list[Any], BaseException | None]:
    """The events `responses.create(stream=True)` yielded, and the exception that ended it (or None)."""
    events: list[Any] = []
    try:
        with c.responses.create(stream=True, **kwargs) as stream:
            for event in stream:
                events.append(event)
    except Exception as exc:
        return events, exc
    return events, None


def helper_events(c: openai.OpenAI, **kwargs: Any) -> tuple[list[Any], Any, BaseException | None]:
    """The events of `responses.stream(...)`, its final response (or None), and what it raised (or None)."""
    events: list[Any] = []
    try:
        with c.responses.stream(**kwargs) as stream:
            for event in stream:
                events.append(event)
            return events, stream.get_final_response(), None
    except Exception as exc:
        return events, None, exc


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def deltas(events: list[Any]) -> list[str]:
    return [e.delta for e in events if e.type == "response.output_text.delta"]


def assert_still_serving(served: Any) -> None:
    c = client(served)
    assert c.responses.create(model="healthy", input="Hi").output_text == "all good"
    events, error = stream_events(c, model="healthy", input="Hi")
    assert error is None and "".join(deltas(events)) == "all good"


# -- not streamed ------------------------------------------------------------------------------


def test_create_not_streamed(serve) -> None:
    served = serve({"name": "hello", "reply": {"content": "Hello there, friend!"}})
    done = client(served).responses.create(model="gpt-4o", input="Hi", temperature=0.2, max_output_tokens=100)
    assert done.object == "response"
    assert RESP_ID.match(done.id), done.id  # dialects.md section 1, "IDs"
    assert done.status == "completed"
    assert done.error is None and done.incomplete_details is None
    assert isinstance(done.created_at, int | float) and done.created_at > 1_600_000_000
    assert done.model == "gpt-4o"
    (item,) = done.output
    assert item.type == "message" and MSG_ID.match(item.id), item.id
    assert (item.role, item.status) == ("assistant", "completed")
    (part,) = item.content
    assert part.type == "output_text" and part.text == "Hello there, friend!" and part.annotations == []
    assert done.output_text == "Hello there, friend!"  # the SDK's property over the output items
    # the request's parameters are echoed; the API's defaults for the rest
    assert (done.temperature, done.max_output_tokens, done.previous_response_id) == (0.2, 100, None)
    assert (done.instructions, done.tools, done.tool_choice) == (None, [], "auto")
    usage = done.usage
    assert usage is not None
    assert usage.output_tokens == 5  # "Hello", " there", ",", " friend", "!"
    assert usage.input_tokens > 0 and usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0 and usage.output_tokens_details.reasoning_tokens == 0
    entry = served.journal.last
    assert (entry.endpoint, entry.rule, entry.status, entry.stream) == ("responses", "hello", 200, False)
    assert entry.json["input"] == "Hi"


def test_raw_response_headers(serve) -> None:
    served = serve({"reply": {"content": "ok"}})
    raw = client(served).responses.with_raw_response.create(model="gpt-4o", input="Hi")
    assert raw.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(raw.headers["x-request-id"])  # dialects.md section 1, "Headers"
    assert raw.headers["openai-version"] == "2020-10-01"
    assert raw.parse().output_text == "ok"


def test_usage_override_maps_to_input_and_output_tokens(serve) -> None:
    served = serve({"reply": {"content": "Two.", "usage": {"prompt_tokens": 1000, "completion_tokens": 7}}})
    c = client(served)
    usage = c.responses.create(model="gpt-4o", input="Hi").usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1000, 7, 1007)
    events, error = stream_events(c, model="gpt-4o", input="Hi")
    assert error is None
    streamed = events[-1].response.usage
    assert streamed is not None and (streamed.input_tokens, streamed.output_tokens) == (1000, 7)


def test_usage_partial_override_counts_the_rest(serve) -> None:
    served = serve(
        {
            "rules": [
                {"match": {"model": "counted"}, "reply": {"content": "Two."}},
                {"match": {"model": "capped"}, "reply": {"content": "Two.", "usage": {"completion_tokens": 9}}},
            ]
        }
    )
    c = client(served)
    counted = c.responses.create(model="counted", input="What's 1+1?").usage
    capped = c.responses.create(model="capped", input="What's 1+1?").usage
    assert counted is not None and capped is not None
    assert counted.output_tokens == 2  # "Two", "."
    assert (capped.input_tokens, capped.output_tokens) == (counted.input_tokens, 9)


# -- streamed ----------------------------------------------------------------------------------


def test_stream_text_events_in_order(serve) -> None:
    served = serve({"reply": {"content": TEXT}})
    events, error = stream_events(client(served), model="gpt-4o", input="Count")
    assert error is None
    assert types(events) == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))  # 0, 1, 2, ... no gaps
    assert deltas(events) == PIECES
    created, in_progress, added, part_added = events[:4]
    text_done, part_done, item_done, completed = events[-4:]
    assert RESP_ID.match(created.response.id)
    assert created.response.status == "in_progress" and created.response.output == []
    assert created.response.usage is None  # usage only on terminal objects (dialects.md section 1, "Usage")
    assert in_progress.response.id == created.response.id == completed.response.id
    assert added.output_index == 0 and added.item.type == "message" and added.item.status == "in_progress"
    assert added.item.content == [] and MSG_ID.match(added.item.id)
    item_id = added.item.id
    assert part_added.part.type == "output_text" and part_added.part.text == ""
    for event in events[3:-2]:  # the part, delta and text events name their item; output_item.done has it whole
        assert (event.item_id, event.output_index) == (item_id, 0)
    assert item_done.output_index == 0 and item_done.item.id == item_id
    assert all(e.content_index == 0 for e in events[3:-2])
    assert text_done.text == TEXT and part_done.part.text == TEXT
    assert item_done.item.status == "completed" and item_done.item.content[0].text == TEXT
    final = completed.response
    assert final.status == "completed" and final.output_text == TEXT  # the full output is repeated there
    assert [o.id for o in final.output] == [item_id]
    assert final.usage is not None and final.usage.output_tokens == 5
    entry = served.journal.last
    assert (entry.endpoint, entry.stream, entry.status) == ("responses", True, 200)


def test_stream_and_body_agree(serve) -> None:
    served = serve({"reply": {"content": "Streams and bodies agree on usage, always."}})
    c = client(served)
    events, error = stream_events(c, model="gpt-4o", input="Say something", instructions="Be brief.")
    done = c.responses.create(model="gpt-4o", input="Say something", instructions="Be brief.")
    assert error is None
    final = events[-1].response
    assert "".join(deltas(events)) == final.output_text == done.output_text
    assert final.usage is not None and done.usage is not None
    assert final.usage.to_dict() == done.usage.to_dict()
    assert done.usage.output_tokens == len(deltas(events))


def test_explicit_chunks_with_empty_deltas(serve) -> None:
    served = serve({"reply": {"chunks": ["", "Hel", "", "lo", " 世界"]}})
    c = client(served)
    events, error = stream_events(c, model="gpt-4o", input="Hi")
    assert error is None
    assert deltas(events) == ["", "Hel", "", "lo", " 世界"]  # one delta event per chunk, "" included
    assert events[-1].response.output_text == "Hello 世界"
    assert c.responses.create(model="gpt-4o", input="Hi").output_text == "Hello 世界"


def test_stream_helper_text_events_and_final_response(serve) -> None:
    served = serve({"reply": {"content": "Helpers see every delta."}})
    events, final, error = helper_events(client(served), model="gpt-4o", input="Hi")
    assert error is None
    text_deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert [e.delta for e in text_deltas] == ["Helpers", " see", " every", " delta", "."]
    # the helper's own delta event carries the text so far (_responses.py, handle_event)
    assert [e.snapshot for e in text_deltas][-2:] == ["Helpers see every delta", "Helpers see every delta."]
    (text_done,) = [e for e in events if e.type == "response.output_text.done"]
    assert text_done.text == "Helpers see every delta."
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.output_text == "Helpers see every delta."
    assert final.status == "completed" and final.id == events[0].response.id
    assert final.usage is not None and final.usage.output_tokens == 5


def test_async_client(serve) -> None:
    served = serve({"reply": {"content": "Async works too."}})

    async def main() -> tuple[Any, list[Any], Any]:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test", max_retries=0) as c:
            done = await c.responses.create(model="gpt-4o-mini", input="Hi")
            stream = await c.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
            async with stream:
                events = [e async for e in stream]
            async with c.responses.stream(model="gpt-4o-mini", input="Hi") as helper:
                async for _ in helper:
                    pass
                final = await helper.get_final_response()
            return done, events, final

    done, events, final = asyncio.run(main())
    assert done.output_text == "Async works too."
    assert deltas(events) == ["Async", " works", " too", "."]
    assert events[-1].type == "response.completed"
    assert final.output_text == "Async works too."
    assert [e.call_index for e in served.journal] == [0, 1, 2]
    assert len({done.id, events[0].response.id, final.id}) == 3  # each call has its own id


def test_async_stream_faults(serve) -> None:
    # AsyncStream._iter_events: the same per-generation exceptions as the sync stream
    served = serve(
        {
            "rules": [
                {
                    "match": {"model": "drop"},
                    "reply": {"content": TEXT, "fault": {"kind": "disconnect", "after_chunks": 2}},
                },
                {"match": {"model": "error"}, "reply": {"content": TEXT, "fault": {"kind": "error_event"}}},
            ]
        }
    )

    async def run(model: str) -> tuple[list[Any], BaseException | None]:
        events: list[Any] = []
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test", max_retries=0) as c:
            try:
                async with c.responses.stream(model=model, input="Count") as stream:
                    async for event in stream:
                        events.append(event)
            except Exception as exc:
                return events, exc
        return events, None

    events, error = asyncio.run(run("drop"))
    assert isinstance(error, DROPPED), repr(error)
    assert deltas(events) == PIECES[:2]
    events, error = asyncio.run(run("error"))
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIStatusError), repr(error)
    assert deltas(events) == []


# -- function calls ----------------------------------------------------------------------------

TOOL_RULE = {
    "name": "tools",
    "reply": {
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}', "id": "call_fixed123"},
        ]
    },
}


def test_function_calls_not_streamed(serve) -> None:
    served = serve(TOOL_RULE)
    done = client(served).responses.create(model="gpt-4o", input="Weather and time?", tools=[WEATHER_TOOL])
    assert done.status == "completed"  # a tool call is no incomplete answer (dialects.md section 7)
    assert done.output_text == ""
    first, second = done.output
    assert first.type == second.type == "function_call"
    assert FC_ID.match(first.id) and FC_ID.match(second.id) and first.id != second.id
    assert CALL_ID.match(first.call_id), first.call_id  # derived: call_ + 24 alphanumerics
    assert second.call_id == "call_fixed123"  # given: as is
    assert (first.name, second.name) == ("get_weather", "get_time")
    assert first.arguments == '{"city":"Paris","unit":"celsius"}'  # a mapping: compact JSON
    assert second.arguments == '{"tz": "Europe/Paris"}'  # a string: verbatim
    assert first.status == second.status == "completed"
    assert [t.name for t in done.tools] == ["get_weather"]  # echoed


def test_function_calls_streamed(serve) -> None:
    served = serve(TOOL_RULE)
    c = client(served)
    events, error = stream_events(c, model="gpt-4o", input="Weather?", tools=[WEATHER_TOOL])
    assert error is None
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = types(events)
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" not in kinds and "response.content_part.added" not in kinds
    for index, expected in enumerate(['{"city":"Paris","unit":"celsius"}', '{"tz": "Europe/Paris"}']):
        mine = [e for e in events[2:-1] if e.output_index == index]
        assert mine[0].type == "response.output_item.added" and mine[-1].type == "response.output_item.done"
        added = mine[0].item
        assert added.type == "function_call" and added.arguments == "" and added.status == "in_progress"
        fragments = [e for e in mine if e.type == "response.function_call_arguments.delta"]
        assert len(fragments) > 1, "arguments come in several fragments"
        assert all(e.item_id == added.id for e in fragments)
        assert "".join(e.delta for e in fragments) == expected
        (args_done,) = [e for e in mine if e.type == "response.function_call_arguments.done"]
        assert args_done.arguments == expected
        assert mine[-1].item.arguments == expected and mine[-1].item.status == "completed"
        assert [e.type for e in mine[1:-1]] == ["response.function_call_arguments.delta"] * len(fragments) + [
            "response.function_call_arguments.done"
        ]
    final = events[-1].response
    assert final.status == "completed" and [o.type for o in final.output] == ["function_call"] * 2
    streamed_call_id = final.output[0].call_id
    # the helper accumulates the same calls
    served.engine.reset()
    events, helper_final, error = helper_events(c, model="gpt-4o", input="Weather?", tools=[WEATHER_TOOL])
    assert error is None
    arg_deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert arg_deltas[-1].snapshot == '{"tz": "Europe/Paris"}'
    assert [o.call_id for o in helper_final.output] == [streamed_call_id, "call_fixed123"]
    # the streamed derived call_id equals the non-streamed one for the same call index
    served.engine.reset()
    done = c.responses.create(model="gpt-4o", input="Weather?", tools=[WEATHER_TOOL])
    assert done.output[0].call_id == streamed_call_id


def test_content_and_a_function_call_together(serve) -> None:
    served = serve({"reply": {"content": "Let me check.", "tool_calls": [{"name": "lookup", "arguments": {}}]}})
    c = client(served)
    done = c.responses.create(model="gpt-4o", input="?")
    assert [o.type for o in done.output] == ["message", "function_call"]
    assert done.output_text == "Let me check." and done.output[1].arguments == "{}"
    events, error = stream_events(c, model="gpt-4o", input="?")
    assert error is None
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [(e.output_index, e.item.type) for e in added] == [(0, "message"), (1, "function_call")]
    assert "".join(deltas(events)) == "Let me check."


def test_tool_loop_function_call_output_then_text(serve) -> None:
    """The agent loop: a tool is offered, the model calls it, the result goes back with its call_id."""
    served = serve(
        {
            "name": "agent",
            "replies": [
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"content": "It is sunny in Paris."},
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_oslo"}]},
                {"content": "It snows in Oslo."},
            ],
        }
    )
    c = client(served)
    # 1. the whole conversation sent back as input items
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = c.responses.create(model="gpt-4o", input=history, tools=[WEATHER_TOOL])
    (call,) = first.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}
    history += [
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'},
    ]
    second = c.responses.create(model="gpt-4o", input=history, tools=[WEATHER_TOOL])
    assert second.output_text == "It is sunny in Paris."
    sent = served.journal.last.json["input"]
    assert sent[-1] == {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}
    # 2. chained by previous_response_id: only the tool result is sent
    third = c.responses.create(model="gpt-4o", input="Weather in Oslo?", tools=[WEATHER_TOOL])
    assert third.output[0].call_id == "call_oslo"
    fourth = c.responses.create(
        model="gpt-4o",
        previous_response_id=third.id,
        input=[{"type": "function_call_output", "call_id": "call_oslo", "output": "snow"}],
        tools=[WEATHER_TOOL],
    )
    assert fourth.output_text == "It snows in Oslo." and fourth.previous_response_id == third.id
    assert [(e.rule, e.call_index, e.status) for e in served.journal] == [("agent", i, 200) for i in range(4)]


class Weather(pydantic.BaseModel):
    city: str
    temp_c: int


def test_parse_with_a_text_format(serve) -> None:
    # responses.parse() sends text.format json_schema and parses output_text into the model
    # (lib/_parsing/_responses.py parse_response / parse_text), streamed or not.
    served = serve({"reply": {"content": '{"city":"Paris","temp_c":21}'}})
    c = client(served)
    done = c.responses.parse(model="gpt-4o", input="Weather?", text_format=Weather)
    assert done.output_parsed == Weather(city="Paris", temp_c=21)
    sent = served.journal.last.json["text"]["format"]
    assert (sent["type"], sent["name"], sent["strict"]) == ("json_schema", "Weather", True)
    assert done.text is not None and done.text.format is not None and done.text.format.type == "json_schema"
    with c.responses.stream(model="gpt-4o", input="Weather?", text_format=Weather) as stream:
        events = list(stream)
        final = stream.get_final_response()
    (text_done,) = [e for e in events if e.type == "response.output_text.done"]
    assert text_done.parsed == Weather(city="Paris", temp_c=21)
    assert final.output_parsed == Weather(city="Paris", temp_c=21)


def test_parse_with_a_strict_tool_gives_parsed_arguments(serve) -> None:
    # parse_function_tool_arguments: a strict input tool -> json.loads(arguments)
    served = serve({"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}})
    done = client(served).responses.parse(model="gpt-4o", input="Weather?", tools=[WEATHER_TOOL])
    (call,) = done.output
    assert call.type == "function_call" and call.parsed_arguments == {"city": "Paris"}


# -- incomplete --------------------------------------------------------------------------------


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_incomplete_answers(serve, finish: str, reason: str) -> None:
    served = serve({"reply": {"content": "cut sho", "finish_reason": finish}})
    c = client(served)
    done = c.responses.create(model="gpt-4o", input="Hi")
    assert done.status == "incomplete"  # dialects.md section 1, "Status"
    assert done.incomplete_details is not None and done.incomplete_details.reason == reason
    assert done.output_text == "cut sho"
    events, error = stream_events(c, model="gpt-4o", input="Hi")
    assert error is None
    assert events[-1].type == "response.incomplete" and "response.completed" not in types(events)
    assert events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details.reason == reason
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_stream_helper_final_response_raises_on_incomplete(serve) -> None:
    # _responses.py get_final_response: no response.completed -> RuntimeError (dialects.md section 1,
    # "Client behaviours"); the events themselves, response.incomplete included, are all yielded.
    served = serve({"reply": {"content": "cut sho", "finish_reason": "length"}})
    events, final, error = helper_events(client(served), model="gpt-4o", input="Hi", max_output_tokens=16)
    assert final is None and isinstance(error, RuntimeError) and str(error) == NO_COMPLETED
    assert events[-1].type == "response.incomplete"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "cut sho"


# -- scripted errors ---------------------------------------------------------------------------

ERRORS: dict[int, tuple[type[openai.APIStatusError], str, str | None]] = {
    400: (openai.BadRequestError, "invalid_request_error", None),
    401: (openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
    404: (openai.NotFoundError, "invalid_request_error", "model_not_found"),
    429: (openai.RateLimitError, "tokens", "rate_limit_exceeded"),
    500: (openai.InternalServerError, "server_error", None),
}


@pytest.mark.parametrize("status", sorted(ERRORS))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_scripted_error_raises_the_sdk_exception(serve, status: int, stream: bool) -> None:
    error_type, kind, code = ERRORS[status]
    served = serve({"match": {"model": "m"}, "reply": {"error": {"status": status}}})
    with pytest.raises(error_type) as caught:
        client(served).responses.create(model="m", input="Hello?", stream=stream)  # errors raise at create()
    error = caught.value
    assert error.status_code == status
    assert (error.type, error.code, error.param) == (kind, code, None)
    assert isinstance(error.body, dict) and set(error.body) == {"message", "type", "param", "code"}
    assert error.request_id is not None and REQUEST_ID.match(error.request_id)
    entry = served.journal.last
    assert len(served.journal) == 1 and (entry.endpoint, entry.status) == ("responses", status)


def test_scripted_error_fields_as_given(serve) -> None:
    spec = {
        "status": 400,
        "message": "Invalid 'temperature': decimal below minimum value.",
        "type": "invalid_request_error",
        "code": "decimal_below_min_value",
        "param": "temperature",
    }
    served = serve({"reply": {"error": spec}})
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).responses.create(model="m", input="Hello?", temperature=-1)
    assert caught.value.body == {k: spec[k] for k in ("message", "type", "param", "code")}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_429_then_200_is_retried_by_the_sdk(serve, stream: bool) -> None:
    served = serve(
        {
            "name": "flaky",
            "replies": [{"error": {"status": 429, "headers": {"retry-after-ms": "10"}}}, {"content": "ok"}],
        }
    )
    started = time.monotonic()
    if stream:  # the error comes before the stream, at create(): retried there (wire.md section 5)
        events, error = stream_events(client(served, max_retries=2), model="m", input="retry")
        assert error is None and events[-1].response.output_text == "ok"
    else:
        assert client(served, max_retries=2).responses.create(model="m", input="retry").output_text == "ok"
    assert time.monotonic() - started < 1.0  # retry-after-ms obeyed, not the 1 s retry-after
    assert [e.status for e in served.journal] == [429, 200]
    assert [e.headers.get("x-stainless-retry-count") for e in served.journal] == ["0", "1"]


# -- faults on a stream ------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
def test_disconnect(serve, after: int) -> None:
    served = serve(faulted("disconnect", after))
    events, error = stream_events(client(served), model="faulty", input="Count")
    assert isinstance(error, DROPPED), repr(error)
    assert deltas(events) == PIECES[:after]
    assert "response.completed" not in types(events)
    assert served.journal[0].aborted
    events, _, error = helper_events(client(served), model="faulty", input="Count")
    assert isinstance(error, DROPPED), repr(error)
    assert deltas(events) == PIECES[:after]
    assert_still_serving(served)


@pytest.mark.parametrize("after", [0, 2])
def test_error_event_raises_api_error_without_status(serve, after: int) -> None:
    # openai/_streaming.py: a data object with a truthy top-level "error" raises APIError; the
    # nested live shape {"type":"error","error":{...}} has one (dialects.md section 1, "Errors").
    served = serve(faulted("error_event", after, message="The model is overloaded mid-stream."))
    events, error = stream_events(client(served), model="faulty", input="Count")
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIStatusError), repr(error)
    assert error.message == "The model is overloaded mid-stream."
    assert error.body == {
        "type": "server_error",
        "code": "server_error",
        "message": "The model is overloaded mid-stream.",
        "param": None,
    }
    assert (error.code, error.type) == ("server_error", "server_error")
    assert deltas(events) == PIECES[:after]
    assert "response.completed" not in types(events)  # response.failed comes after the error: never seen
    events, _, error = helper_events(client(served), model="faulty", input="Count")
    assert isinstance(error, openai.APIError) and deltas(events) == PIECES[:after]
    assert_still_serving(served)


def test_stall_trips_the_client_read_timeout(serve) -> None:
    served = serve(faulted("stall", 1, stall_ms=1500))
    started = time.monotonic()
    events, error = stream_events(client(served, timeout=0.3), model="faulty", input="Count")
    assert isinstance(error, TIMED_OUT), repr(error)
    assert time.monotonic() - started < 1.2  # the client's timeout fired, not the server's drop at 1.5 s
    assert deltas(events) == PIECES[:1]
    assert_still_serving(served)


@pytest.mark.parametrize("after", [0, 2])
def test_malformed_raises_json_decode_error(serve, after: int) -> None:
    served = serve(faulted("malformed", after))
    events, error = stream_events(client(served), model="faulty", input="Count")
    assert isinstance(error, json.JSONDecodeError), repr(error)  # sse.json() in _streaming.py, both generations
    assert deltas(events) == PIECES[:after]
    assert_still_serving(served)


def test_no_done_ends_quietly_but_the_helper_has_no_final_response(serve) -> None:
    served = serve(faulted("no_done"))
    events, error = stream_events(client(served), model="faulty", input="Count")
    assert error is None
    assert types(events) == TEXT_EVENTS[:-1]  # everything but response.completed
    assert deltas(events) == PIECES
    events, final, error = helper_events(client(served), model="faulty", input="Count")
    assert final is None and isinstance(error, RuntimeError) and str(error) == NO_COMPLETED
    assert deltas(events) == PIECES


def test_no_finish_leaves_out_the_done_events(serve) -> None:
    served = serve(faulted("no_finish"))
    events, error = stream_events(client(served), model="faulty", input="Count")
    assert error is None
    assert types(events) == [t for t in TEXT_EVENTS if not t.endswith(".done")]
    assert [e.sequence_number for e in events] == list(range(len(events)))  # renumbered, no gaps (contract)
    assert events[-1].response.output_text == TEXT
    # the helper's final output is read from response.completed (3.x accepts an item without
    # output_item.done when the final output has it: _responses.py accumulate_event)
    events, final, error = helper_events(client(served), model="faulty", input="Count")
    assert error is None and final.output_text == TEXT


def test_no_finish_on_a_function_call(serve) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    served = serve({"reply": {"tool_calls": [call], "fault": {"kind": "no_finish"}}})
    events, error = stream_events(client(served), model="m", input="Weather?")
    assert error is None
    kinds = types(events)
    assert "response.function_call_arguments.done" not in kinds and "response.output_item.done" not in kinds
    assert kinds[-1] == "response.completed"
    fragments = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(fragments) == '{"city":"Paris"}' == events[-1].response.output[0].arguments


@pytest.mark.parametrize(
    ("reply", "after", "before_the_drop"),
    [
        # "Let me check." is 4 text deltas; the 5th chunk is the call's first argument fragment
        ({"content": "Let me check.", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]}, 5, (4, 1)),
        # '{"a":1}' is 5 fragments; the 6th chunk is the second call's first fragment
        ({"tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {"b": 2}}]}, 6, (0, 6)),
    ],
    ids=["text-then-call", "two-calls"],
)
def test_after_chunks_counts_across_output_items(
    serve, reply: dict[str, Any], after: int, before_the_drop: Any
) -> None:
    # The contract: `after_chunks` counts text deltas and argument fragments (as chat's fault counts
    # content and tool-call chunks across calls), so the fault may come inside a later output item.
    served = serve({"reply": {**reply, "fault": {"kind": "disconnect", "after_chunks": after}}})
    events, error = stream_events(client(served), model="m", input="?")
    assert isinstance(error, DROPPED), repr(error)
    kinds = types(events)
    counts = (kinds.count("response.output_text.delta"), kinds.count("response.function_call_arguments.delta"))
    assert counts == before_the_drop, kinds
    assert kinds[-1] == "response.function_call_arguments.delta"


def test_after_chunks_counts_argument_fragments(serve) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris"}}
    served = serve({"reply": {"tool_calls": [call], "fault": {"kind": "disconnect", "after_chunks": 1}}})
    events, error = stream_events(client(served), model="m", input="Weather?")
    assert isinstance(error, DROPPED), repr(error)
    assert types(events)[-1] == "response.function_call_arguments.delta"
    assert types(events).count("response.function_call_arguments.delta") == 1


@pytest.mark.parametrize("kind", ["disconnect", "stall"])
def test_a_dropped_body_that_is_not_streamed_is_a_connection_error_and_retried(serve, kind: str) -> None:
    # Not streamed, disconnect and stall drop the connection before the body; the SDK's own request
    # path wraps transport errors in both generations (_base_client.py) and retries them.
    served = serve(faulted(kind, 1, stall_ms=1500))
    expected = openai.APITimeoutError if kind == "stall" else openai.APIConnectionError
    with pytest.raises(expected):
        client(served, max_retries=1, timeout=0.3).responses.create(model="faulty", input="Count")
    assert [e.headers.get("x-stainless-retry-count") for e in served.journal] == ["0", "1"]
    assert_still_serving(served)


@pytest.mark.parametrize("kind", ["error_event", "malformed", "no_done", "no_finish"])
def test_stream_only_faults_leave_a_body_whole(serve, kind: str) -> None:
    served = serve(faulted(kind, 1))
    done = client(served).responses.create(model="faulty", input="Count")
    assert done.status == "completed" and done.output_text == TEXT


def test_a_last_event_without_its_blank_line_is_lost(serve) -> None:
    # wire.md section 5: the SDK's SSE decoder dispatches an event on its blank line only, so the
    # response.completed event at the very end is dropped and the helper has no final response.
    served = serve({"reply": {"content": TEXT, "framing": {"trailing_blank_line": False}}})
    events, error = stream_events(client(served), model="m", input="Count")
    assert error is None and types(events) == TEXT_EVENTS[:-1]
    events, final, error = helper_events(client(served), model="m", input="Count")
    assert final is None and isinstance(error, RuntimeError) and str(error) == NO_COMPLETED


# -- previous_response_id, retrieve ----------------------------------------------------------------


def test_previous_response_id_chains_and_retrieve_returns_the_object(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "name", "match": {"user": {"contains": "name is"}}, "reply": {"content": "Hello Ada."}},
                {"name": "recall", "match": {"user": {"contains": "my name?"}}, "reply": {"content": "Ada."}},
            ]
        }
    )
    c = client(served)
    first = c.responses.create(model="gpt-4o", input="My name is Ada.")
    second = c.responses.create(model="gpt-4o", input="What is my name?", previous_response_id=first.id)
    assert second.output_text == "Ada." and second.previous_response_id == first.id
    assert second.id != first.id
    alone = c.responses.create(model="gpt-4o", input="What is my name?")
    assert second.usage is not None and alone.usage is not None
    assert second.usage.input_tokens > alone.usage.input_tokens  # the earlier turn counts as history
    assert c.responses.retrieve(first.id).to_dict() == first.to_dict()
    assert c.responses.retrieve(second.id).to_dict() == second.to_dict()
    assert served.journal.last.endpoint == "responses"


def test_a_streamed_response_is_stored_too(serve) -> None:
    served = serve({"reply": {"content": TEXT}})
    c = client(served)
    events, error = stream_events(c, model="gpt-4o", input="Count")
    assert error is None
    final = events[-1].response
    stored = c.responses.retrieve(final.id)
    assert stored.status == "completed" and stored.output_text == TEXT
    assert stored.to_dict() == final.to_dict()  # the object of the response.completed event
    nxt = c.responses.create(model="gpt-4o", input="Again", previous_response_id=final.id)
    assert nxt.previous_response_id == final.id


def test_instructions_are_not_carried_over_by_previous_response_id(serve) -> None:
    # OAS Response.instructions: "When using along with `previous_response_id`, the instructions from a
    # previous response will not be carried over to the next response."
    served = serve(
        {
            "rules": [
                {"name": "pirate", "match": {"system": {"contains": "pirate"}}, "reply": {"content": "Arr"}},
                {"name": "any", "reply": {"content": "plain"}},
            ]
        }
    )
    c = client(served)
    first = c.responses.create(model="gpt-4o", instructions="You are a pirate.", input="hello")
    assert first.output_text == "Arr"
    second = c.responses.create(model="gpt-4o", input="again", previous_response_id=first.id)
    assert second.output_text == "plain" and second.instructions is None


@pytest.mark.parametrize(
    ("extra", "terminal", "status"),
    [
        ({"finish_reason": "length"}, "response.incomplete", "incomplete"),
        ({"fault": {"kind": "error_event", "after_chunks": 2}}, "response.failed", "failed"),
    ],
    ids=["incomplete", "failed"],
)
def test_retrieve_after_a_stream_returns_its_terminal_object(
    serve, extra: dict[str, Any], terminal: str, status: str
) -> None:
    # What GET /v1/responses/{id} returns is the object the stream ended on: a stream that told the
    # client `response.failed` (status "failed", `error` set) must not be stored as "completed".
    # (The stream is read raw: the SDK raises at the `error` event before `response.failed`.)
    served = serve({"reply": {"content": TEXT, **extra}})
    c = client(served)
    raw = httpx.post(
        f"{served.base_url}/responses",
        json={"model": "m", "input": "Count", "stream": True},
        headers={"authorization": "Bearer test"},
        timeout=10,
    )
    last = json.loads(raw.text.rstrip("\n").split("\n\n")[-1].split("\ndata: ", 1)[1])
    assert last["type"] == terminal and last["response"]["status"] == status
    stored = c.responses.retrieve(last["response"]["id"])
    assert stored.status == status
    assert stored.to_dict() == last["response"]


def test_unknown_previous_response_id_is_404(serve) -> None:
    served = serve({"reply": {"content": "never"}})
    c = client(served)
    with pytest.raises(openai.NotFoundError) as caught:
        c.responses.create(model="gpt-4o", input="Hi", previous_response_id="resp_x")
    assert caught.value.body == {
        "message": "Previous response with id 'resp_x' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        c.responses.create(model="gpt-4o", input="Hi", previous_response_id="resp_x", stream=True)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve("resp_" + "0" * 48)


def test_store_false_is_not_kept(serve) -> None:
    served = serve({"reply": {"content": "ephemeral"}})
    c = client(served)
    done = c.responses.create(model="gpt-4o", input="Hi", store=False)
    assert done.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(done.id)
    with pytest.raises(openai.NotFoundError) as caught:
        c.responses.create(model="gpt-4o", input="Hi", previous_response_id=done.id)
    assert caught.value.code == "previous_response_not_found"


# -- matching: instructions, input forms ---------------------------------------------------------


def test_instructions_are_matched_by_match_system(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "pirate", "match": {"system": {"contains": "pirate"}}, "reply": {"content": "Arr"}},
                {"name": "any", "reply": {"content": "plain"}},
            ]
        }
    )
    c = client(served)
    done = c.responses.create(model="gpt-4o", instructions="You are a pirate.", input="hello")
    assert done.output_text == "Arr" and done.instructions == "You are a pirate."
    assert c.responses.create(model="gpt-4o", input="hello").output_text == "plain"
    developer = [{"role": "developer", "content": "Talk like a pirate"}, {"role": "user", "content": "hello"}]
    assert c.responses.create(model="gpt-4o", input=developer).output_text == "Arr"
    system = [{"role": "system", "content": "Speak as a pirate."}, {"role": "user", "content": "hello"}]
    assert c.responses.create(model="gpt-4o", input=system).output_text == "Arr"
    # instructions, when given, are the system text; the items' system text is not looked at then
    plain = c.responses.create(model="gpt-4o", instructions="Be plain.", input=developer)
    assert plain.output_text == "plain" and served.journal.last.rule == "any"


def test_input_string_and_item_lists(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "eq", "match": {"user": {"equals": "ping"}}, "reply": {"content": "pong"}},
                {"name": "any", "reply": {"content": "plain"}},
            ]
        }
    )
    c = client(served)

    def text(input: Any) -> str:
        return c.responses.create(model="gpt-4o", input=input).output_text

    assert text("ping") == "pong"
    assert text("ping!") == "plain"
    assert text([{"role": "user", "content": "ping"}]) == "pong"
    assert text([{"type": "message", "role": "user", "content": "ping"}]) == "pong"
    parts = [{"type": "input_text", "text": "pi"}, {"type": "input_text", "text": "ng"}]
    assert text([{"role": "user", "content": parts}]) == "pong"  # input_text parts joined
    # the last user item counts, earlier ones do not
    later = [
        {"role": "user", "content": "ping"},
        {"role": "assistant", "content": "pong"},
        {"role": "user", "content": [{"type": "input_text", "text": "again"}]},
    ]
    assert text(later) == "plain"
    assert text([*later[:2], {"role": "user", "content": [{"type": "input_text", "text": "ping"}]}]) == "pong"


def test_non_ascii_round_trip(serve) -> None:
    content = "Ça va? 日本語のテキスト 👋🏽 and e\u0301 combining"
    served = serve({"reply": {"content": content}})
    c = client(served)
    assert c.responses.create(model="gpt-4o", input="Hi").output_text == content
    events, error = stream_events(c, model="gpt-4o", input="Hi")
    assert error is None and "".join(deltas(events)) == content


def test_model_override_and_generate(serve) -> None:
    served = serve(
        {
            "rules": [
                {"match": {"model": "fixed"}, "reply": {"content": "x", "model": "gpt-4o-2024-08-06"}},
                {"reply": {"generate": {"sentences": 2}}},
            ]
        }
    )
    c = client(served)
    assert c.responses.create(model="fixed", input="Hi").model == "gpt-4o-2024-08-06"
    events, error = stream_events(c, model="fixed", input="Hi")
    assert error is None and {e.response.model for e in events if hasattr(e, "response")} == {"gpt-4o-2024-08-06"}
    first = c.responses.create(model="gpt-4o", input="Hi")
    text = first.output_text
    assert text and text.count(".") >= 2 and text[0].isupper()
    assert c.responses.create(model="gpt-4o", input="Hi").output_text != text  # the next call generates anew
    served.engine.reset()
    c.responses.create(model="fixed", input="Hi")
    events, error = stream_events(c, model="gpt-4o", input="Hi")  # call 0 of the generate rule again
    assert error is None and "".join(deltas(events)) == text


def test_async_parallel_requests_get_their_own_ids_and_are_all_stored(serve) -> None:
    served = serve({"reply": {"content": "parallel"}})

    async def main() -> tuple[list[str], list[str]]:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test", max_retries=0) as c:
            answers = await asyncio.gather(*(c.responses.create(model="gpt-4o", input=f"q{i}") for i in range(8)))
            ids = [a.id for a in answers]
            stored = await asyncio.gather(*(c.responses.retrieve(i) for i in ids))
            return ids, [s.id for s in stored]

    ids, stored = asyncio.run(main())
    assert len(set(ids)) == 8 and stored == ids
    assert sorted(e.call_index for e in served.journal if e.endpoint == "responses" and e.call_index is not None) == (
        list(range(8))
    )


# -- determinism -------------------------------------------------------------------------------

DETERMINISM = {
    "rules": [
        {"name": "tools", "match": {"user": {"contains": "weather"}}, "reply": TOOL_RULE["reply"]},
        {"name": "generated", "reply": {"generate": {"sentences": 2}}},
    ]
}


def test_same_scenario_same_requests_same_ids_and_bytes(serve) -> None:
    def run() -> list[Any]:
        c = client(serve(DETERMINISM))
        out: list[Any] = []
        for text in ("hello", "weather?", "hello"):
            raw = c.responses.with_raw_response.create(model="gpt-4o", input=text)
            out.append(raw.content)
            events, error = stream_events(c, model="gpt-4o", input=text)
            assert error is None
            out.append([e.to_dict() for e in events])
        return out

    first, second = run(), run()
    assert first == second
    ids = [json.loads(body)["id"] for body in first[::2]]
    assert len(set(ids)) == 3 and all(RESP_ID.match(i) for i in ids)
    tools = json.loads(first[2])["output"]
    assert FC_ID.match(tools[0]["id"]) and CALL_ID.match(tools[0]["call_id"])


# -- endpoints -----------------------------------------------------------------------------------


def test_a_chat_only_rule_does_not_answer_responses(serve) -> None:
    served = serve({"name": "chat-only", "match": {"endpoint": "chat"}, "reply": {"content": "chat"}})
    c = client(served, max_retries=2)
    with pytest.raises(openai.APIStatusError) as caught:
        c.responses.create(model="gpt-4o", input="Hi")
    error = caught.value
    assert error.status_code == 418 and error.code == "no_rule_matched"
    assert error.response.headers["x-should-retry"] == "false"
    assert "no rule matched this responses request" in error.body["message"]  # type: ignore[index]
    assert len(served.journal) == 1  # max_retries=2, yet one attempt
    entry = served.journal.last
    assert (entry.endpoint, entry.status, entry.rule) == ("responses", 418, None)
    chat = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert chat.choices[0].message.content == "chat"


@pytest.mark.parametrize("endpoint", [["chat", "responses"], None], ids=["both", "any"])
def test_a_rule_for_both_endpoints(serve, endpoint: list[str] | None) -> None:
    match = {"endpoint": endpoint} if endpoint else {}
    served = serve({"name": "both", "match": match, "reply": {"content": "both"}})
    c = client(served)
    assert c.responses.create(model="gpt-4o", input="Hi").output_text == "both"
    chat = c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert chat.choices[0].message.content == "both"
    assert [(e.endpoint, e.rule) for e in served.journal] == [("responses", "both"), ("chat", "both")]


def test_model_stream_and_header_matching_on_responses(serve, tmp_path) -> None:
    scenario = tmp_path / "responses.yaml"
    scenario.write_text(
        """\
version: 1
rules:
  - name: mini-stream
    match: {endpoint: [chat, responses], model: "gpt-4o-mini*", stream: true}
    reply: {content: "A"}
  - name: blue
    match: {endpoint: responses, headers: {X-Team: blue}}
    reply: {content: "B"}
  - name: other
    match: {endpoint: responses}
    reply: {content: "C"}
"""
    )
    served = serve(scenario)
    c = client(served)
    events, error = stream_events(c, model="gpt-4o-mini-2024-07-18", input="x")
    assert error is None and "".join(deltas(events)) == "A"
    assert c.responses.create(model="gpt-4o-mini", input="x").output_text == "C"  # not streamed
    blue = c.responses.create(model="gpt-4o-mini", input="x", extra_headers={"x-team": "blue"})
    assert blue.output_text == "B"
    assert [e.rule for e in served.journal] == ["mini-stream", "other", "blue"]


def test_a_responses_only_rule_does_not_answer_chat(serve) -> None:
    served = serve({"name": "responses-only", "match": {"endpoint": "responses"}, "reply": {"content": "r"}})
    c = client(served)
    assert c.responses.create(model="gpt-4o", input="Hi").output_text == "r"
    with pytest.raises(openai.APIStatusError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 418
    assert "no rule matched this chat request" in caught.value.body["message"]  # type: ignore[index]
