"""Anthropic's Messages API (`POST /v1/messages`) through the real anthropic SDK, against the real server.

Wire facts: ../shared/dialects.md section 2; the SDK's stream accumulator is
anthropic/lib/streaming/_messages.py. The SDK appends `/v1/messages` to its base URL, so it is
given the namespace's root (`served.base_url` without its `/v1`).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import anthropic
import httpx
import pytest

MSG_ID = re.compile(r"^msg_01[1-9A-HJ-NP-Za-km-z]{22}$")
TOOLU_ID = re.compile(r"^toolu_01[1-9A-HJ-NP-Za-km-z]{22}$")
REQUEST_ID = re.compile(r"^req_011C[1-9A-HJ-NP-Za-km-z]{20}$")
TEXT = "one two three four five"
PIECES = ["one", " two", " three", " four", " five"]
USER = [{"role": "user", "content": "Count to five"}]
WEATHER = {"city": "Paris", "unit": "celsius"}
TOOL: Any = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
}
TEXT_EVENTS = [
    "message_start",
    "content_block_start",
    *["content_block_delta"] * 5,
    "content_block_stop",
    "message_delta",
    "message_stop",
]


def client(served: Any, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=served.base_url[: -len("/v1")], api_key="test", **kwargs)


def scenario(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


TEXT_RULE = {"name": "text", "match": {"endpoint": "anthropic"}, "reply": {"content": TEXT}}


def test_create_not_streamed(serve) -> None:
    served = serve(scenario(TEXT_RULE))
    raw = client(served).messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=64, messages=USER)
    message = raw.parse()
    assert MSG_ID.match(message.id)
    assert message.type == "message" and message.role == "assistant" and message.model == "claude-sonnet-4-5"
    assert [(b.type, b.text) for b in message.content] == [("text", TEXT)]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == 5 and message.usage.input_tokens > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0
    assert REQUEST_ID.match(raw.headers["request-id"]) and message._request_id == raw.headers["request-id"]
    assert "x-request-id" not in raw.headers and raw.headers["content-type"] == "application/json"
    assert raw.headers["anthropic-ratelimit-requests-limit"]
    # compact JSON in Claude 4.x's key order (dialects.md section 2, "Non-streamed body")
    assert raw.http_response.content.startswith(b'{"model":"claude-sonnet-4-5","id":"msg_01')
    assert b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":' in raw.http_response.content
    entry = served.journal.last
    assert entry.user_text == "Count to five" and entry.rule == "text"


def test_create_streamed(serve) -> None:
    served = serve(scenario(TEXT_RULE))
    events = list(client(served).messages.create(model="claude-x", max_tokens=64, messages=USER, stream=True))
    assert [e.type for e in events] == TEXT_EVENTS  # the SDK's iterator passes no `ping` on
    assert MSG_ID.match(events[0].message.id) and events[0].message.usage.output_tokens == 1
    assert [e.delta.text for e in events if e.type == "content_block_delta"] == PIECES
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 5


def test_stream_helper(serve) -> None:
    served = serve(scenario(TEXT_RULE))
    with client(served).messages.stream(model="claude-x", max_tokens=64, messages=USER) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == PIECES
    assert final.content[0].text == TEXT and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert final.usage.output_tokens == 5 and MSG_ID.match(final.id)


def test_async_client(serve) -> None:
    served = serve(scenario(TEXT_RULE))

    async def run() -> tuple[Any, list[str], Any]:
        c = anthropic.AsyncAnthropic(base_url=served.base_url[: -len("/v1")], api_key="test", max_retries=0)
        whole = await c.messages.create(model="claude-x", max_tokens=64, messages=USER)
        async with c.messages.stream(model="claude-x", max_tokens=64, messages=USER) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        return whole, texts, final

    whole, texts, final = asyncio.run(run())
    assert whole.content[0].text == TEXT and texts == PIECES and final.content[0].text == TEXT


def test_stop_reason_mapping(serve) -> None:
    rules = [
        {"match": {"model": f"m-{finish}"}, "reply": {"content": "cut", "finish_reason": finish}}
        for finish in ("length", "content_filter")
    ]
    c = client(serve(scenario(*rules)))
    got = [
        c.messages.create(model=f"m-{f}", max_tokens=5, messages=USER).stop_reason for f in ("length", "content_filter")
    ]
    assert got == ["max_tokens", "refusal"]


def tool_scenario() -> dict[str, Any]:
    """The first call asks for the weather tool; the second (answering it) reports the result."""
    replies = [
        {"content": "Let me check.", "tool_calls": [{"name": "get_weather", "arguments": WEATHER}]},
        {"content": "It is sunny in Paris."},
    ]
    return scenario({"name": "weather", "match": {"user": {"contains": "weather"}}, "replies": replies})


def test_tool_use_and_result_round_trip(serve) -> None:
    served = serve(tool_scenario())
    c = client(served)
    asked = [{"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}]
    first = c.messages.create(model="claude-x", max_tokens=256, tools=[TOOL], messages=asked)
    assert first.stop_reason == "tool_use"
    text, use = first.content
    assert text.type == "text" and text.text == "Let me check."  # type: ignore[union-attr]
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == WEATHER  # type: ignore[union-attr]
    assert TOOLU_ID.match(use.id)  # type: ignore[union-attr]
    answered = [
        *asked,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},  # type: ignore[union-attr]
    ]
    second = c.messages.create(model="claude-x", max_tokens=256, tools=[TOOL], messages=answered)
    assert second.content[0].text == "It is sunny in Paris." and second.stop_reason == "end_turn"  # type: ignore[union-attr]
    entries = list(served.journal)
    # the tool-result turn keeps the question as the user match; the tool names are read
    assert [e.user_text for e in entries] == ["What is the weather in Paris?"] * 2 and [
        e.call_index for e in entries
    ] == [0, 1]


def test_tool_use_streamed(serve) -> None:
    served = serve(tool_scenario())
    asked = [{"role": "user", "content": "weather in Paris?"}]
    with client(served).messages.stream(model="claude-x", max_tokens=256, tools=[TOOL], messages=asked) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["text", "tool_use"]
    fragments = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.index == 1]
    assert fragments[0] == "" and len(fragments) > 2 and json.loads("".join(fragments)) == WEATHER
    assert final.stop_reason == "tool_use" and final.content[1].input == WEATHER  # type: ignore[union-attr]
    assert TOOLU_ID.match(final.content[1].id)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
    ],
)
def test_scripted_errors(serve, status: int, error: type[anthropic.APIStatusError], kind: str) -> None:
    served = serve(scenario({"match": {"endpoint": "anthropic"}, "reply": {"error": {"status": status}}}))
    with pytest.raises(error) as raised:
        client(served).messages.create(model="claude-x", max_tokens=10, messages=USER)
    exc = raised.value
    assert exc.status_code == status
    body: Any = exc.body
    assert body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]
    assert REQUEST_ID.match(body["request_id"]) and exc.request_id == body["request_id"]
    assert exc.response.headers["request-id"] == body["request_id"]
    if status == 429:
        assert exc.response.headers["retry-after"] == "1"


def test_missing_max_tokens(serve) -> None:
    served = serve(scenario(TEXT_RULE))
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        httpx_post(served, {"model": "claude-x", "messages": USER})
    response = httpx.post(f"{served.base_url}/messages", json={"model": "claude-x", "messages": USER})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def httpx_post(served: Any, body: dict[str, Any]) -> Any:
    """The SDK's own POST of a body it would refuse to build (max_tokens is a required argument)."""
    return client(served).post("/v1/messages", body=body, cast_to=anthropic.types.Message)


