"""langchain-openai's ChatOpenAI against the real server: the Responses API (use_responses_api=True)
and, for contrast, Chat Completions. Paths in comments are in the installed `langchain_openai`
package (1.7); `base.py` is langchain_openai/chat_models/base.py.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import netguard
import pytest

# LangSmith tracing would post runs to api.smith.langchain.com; it is read from the environment on
# every call (langsmith/utils.py tracing_is_enabled), so it is switched off before anything runs.
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LANGCHAIN_TRACING_V2"] = "false"

pytest.importorskip("langchain_openai", reason="langchain-openai is not installed in this environment")

import openai
import tiktoken.load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection or name lookup beyond loopback, during any test here (tests/netguard.py)."""
    refused = netguard.guard(monkeypatch)
    yield
    assert refused == []


@pytest.fixture(autouse=True)
def no_tiktoken_download(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tiktoken fetches its encodings from openaipublic.blob.core.windows.net on first use
    (tiktoken/load.py read_file, behind read_file_cached). ChatOpenAI only reaches it from
    get_token_ids / get_num_tokens_from_messages (base.py _get_encoding_model), which no path here
    takes: make sure of it, so a new langchain that starts counting tokens fails loudly here
    instead of going to the internet."""

    def refuse(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to download {blobpath}")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    yield


def chat(served: Any, *, responses: bool = True, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=served.base_url,
        api_key="test",  # type: ignore[arg-type]
        model=MODEL,
        use_responses_api=responses,
        max_retries=0,
        **kwargs,
    )


def only_entry(served: Any, endpoint: str) -> Any:
    (entry,) = list(served.journal)
    assert entry.endpoint == endpoint
    return entry


# -- Responses API -----------------------------------------------------------------------------


def test_invoke_text(serve) -> None:
    served = serve(
        {
            "name": "hello",
            "match": {"endpoint": "responses", "user": {"equals": "Hi"}},
            "reply": {"content": "Hello there, friend!", "usage": {"prompt_tokens": 12, "completion_tokens": 5}},
        }
    )
    message = chat(served).invoke("Hi")
    assert isinstance(message, AIMessage)
    assert message.text == "Hello there, friend!"
    # output_version defaults to "responses/v1" (base.py _construct_lc_result_from_responses_api):
    # content is the list of output blocks, each with its item id
    (block,) = message.content
    assert isinstance(block, dict)
    assert (block["type"], block["text"], block["annotations"]) == ("text", "Hello there, friend!", [])
    assert block["id"].startswith("msg_")
    assert message.id is not None and message.id.startswith("resp_")
    assert message.response_metadata["status"] == "completed"
    assert message.response_metadata["model_name"] == MODEL
    assert message.usage_metadata is not None
    usage = message.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (12, 5, 17)
    assert message.tool_calls == []
    entry = only_entry(served, "responses")
    assert (entry.rule, entry.status, entry.stream) == ("hello", 200, False)
    assert entry.json["model"] == MODEL
    assert entry.json["stream"] is False  # base.py _default_params
    assert entry.json["input"][-1]["role"] == "user"


def test_invoke_with_system_message(serve) -> None:
    served = serve(
        {
            "match": {"endpoint": "responses", "system": {"equals": "Be brief."}, "user": {"contains": "weather"}},
            "reply": {"content": "Sunny."},
        }
    )
    message = chat(served).invoke([("system", "Be brief."), ("human", "How is the weather?")])
    assert message.text == "Sunny."
    roles = [item.get("role") for item in only_entry(served, "responses").json["input"]]
    assert roles == ["system", "user"]  # langchain sends the system message as an input item


def test_stream_chunks_joined(serve) -> None:
    served = serve(
        {"reply": {"content": "The quick brown fox.", "usage": {"prompt_tokens": 9, "completion_tokens": 5}}}
    )
    chunks = list(chat(served).stream("Hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    texts = [c.text for c in chunks if c.text]
    assert texts == ["The", " quick", " brown", " fox", "."]  # one chunk per output_text.delta
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.text == "The quick brown fox."
    # the usage comes with the response.completed chunk (base.py _convert_responses_chunk_to_generation_chunk)
    assert full.usage_metadata is not None
    assert (full.usage_metadata["input_tokens"], full.usage_metadata["output_tokens"]) == (9, 5)
    assert chunks[-1].chunk_position == "last"
    assert full.id is not None and full.id.startswith("resp_")
    entry = only_entry(served, "responses")
    assert entry.stream is True and entry.json["stream"] is True


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"Sunny in {city}"


def weather_rule(**extra: Any) -> dict[str, Any]:
    return {
        "match": {"endpoint": "responses"},
        "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_weather_1"}]},
        **extra,
    }


def test_bind_tools_tool_call(serve) -> None:
    served = serve(weather_rule())
    message = chat(served).bind_tools([get_weather]).invoke("What's the weather in Paris?")
    assert message.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_weather_1", "type": "tool_call"}
    ]
    assert message.invalid_tool_calls == []
    assert message.text == ""
    # the function_call item stays in the content (base.py: output.model_dump(exclude_none=True))
    (block,) = message.content
    assert isinstance(block, dict)
    assert (block["type"], block["call_id"], block["name"]) == ("function_call", "call_weather_1", "get_weather")
    assert block["id"].startswith("fc_")
    # the tool offered as the Responses API wants it: flat, no nested "function" (base.py
    # _construct_responses_api_payload)
    (offered,) = only_entry(served, "responses").json["tools"]
    assert (offered["type"], offered["name"], offered["description"]) == (
        "function",
        "get_weather",
        "Get the weather for a city.",
    )
    assert offered["parameters"]["properties"] == {"city": {"type": "string"}}
    assert "function" not in offered


def test_bind_tools_streamed_tool_call(serve) -> None:
    served = serve(weather_rule())
    chunks = list(chat(served).bind_tools([get_weather]).stream("What's the weather in Paris?"))
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert isinstance(full, AIMessageChunk)
    # arguments arrive in fragments (response.function_call_arguments.delta), joined by the chunks' +
    assert len([c for c in chunks if c.tool_call_chunks]) > 1
    assert full.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_weather_1", "type": "tool_call"}
    ]


def test_tool_result_goes_back_with_its_call_id(serve) -> None:
    served = serve(
        {
            "match": {"endpoint": "responses"},
            "replies": [
                {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
                {"content": "It is sunny in Paris."},
            ],
        }
    )
    model = chat(served).bind_tools([get_weather])
    history: list[Any] = [HumanMessage("What's the weather in Paris?")]
    first = model.invoke(history)
    (call,) = first.tool_calls
    assert call["id"] is not None and call["id"].startswith("call_")  # derived by the server
    history += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    second = model.invoke(history)
    assert second.text == "It is sunny in Paris."
    _, entry = list(served.journal)
    items = entry.json["input"]
    calls = [i for i in items if i.get("type") == "function_call"]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    assert len(calls) == 1 and calls[0]["call_id"] == call["id"] and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Paris"}
    assert outputs == [{"type": "function_call_output", "call_id": call["id"], "output": "Sunny in Paris"}]


def test_rate_limit_raises_openai_rate_limit_error(serve) -> None:
    served = serve({"match": {"endpoint": "responses"}, "reply": {"error": {"status": 429}}})
    with pytest.raises(openai.RateLimitError) as caught:
        # base.py _handle_openai_api_error re-raises it as OpenAIRateLimitError, a subclass
        chat(served).invoke("Hi")
    assert caught.value.status_code == 429
    assert type(caught.value).__name__ == "OpenAIRateLimitError"
    assert only_entry(served, "responses").status == 429


# -- Chat Completions, for contrast ------------------------------------------------------------


def test_chat_completions_for_contrast(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "via-chat", "match": {"endpoint": "chat"}, "reply": {"content": "From Chat Completions."}},
                {"name": "via-responses", "match": {"endpoint": "responses"}, "reply": {"content": "From Responses."}},
            ]
        }
    )
    old = chat(served, responses=False).invoke("Hi")
    new = chat(served).invoke("Hi")
    # Chat Completions gives a plain string content; Responses, a list of blocks
    assert old.content == "From Chat Completions."
    assert new.text == "From Responses." and isinstance(new.content, list)
    assert old.response_metadata["id"].startswith("chatcmpl-")  # the message id is langchain's run id
    first, second = list(served.journal)
    assert (first.endpoint, first.rule) == ("chat", "via-chat")
    assert (second.endpoint, second.rule) == ("responses", "via-responses")
    assert first.json["messages"] == [{"role": "user", "content": "Hi"}]
    assert "input" not in first.json and "messages" not in second.json


# -- conversations -----------------------------------------------------------------------------

NAME_RULES: dict[str, Any] = {
    "rules": [
        {"name": "intro", "match": {"user": {"contains": "name is"}}, "reply": {"content": "Nice to meet you, Ada."}},
        {"name": "recall", "match": {"user": {"contains": "my name?"}}, "reply": {"content": "Your name is Ada."}},
    ]
}


def test_second_turn_replays_the_answer(serve) -> None:
    served = serve(NAME_RULES)
    model = chat(served)
    history: list[Any] = [HumanMessage("My name is Ada.")]
    history.append(model.invoke(history))
    history.append(HumanMessage("What is my name?"))
    assert model.invoke(history).text == "Your name is Ada."
    first, second = list(served.journal)
    assert (first.rule, second.rule) == ("intro", "recall")
    assert "previous_response_id" not in second.json
    # base.py _construct_responses_api_input: the AIMessage's text block goes back as an assistant
    # message item (with its msg_ id, the request's store being unset)
    user, said, again = second.json["input"]
    assert user["role"] == "user" and again["role"] == "user"
    assert said["role"] == "assistant" and said.get("type", "message") == "message"
    assert [p["text"] for p in said["content"]] == ["Nice to meet you, Ada."]
    assert [p["type"] for p in said["content"]] == ["output_text"]


def test_use_previous_response_id_sends_only_the_new_turn(serve) -> None:
    served = serve(NAME_RULES)
    model = chat(served, use_previous_response_id=True)
    history: list[Any] = [HumanMessage("My name is Ada.")]
    answer = model.invoke(history)
    history += [answer, HumanMessage("What is my name?")]
    assert model.invoke(history).text == "Your name is Ada."
    first, second = list(served.journal)
    # base.py _get_last_messages: everything after the last AIMessage with a resp_ id
    assert second.json["previous_response_id"] == answer.id == answer.response_metadata["id"]
    assert [item["role"] for item in second.json["input"]] == ["user"]
    assert second.rule == "recall"
    assert "previous_response_id" not in first.json


def test_async_stream(serve) -> None:
    served = serve({"reply": {"chunks": ["As", "ync", " too."]}})

    async def main() -> list[str]:
        return [c.text async for c in chat(served).astream("Hi") if c.text]

    assert asyncio.run(main()) == ["As", "ync", " too."]


class Weather(BaseModel):
    city: str
    temperature_c: int


def test_with_structured_output(serve) -> None:
    served = serve({"reply": {"content": '{"city":"Paris","temperature_c":21}'}})
    parsed = chat(served).with_structured_output(Weather).invoke("Paris?")
    assert parsed == Weather(city="Paris", temperature_c=21)
    # the default method is json_schema: Responses' text.format (base.py _construct_responses_api_payload)
    fmt = only_entry(served, "responses").json["text"]["format"]
    assert (fmt["type"], fmt["name"], fmt["strict"]) == ("json_schema", "Weather", True)


# -- mid-stream faults: what ChatOpenAI.stream raises for each (openai 2.x underneath) ----------

TEXT = "One two three four."

# kind -> the exception (None: the stream ends quietly). base.py _stream_responses only turns
# openai.APIError subclasses into its own classes; transport and JSON errors pass through as is.
STREAM_FAULTS: dict[str, type[BaseException] | None] = {
    "disconnect": httpx.RemoteProtocolError,
    "stall": httpx.ReadTimeout,  # the client's timeout (0.5 s) before stall_ms
    "error_event": openai.APIError,  # openai/_streaming.py: `event: error` with a nested error
    "malformed": json.JSONDecodeError,
    "no_done": None,  # no response.completed: all the text, but no usage
    "no_finish": None,
}


@pytest.mark.parametrize("kind", sorted(STREAM_FAULTS))
def test_stream_fault(serve, kind: str) -> None:
    fault: dict[str, Any] = {"kind": kind, "after_chunks": 2}
    if kind == "stall":
        fault["stall_ms"] = 1500
    served = serve({"reply": {"content": TEXT, "fault": fault}})
    texts: list[str] = []
    chunks: list[Any] = []

    def consume() -> None:
        for c in chat(served, timeout=0.5).stream("Hi"):
            chunks.append(c)
            if c.text:
                texts.append(c.text)

    expected = STREAM_FAULTS[kind]
    if expected is None:
        consume()
        assert "".join(texts) == TEXT
        full = chunks[0]
        for c in chunks[1:]:
            full = full + c
        # the usage only comes with response.completed
        assert (full.usage_metadata is None) == (kind == "no_done")
    else:
        with pytest.raises(expected) as caught:
            consume()
        if kind == "error_event":
            assert not isinstance(caught.value, openai.APIStatusError)
        assert texts == ["One", " two"]
    assert len(served.journal) == 1
