"""`mockllm record` with the real SDKs: their traffic recorded through the recorder from an upstream
mockllm, then replayed from the written file by a fresh server; each client reads the same content,
tool calls, usage and errors both times. The wire and the timing in detail: tests/test_record.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from mockllm import Engine
from mockllm.cli import main
from mockllm.recorder import BackgroundRecorder, Recorder
from mockllm.recording import Recording
from mockllm.server import BackgroundServer

QUICK = {"ttft_ms": 8, "chunk_ms": [4, 6]}  # timed, but short: the SDK tests stay fast
UPSTREAM = {
    "version": 1,
    "rules": [
        {
            "name": "weather",
            "match": {"tool": "get_weather"},
            "reply": {
                "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_abc"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 9},
                "timing": QUICK,
            },
        },
        {
            "name": "hello",
            "match": {"user": {"contains": "Hello"}},
            "reply": {
                "content": "Hi there, friend.",
                "usage": {"prompt_tokens": 11, "completion_tokens": 5},
                "timing": QUICK,
            },
        },
        {
            "name": "limited",  # a rate limit, then the answer: round after round, for each client's retry
            "match": {"user": {"contains": "limit"}},
            "times": 100,
            "replies": [
                {"error": {"status": 429, "headers": {"retry-after-ms": "5"}}},
                {"content": "ok after a retry"},
            ],
        },
        {
            "name": "bad",
            "match": {"user": {"contains": "bad"}},
            "reply": {"error": {"status": 400, "message": "bad request, as recorded", "code": "bad_thing"}},
        },
        {"name": "embed", "match": {"endpoint": "embeddings"}, "reply": {"content": "(vectors come from the input)"}},
        {
            "name": "cut",
            "match": {"user": {"contains": "cut"}},
            "reply": {
                "content": "one two three four",
                "fault": {"kind": "disconnect", "after_chunks": 2},
                "timing": QUICK,
            },
        },
    ],
}
CHAT_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
RESPONSES_TOOLS: Any = [
    {"type": "function", "name": "get_weather", "parameters": CHAT_TOOLS[0]["function"]["parameters"]}
]
ANTHROPIC_TOOLS: Any = [{"name": "get_weather", "input_schema": CHAT_TOOLS[0]["function"]["parameters"]}]
SECRET_KEY = "sk-secret-123"


@contextmanager
def recording(tmp_path: Path) -> Iterator[str]:
    """The root URL of a recorder in front of an upstream mockllm serving UPSTREAM (files in tmp_path)."""
    engine = Engine(time_scale=1)
    engine.add(UPSTREAM)
    with BackgroundServer(engine) as upstream:
        proxy = Recorder(upstream.url, Recording(tmp_path / "recording.yaml"), log=lambda _: None)
        with BackgroundRecorder(proxy) as running:
            yield running.url


def raised(call: Callable[[], Any]) -> Any:
    """What a call returned, or the error it raised as (type, status, body): comparable across runs."""
    try:
        return call()
    except openai.APIStatusError as exc:
        return ("APIStatusError", exc.status_code, exc.body)
    except anthropic.APIStatusError as exc:
        body = {k: v for k, v in exc.body.items() if k != "request_id"} if isinstance(exc.body, dict) else exc.body
        return ("APIStatusError", exc.status_code, body)  # the request id is made anew by each server
    except genai_errors.APIError as exc:
        return ("genai.APIError", exc.code, exc.status, exc.message)


def openai_traffic(root: str) -> dict[str, Any]:
    client = openai.OpenAI(base_url=f"{root}/v1", api_key=SECRET_KEY, max_retries=0)
    hello = [{"role": "user", "content": "Hello"}]
    out: dict[str, Any] = {}
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=hello)  # type: ignore[arg-type]
    out["chat"] = (whole.choices[0].message.content, whole.usage and whole.usage.model_dump())
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=hello,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    out["chat stream"] = [
        (c.choices[0].delta.content if c.choices else None, c.usage and c.usage.total_tokens) for c in stream
    ]
    called = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=CHAT_TOOLS, stream=True
    )
    out["chat tools"] = [
        [
            (t.index, t.id, t.function and t.function.name, t.function and t.function.arguments)
            for t in c.choices[0].delta.tool_calls or ()
        ]
        for c in called
        if c.choices
    ]
    retried = client.with_options(max_retries=1).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "limit"}]
    )
    out["chat retried"] = retried.choices[0].message.content
    out["chat error"] = raised(
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "bad"}])
    )
    texts: list[str | None] = []
    try:
        with client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "cut"}], stream=True
        ) as cut:
            texts.extend(c.choices[0].delta.content for c in cut)
    except Exception as exc:  # httpx.RemoteProtocolError (openai < 3) or openai.APIConnectionError (>= 3)
        texts.append(type(exc).__name__)
    out["chat cut"] = texts
    response = client.responses.create(model="gpt-4o-mini", input="Hello")
    out["responses"] = (response.output_text, response.usage and response.usage.model_dump())
    with client.responses.stream(model="gpt-4o-mini", input="Weather in Oslo?", tools=RESPONSES_TOOLS) as events:
        deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
        final = events.get_final_response()
    calls = [(i.call_id, i.name, i.arguments) for i in final.output if i.type == "function_call"]
    out["responses tools"] = (deltas, calls, final.usage and final.usage.output_tokens)
    # openai asks for base64 and decodes it; the recording keeps the floats
    embedded = client.embeddings.create(model="text-embedding-3-small", input=["a cat", "a dog"], dimensions=8)
    out["embeddings"] = ([item.embedding for item in embedded.data], embedded.usage.prompt_tokens)
    return out


def anthropic_traffic(root: str) -> dict[str, Any]:
    client = anthropic.Anthropic(base_url=root, api_key="sk-ant-secret-456", max_retries=0)
    hello: Any = [{"role": "user", "content": "Hello"}]
    out: dict[str, Any] = {}
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=hello)
    out["create"] = ([b.model_dump() for b in message.content], message.stop_reason, message.usage.output_tokens)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=hello) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    out["stream"] = (pieces, final.usage.input_tokens, final.usage.output_tokens)
    tools = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=ANTHROPIC_TOOLS,
    )
    out["tools"] = ([b.model_dump() for b in tools.content], tools.stop_reason)
    retried = client.with_options(max_retries=1).messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "limit"}]
    )
    out["retried"] = retried.content[0].model_dump()
    out["error"] = raised(
        lambda: client.messages.create(
            model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "bad"}]
        )
    )
    return out


def gemini_traffic(root: str) -> dict[str, Any]:
    client = genai.Client(api_key="AIza-goog-secret", http_options=types.HttpOptions(base_url=root))
    out: dict[str, Any] = {}
    answer = client.models.generate_content(model="gemini-2.5-flash", contents="Hello")
    out["whole"] = (answer.text, answer.usage_metadata and answer.usage_metadata.total_token_count)
    out["stream"] = [c.text for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hello")]
    weather = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather", parameters_json_schema=CHAT_TOOLS[0]["function"]["parameters"]
            )
        ]
    )
    called = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="Weather in Oslo?",
        config=types.GenerateContentConfig(tools=[weather], automatic_function_calling={"disable": True}),
    )
    out["tools"] = [(c.name, c.args) for c in called.function_calls or ()]
    out["error"] = raised(lambda: client.models.generate_content(model="gemini-2.5-flash", contents="bad"))
    return out


TRAFFIC = [openai_traffic, anthropic_traffic, gemini_traffic]


@pytest.mark.parametrize("traffic", TRAFFIC, ids=lambda t: t.__name__.split("_")[0])
def test_the_clients_read_the_recording_as_they_read_the_upstream(
    tmp_path: Path, traffic: Callable[[str], dict[str, Any]]
) -> None:
    with recording(tmp_path) as root:
        recorded = traffic(root)
    with BackgroundServer(Engine(tmp_path, time_scale=1)) as replay:
        replayed = traffic(replay.url)
    assert replayed == recorded
    assert main(["validate", str(tmp_path)]) == 0
    text = (tmp_path / "recording.yaml").read_text()
    assert SECRET_KEY not in text and "sk-ant-secret-456" not in text and "AIza-goog-secret" not in text
    rules = yaml.safe_load(text)["rules"]
    assert {rule["match"]["endpoint"] for rule in rules} <= {"chat", "responses", "anthropic", "gemini", "embeddings"}


def test_what_the_openai_clients_read(tmp_path: Path) -> None:
    """What the recording says, seen by openai: the text, the calls and the usage of the upstream."""
    with recording(tmp_path) as root:
        read = openai_traffic(root)
    assert read["chat"][0] == "Hi there, friend." and read["chat"][1]["total_tokens"] == 16
    assert [text for text, _ in read["chat stream"]] == ["", "Hi", " there", ",", " friend", ".", None, None]
    assert read["chat stream"][-1][1] == 16
    calls = [part for part in read["chat tools"] if part]
    assert calls[0] == [(0, "call_abc", "get_weather", "")]
    assert "".join(part[0][3] for part in calls[1:]) == '{"city":"Oslo"}'
    assert read["chat retried"] == "ok after a retry"
    assert read["chat error"][:2] == ("APIStatusError", 400)
    assert read["chat error"][2]["message"] == "bad request, as recorded"
    assert read["chat cut"][:3] == ["", "one", " two"] and read["chat cut"][3] in (
        "RemoteProtocolError",
        "APIConnectionError",
    )
    assert read["responses tools"][1] == [("call_abc", "get_weather", '{"city":"Oslo"}')]
    assert len(read["embeddings"][0]) == 2 and len(read["embeddings"][0][0]) == 8
    rules = {rule["name"]: rule for rule in yaml.safe_load((tmp_path / "recording.yaml").read_text())["rules"]}
    limited = rules["chat gpt-4o-mini: limit"]["replies"]
    assert limited[0]["error"]["status"] == 429
    assert limited[0]["error"]["headers"] == {"retry-after": "1", "retry-after-ms": "5"}  # the upstream's, as sent


def test_litellm_reads_the_recording_as_it_read_the_upstream(tmp_path: Path) -> None:
    litellm = pytest.importorskip("litellm")

    def traffic(root: str) -> Any:
        base = {"api_base": f"{root}/v1", "api_key": SECRET_KEY}
        hello = [{"role": "user", "content": "Hello"}]
        whole = litellm.completion(model="openai/gpt-4o-mini", messages=hello, **base)
        stream = litellm.completion(model="openai/gpt-4o-mini", messages=hello, stream=True, **base)
        pieces = [c.choices[0].delta.content for c in stream if c.choices]
        return whole.choices[0].message.content, whole.usage.total_tokens, pieces

    with recording(tmp_path) as root:
        recorded = traffic(root)
    with BackgroundServer(Engine(tmp_path, time_scale=1)) as replay:
        assert traffic(replay.url) == recorded
    assert recorded[0] == "Hi there, friend." and "".join(p or "" for p in recorded[2]) == "Hi there, friend."
    assert SECRET_KEY not in (tmp_path / "recording.yaml").read_text()