def faulted(kind: str, after: int) -> dict[str, Any]:
    return scenario({"reply": {"content": TEXT, "fault": {"kind": kind, "after_chunks": after}}})


def test_error_event_mid_stream(serve) -> None:
    served = serve(faulted("error_event", 2))
    seen: list[str] = []
    c = client(served)
    with (
        pytest.raises(anthropic.APIStatusError) as raised,
        c.messages.stream(model="claude-x", max_tokens=64, messages=USER) as stream,
    ):
        seen.extend(stream.text_stream)
    assert seen == PIECES[:2]
    assert not isinstance(raised.value, anthropic.OverloadedError) and raised.value.status_code == 200
    assert "Overloaded" in str(raised.value)


def test_disconnect_mid_stream(serve) -> None:
    served = serve(faulted("disconnect", 3))
    seen: list[str] = []
    # a closed socket mid-body: the HTTP library's protocol error (or the SDK's wrapping of it)
    with pytest.raises((anthropic.APIConnectionError, *_protocol_errors())):
        for event in client(served).messages.create(model="claude-x", max_tokens=64, messages=USER, stream=True):
            if event.type == "content_block_delta":
                seen.append(event.delta.text)  # type: ignore[union-attr]
    assert seen == PIECES[:3]


def _protocol_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [httpx.RemoteProtocolError]
    try:
        import httpx2  # type: ignore[import-not-found]  # anthropic 2.x reads through httpx2
    except ImportError:
        pass
    else:
        errors.append(httpx2.RemoteProtocolError)
    return tuple(errors)


def test_match_endpoint_and_system(serve) -> None:
    served = serve(
        scenario(
            {"match": {"endpoint": "chat"}, "reply": {"content": "from chat"}},
            {"match": {"endpoint": "anthropic", "system": {"contains": "pirate"}}, "reply": {"content": "Arr."}},
            {"match": {"endpoint": "anthropic"}, "reply": {"content": "plain"}},
        )
    )
    c = client(served)
    plain = c.messages.create(model="claude-x", max_tokens=10, messages=USER)
    pirate = c.messages.create(model="claude-x", max_tokens=10, system="You are a pirate.", messages=USER)
    blocks = c.messages.create(
        model="claude-x", max_tokens=10, system=[{"type": "text", "text": "Talk like a pirate."}], messages=USER
    )
    assert [m.content[0].text for m in (plain, pirate, blocks)] == ["plain", "Arr.", "Arr."]  # type: ignore[union-attr]
    entries = list(served.journal)
    assert [e.endpoint for e in entries] == ["anthropic"] * 3
    assert entries[2].headers["anthropic-version"] and entries[2].json["system"][0]["text"] == "Talk like a pirate."


def test_stream_raw_bytes(serve) -> None:
    served = serve(scenario({"reply": {"content": "Hi there"}}))
    body = {"model": "claude-x", "max_tokens": 16, "stream": True, "messages": USER}
    headers = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{served.base_url}/messages", json=body, headers=headers) as response:
        raw = response.read()
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache" and REQUEST_ID.match(response.headers["request-id"])
    events = raw.decode().split("\n\n")
    assert events[-1] == ""  # every event ends with a blank line; no [DONE] after message_stop
    pairs = [tuple(e.split("\n")) for e in events[:-1]]
    assert all(len(p) == 2 and p[0].startswith("event: ") and p[1].startswith("data: ") for p in pairs)
    names = [p[0][len("event: ") :] for p in pairs]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    datas = [p[1][len("data: ") :] for p in pairs]
    assert datas[2] == '{"type": "ping"}'
    assert datas[3] == '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}'
    assert datas[5:] == [
        '{"type":"content_block_stop","index":0}',
        '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}',
        '{"type":"message_stop"}',
    ]
    start = json.loads(datas[0])
    assert list(start["message"]) == ["model", "id", "type", "role", "content", "stop_reason", "stop_sequence", "usage"]
    assert ": " not in datas[0] and all(json.loads(d)["type"] == n for d, n in zip(datas, names, strict=True))


@pytest.mark.parametrize(
    "reply",
    [
        {"content": TEXT},
        {"content": ""},
        {"chunks": ['é "q" \\ \n', "😀\u2028"], "model": 'm"odel'},
        {"refusal": "No."},
        {"content": TEXT, "finish_reason": "length", "usage": {"completion_tokens": 9}},
    ],
)
@pytest.mark.parametrize("limits", [{}, {"stop_sequences": [" three"]}, {"max_tokens": 2}])
def test_the_plain_stream_is_the_event_streams_bytes(reply: dict[str, Any], limits: dict[str, Any]) -> None:
    """AnthropicStream.plain_writes (text replies, straight to bytes) against frame(events())."""
    from mockllm import Engine
    from mockllm.dialects.anthropic import AnthropicStream

    body = json.dumps({"model": "c", "max_tokens": 100, "messages": USER, "stream": True, **limits}).encode()
    engine = Engine(time_scale=0)
    engine.add({"reply": reply})
    plain = engine.handle("POST", "/v1/messages", {}, body)
    saved = AnthropicStream.plain_writes
    try:
        AnthropicStream.plain_writes = lambda self: None  # type: ignore[method-assign,assignment,return-value]
        engine.reset()
        general = engine.handle("POST", "/v1/messages", {}, body)
    finally:
        AnthropicStream.plain_writes = saved  # type: ignore[method-assign]
    assert [(w.at, w.data) for w in plain.writes or ()] == [(w.at, w.data) for w in general.writes or ()]


@pytest.mark.parametrize(
    "reply",
    [
        {"content": TEXT},
        {"content": ""},
        {"chunks": ['é "q" \\ \n', "😀\u2028"], "model": 'm"odel'},
        {"refusal": "No."},
        {"content": TEXT, "finish_reason": "length", "usage": {"completion_tokens": 9, "prompt_tokens": 3}},
        {"content": TEXT, "timing": {"ttft_ms": 100, "chunk_ms": 10}},
    ],
)
@pytest.mark.parametrize("limits", [{}, {"stop_sequences": [" three"]}, {"max_tokens": 2}])
def test_the_compiled_body_is_the_general_paths(reply: dict[str, Any], limits: dict[str, Any]) -> None:
    """A text reply not streamed takes the body compiled at load (AnthropicDialect.fast): the same
    status, headers, body and delay as the general path (plan, then body)."""
    from mockllm import Engine
    from mockllm.dialects.anthropic import AnthropicDialect

    body = json.dumps({"model": "c", "max_tokens": 100, "messages": USER, **limits}).encode()
    engine = Engine(time_scale=1)
    engine.add({"reply": reply})
    fast = engine.handle("POST", "/v1/messages", {}, body)
    saved = AnthropicDialect.fast
    try:
        AnthropicDialect.fast = lambda self, *args: None  # type: ignore[method-assign,assignment,return-value]
        engine.reset()
        general = engine.handle("POST", "/v1/messages", {}, body)
    finally:
        AnthropicDialect.fast = saved  # type: ignore[method-assign]
    assert (fast.status, fast.headers, fast.body, fast.delay) == (
        general.status,
        general.headers,
        general.body,
        general.delay,
    )
