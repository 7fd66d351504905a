"""The openai SDK (sync, async, streamed, the .stream() helper) against the real server on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from helpers import SCENARIOS

ONE_PLUS_ONE = "What's 1+1? Answer in one word."
COUNT_TO_100 = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."
HUNDRED = ", ".join(str(n) for n in range(1, 101))


def client(served: Any, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", **kwargs)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- the README / notebook examples ----------------------------------------------------------


def test_notebook_one_plus_one_stream(serve) -> None:
    served = serve(SCENARIOS)
    c = client(served)
    with c.chat.completions.create(model="gpt-4o-mini", messages=ask(ONE_PLUS_ONE), temperature=0, stream=True) as s:
        chunks = list(s)
    assert [ch.choices[0].delta.content for ch in chunks] == ["", "Two", ".", None]
    assert [ch.choices[0].finish_reason for ch in chunks] == [None, None, None, "stop"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.choices[0].delta.role is None for ch in chunks[1:])
    assert all(ch.usage is None and "usage" not in ch.to_dict() for ch in chunks)


def test_notebook_one_plus_one_usage(serve) -> None:
    served = serve(SCENARIOS)
    c = client(served)
    with c.chat.completions.create(
        model="gpt-4o-mini",
        messages=ask(ONE_PLUS_ONE),
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as s:
        chunks = list(s)
    assert [ch.choices[0].delta.content for ch in chunks[:-1]] == ["", "Two", ".", None]
    assert all(ch.usage is None and "usage" in ch.to_dict() for ch in chunks[:-1])  # "usage": null
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (18, 2, 20)
    # the non-streamed answer counts the same
    done = c.chat.completions.create(model="gpt-4o-mini", messages=ask(ONE_PLUS_ONE))
    assert done.choices[0].message.content == "Two."
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (18, 2)


def test_notebook_count_to_100(serve) -> None:
    served = serve(SCENARIOS)
    c = client(served)
    with c.chat.completions.create(model="gpt-4o-mini", messages=ask(COUNT_TO_100), temperature=0, stream=True) as s:
        chunks = list(s)
    content = [ch.choices[0].delta.content for ch in chunks[1:-1]]
    assert len(content) == 298
    assert content[:6] == ["1", ",", " ", "2", ",", " "]
    assert "".join(content) == HUNDRED
    assert chunks[-1].choices[0].finish_reason == "stop"

    done = c.chat.completions.create(model="gpt-4o-mini", messages=ask(COUNT_TO_100), temperature=0)
    assert done.choices[0].message.content == HUNDRED
    assert done.usage is not None
    assert done.usage.completion_tokens == 298
    assert served.journal.last.rule == "count-to-100"


# -- non-streamed ----------------------------------------------------------------------------


def test_sync_non_stream(serve) -> None:
    served = serve({"name": "hello", "reply": {"content": "Hello there, friend!"}})
    done = client(served).chat.completions.create(model="gpt-4o", messages=ask("Hi"))
    assert done.object == "chat.completion"
    assert done.id.startswith("chatcmpl-") and len(done.id) > len("chatcmpl-") + 10
    assert done.model == "gpt-4o"
    assert done.system_fingerprint is not None and done.system_fingerprint.startswith("fp_")
    assert isinstance(done.created, int) and done.created > 1_600_000_000
    (choice,) = done.choices
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there, friend!"
    assert choice.message.tool_calls is None
    assert done.usage is not None
    # 3 per message + 3 priming + "Hi" (1); "Hello", " there", ",", " friend", "!"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (7, 5, 12)
    entry = served.journal.last
    assert (entry.rule, entry.call_index, entry.status, entry.stream) == ("hello", 0, 200, False)
    assert entry.json["messages"] == [{"role": "user", "content": "Hi"}]


def test_with_raw_response_headers(serve) -> None:
    served = serve({"reply": {"content": "ok"}})
    raw = client(served).chat.completions.with_raw_response.create(model="gpt-4o", messages=ask("Hi"))
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["openai-version"] == "2020-10-01"
    assert raw.parse().choices[0].message.content == "ok"


# -- streamed --------------------------------------------------------------------------------


def test_sync_stream_shape(serve) -> None:
    served = serve({"reply": {"content": "The quick brown fox."}})
    with client(served).chat.completions.create(model="gpt-4o", messages=ask("Hi"), stream=True) as s:
        chunks = list(s)
    first, *middle, finish = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert [ch.choices[0].delta.content for ch in middle] == ["The", " quick", " brown", " fox", "."]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.to_dict() == {}  # an empty delta
    assert len({(ch.id, ch.created, ch.model, ch.system_fingerprint) for ch in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert all("usage" not in ch.to_dict() for ch in chunks)
    assert served.journal.last.stream is True


def test_stream_include_usage_counts_like_non_stream(serve) -> None:
    served = serve({"reply": {"content": "Streams and bodies agree on usage, always."}})
    c = client(served)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say something"}]
    with c.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
    ) as s:
        chunks = list(s)
    assert all(ch.usage is None for ch in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    done = c.chat.completions.create(model="gpt-4o", messages=messages)
    assert done.usage is not None
    assert chunks[-1].usage.to_dict() == done.usage.to_dict()
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks[:-1])
    assert text == done.choices[0].message.content
    assert done.usage.completion_tokens == len(chunks) - 3  # role chunk, finish chunk, usage chunk


def test_async_client_non_stream_and_stream(serve) -> None:
    served = serve({"reply": {"content": "Async works too."}})

    async def main() -> tuple[Any, list[Any]]:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test") as c:
            done = await c.chat.completions.create(model="gpt-4o-mini", messages=ask("Hi"))
            stream = await c.chat.completions.create(
                model="gpt-4o-mini", messages=ask("Hi"), stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                chunks = [ch async for ch in stream]
            return done, chunks

    done, chunks = asyncio.run(main())
    assert done.choices[0].message.content == "Async works too."
    assert [ch.choices[0].delta.content for ch in chunks[:-1]] == ["", "Async", " works", " too", ".", None]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert [e.call_index for e in served.journal] == [0, 1]


def test_async_parallel_requests(serve) -> None:
    served = serve({"reply": {"content": "parallel"}})

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test") as c:
            answers = await asyncio.gather(
                *(c.chat.completions.create(model="gpt-4o", messages=ask(f"q{i}")) for i in range(8))
            )
        return [a.id for a in answers]

    ids = asyncio.run(main())
    assert len(set(ids)) == 8  # each call of the rule has its own derived id
    assert sorted(e.call_index for e in served.journal) == list(range(8))


def test_stream_helper_events_and_final_completion(serve) -> None:
    served = serve({"reply": {"content": "Helpers see every delta."}})
    with client(served).chat.completions.stream(model="gpt-4o", messages=ask("Hi")) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    kinds = [e.type for e in events]
    assert kinds.count("content.done") == 1
    deltas = [e.delta for e in events if e.type == "content.delta"]
    assert "".join(deltas) == "Helpers see every delta."
    assert deltas[-4:] == [" see", " every", " delta", "."]
    done = next(e for e in events if e.type == "content.done")
    assert done.content == "Helpers see every delta."
    assert final.choices[0].message.content == "Helpers see every delta."
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.role == "assistant"
    assert final.id.startswith("chatcmpl-")


def test_stream_helper_with_tool_calls(serve) -> None:
    served = serve({"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}})
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    with client(served).chat.completions.stream(model="gpt-4o", messages=ask("Weather?"), tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    arg_deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert len(arg_deltas) > 1
    (done,) = [e for e in events if e.type == "tool_calls.function.arguments.done"]
    assert (done.name, done.index, json.loads(done.arguments)) == ("get_weather", 0, {"city": "Paris"})
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    assert message.tool_calls[0].function.name == "get_weather"
    assert message.tool_calls[0].id.startswith("call_")


# -- tool calls ------------------------------------------------------------------------------

TOOL_RULE = {
    "name": "tools",
    "reply": {
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
            {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}', "id": "call_fixed123"},
        ]
    },
}


def test_tool_calls_non_stream(serve) -> None:
    served = serve(TOOL_RULE)
    done = client(served).chat.completions.create(model="gpt-4o", messages=ask("Weather and time?"))
    (choice,) = done.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert calls[0].id.startswith("call_") and len(calls[0].id) == len("call_") + 24
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert calls[0].function.arguments == '{"city":"Paris","unit":"celsius"}'  # a mapping: compact JSON
    assert calls[1].id == "call_fixed123"
    assert calls[1].function.arguments == '{"tz": "Europe/Paris"}'  # a string: verbatim


def test_tool_calls_stream(serve) -> None:
    served = serve(TOOL_RULE)
    with client(served).chat.completions.create(model="gpt-4o", messages=ask("Weather?"), stream=True) as s:
        chunks = list(s)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None  # role alone first, as real tool streams
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    deltas = [d for ch in chunks[1:-1] for d in ch.choices[0].delta.tool_calls or ()]
    assert len(deltas) == len(chunks) - 2  # every middle chunk is a tool-call delta
    indexes = [d.index for d in deltas]
    assert indexes == sorted(indexes) and set(indexes) == {0, 1}  # parallel calls one after another
    by_index: dict[int, list[Any]] = {0: [], 1: []}
    for d in deltas:
        by_index[d.index].append(d)
    for index, parts in by_index.items():
        head, *rest = parts
        assert head.id is not None and head.type == "function" and head.function.name is not None
        assert head.function.arguments == ""
        assert len(rest) > 1, f"index {index}: arguments should come in several fragments"
        assert all(p.id is None and p.type is None and p.function.name is None for p in rest)
    args0 = "".join(p.function.arguments for p in by_index[0])
    args1 = "".join(p.function.arguments for p in by_index[1])
    assert json.loads(args0) == {"city": "Paris", "unit": "celsius"}
    assert args1 == '{"tz": "Europe/Paris"}'
    assert by_index[1][0].id == "call_fixed123"
    assert by_index[0][0].function.name == "get_weather" and by_index[1][0].function.name == "get_time"
    # the streamed id of the derived call equals the non-streamed one for the same call index
    served.engine.reset()
    done = client(served).chat.completions.create(model="gpt-4o", messages=ask("Weather?"))
    assert done.choices[0].message.tool_calls is not None
    assert done.choices[0].message.tool_calls[0].id == by_index[0][0].id


def test_content_and_tool_calls_together(serve) -> None:
    served = serve({"reply": {"content": "Let me check.", "tool_calls": [{"name": "lookup", "arguments": {}}]}})
    c = client(served)
    done = c.chat.completions.create(model="gpt-4o", messages=ask("?"))
    assert done.choices[0].message.content == "Let me check."
    assert done.choices[0].message.tool_calls is not None
    assert done.choices[0].message.tool_calls[0].function.arguments == "{}"
    assert done.choices[0].finish_reason == "tool_calls"
    with c.chat.completions.create(model="gpt-4o", messages=ask("?"), stream=True) as s:
        chunks = list(s)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "Let me check."
    calls = [d for ch in chunks for d in ch.choices[0].delta.tool_calls or ()]
    assert calls[0].function.name == "lookup"
    assert "".join(d.function.arguments or "" for d in calls) == "{}"


# -- reply bodies: chunks, generate, finish_reason, usage, model ------------------------------


def test_explicit_chunks_with_empty_delta(serve) -> None:
    served = serve({"reply": {"chunks": ["", "Hel", "", "lo", " 世界"]}})
    c = client(served)
    with c.chat.completions.create(model="gpt-4o", messages=ask("Hi"), stream=True) as s:
        contents = [ch.choices[0].delta.content for ch in s]
    assert contents == ["", "", "Hel", "", "lo", " 世界", None]
    done = c.chat.completions.create(model="gpt-4o", messages=ask("Hi"))
    assert done.choices[0].message.content == "Hello 世界"


def test_generate_text(serve) -> None:
    served = serve({"reply": {"generate": {"sentences": 2}}})
    c = client(served)
    first = c.chat.completions.create(model="gpt-4o", messages=ask("Hi"))
    text = first.choices[0].message.content
    assert text and text.count(".") >= 2 and text[0].isupper()
    assert first.usage is not None and first.usage.completion_tokens > 4
    second = c.chat.completions.create(model="gpt-4o", messages=ask("Hi"))
    assert second.choices[0].message.content != text  # the next call generates anew
    served.engine.reset()
    with c.chat.completions.create(
        model="gpt-4o", messages=ask("Hi"), stream=True, stream_options={"include_usage": True}
    ) as s:
        chunks = list(s)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text  # call 0 again
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == first.usage.completion_tokens


@pytest.mark.parametrize("kind", ["words", "paragraphs"])
def test_generate_kinds(serve, kind: str) -> None:
    served = serve({"reply": {"generate": {kind: 2}}})
    text = client(served).chat.completions.create(model="gpt-4o", messages=ask("Hi")).choices[0].message.content
    assert text
    if kind == "words":
        assert len(text.split()) == 2 and text.endswith(".")
    else:
        assert text.count("\n\n") == 1


def test_finish_reason_length(serve) -> None:
    served = serve({"reply": {"content": "cut sho", "finish_reason": "length"}})
    c = client(served)
    assert c.chat.completions.create(model="gpt-4o", messages=ask("Hi")).choices[0].finish_reason == "length"
    with c.chat.completions.create(model="gpt-4o", messages=ask("Hi"), stream=True) as s:
        assert [ch.choices[0].finish_reason for ch in s][-1] == "length"


def test_usage_override(serve) -> None:
    served = serve({"reply": {"content": "Two.", "usage": {"prompt_tokens": 1000, "completion_tokens": 7}}})
    c = client(served)
    done = c.chat.completions.create(model="gpt-4o", messages=ask("Hi"))
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (1000, 7, 1007)
    with c.chat.completions.create(
        model="gpt-4o", messages=ask("Hi"), stream=True, stream_options={"include_usage": True}
    ) as s:
        usage = list(s)[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (1000, 7)


def test_usage_partial_override_counts_the_rest(serve) -> None:
    served = serve({"reply": {"content": "Two.", "usage": {"completion_tokens": 9}}})
    done = client(served).chat.completions.create(model="gpt-4o", messages=ask(ONE_PLUS_ONE))
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (18, 9)


def test_model_override_in_reply(serve) -> None:
    served = serve({"reply": {"content": "ok", "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_abc"}})
    c = client(served)
    done = c.chat.completions.create(model="gpt-4o", messages=ask("Hi"))
    assert (done.model, done.system_fingerprint) == ("gpt-4o-2024-08-06", "fp_abc")
    with c.chat.completions.create(model="gpt-4o", messages=ask("Hi"), stream=True) as s:
        assert {(ch.model, ch.system_fingerprint) for ch in s} == {("gpt-4o-2024-08-06", "fp_abc")}


def test_non_ascii_content_roundtrip(serve) -> None:
    text = "Ça va? 日本語のテキスト 👋🏽 and e\u0301 combining"
    served = serve({"reply": {"content": text}})
    c = client(served)
    assert c.chat.completions.create(model="gpt-4o", messages=ask("Hi")).choices[0].message.content == text
    with c.chat.completions.create(model="gpt-4o", messages=ask("Hi"), stream=True) as s:
        assert "".join(ch.choices[0].delta.content or "" for ch in s) == text


# -- rules: replies, times, matching ---------------------------------------------------------


def test_replies_sequence_then_next_rule(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "seq", "replies": [{"content": "first"}, {"content": "second"}, {"chunks": ["th", "ird"]}]},
                {"name": "after", "reply": {"content": "fallback"}},
            ]
        }
    )
    c = client(served)
    got = [c.chat.completions.create(model="gpt-4o", messages=ask("x")).choices[0].message.content for _ in range(5)]
    assert got == ["first", "second", "third", "fallback", "fallback"]
    assert [(e.rule, e.call_index) for e in served.journal] == [
        ("seq", 0),
        ("seq", 1),
        ("seq", 2),
        ("after", 0),
        ("after", 1),
    ]


def test_replies_sequence_streamed_then_no_match(serve) -> None:
    served = serve({"name": "seq", "replies": [{"content": "one"}, {"content": "two"}]})
    c = client(served)
    for expected in ("one", "two"):
        with c.chat.completions.create(model="gpt-4o", messages=ask("x"), stream=True) as s:
            assert "".join(ch.choices[0].delta.content or "" for ch in s) == expected
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="gpt-4o", messages=ask("x"), stream=True)
    assert info.value.status_code == 418
    assert "replies: already served 2 of 2" in info.value.body["message"]


def test_times_limit(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "twice", "times": 2, "reply": {"content": "limited"}},
                {"name": "rest", "reply": {"content": "unlimited"}},
            ]
        }
    )
    c = client(served)
    got = [c.chat.completions.create(model="gpt-4o", messages=ask("x")).choices[0].message.content for _ in range(4)]
    assert got == ["limited", "limited", "unlimited", "unlimited"]
    served.engine.reset()  # sequences and limits start over
    assert c.chat.completions.create(model="gpt-4o", messages=ask("x")).choices[0].message.content == "limited"


def test_match_model_glob_and_stream(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "mini-stream", "match": {"model": "gpt-4o-mini*", "stream": True}, "reply": {"content": "A"}},
                {"name": "4o", "match": {"model": "gpt-4o*"}, "reply": {"content": "B"}},
                {"name": "other", "reply": {"content": "C"}},
            ]
        }
    )
    c = client(served)

    def text(model: str, stream: bool) -> str:
        if stream:
            with c.chat.completions.create(model=model, messages=ask("x"), stream=True) as s:
                return "".join(ch.choices[0].delta.content or "" for ch in s)
        return c.chat.completions.create(model=model, messages=ask("x")).choices[0].message.content or ""

    assert text("gpt-4o-mini-2024-07-18", True) == "A"
    assert text("gpt-4o-mini", False) == "B"
    assert text("gpt-4o", True) == "B"
    assert text("GPT-4O", False) == "C"  # globs are case-sensitive
    assert text("o3", True) == "C"


def test_match_user_and_system(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "eq", "match": {"user": {"equals": "ping"}}, "reply": {"content": "pong"}},
                {"name": "re", "match": {"user": {"regex": r"^\d+ \+ \d+$"}}, "reply": {"content": "sum"}},
                {"name": "pirate", "match": {"system": {"contains": "pirate"}}, "reply": {"content": "Arr"}},
                {"name": "any", "reply": {"content": "plain"}},
            ]
        }
    )
    c = client(served)

    def text(messages: list[Any]) -> str:
        return c.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content or ""

    assert text(ask("ping")) == "pong"
    assert text(ask("ping!")) == "plain"
    assert text(ask("12 + 30")) == "sum"
    assert text([{"role": "system", "content": "You are a pirate."}, *ask("hello")]) == "Arr"
    assert text([{"role": "developer", "content": "Talk like a pirate"}, *ask("hello")]) == "Arr"
    # the last user message counts, earlier ones do not
    assert text([*ask("ping"), {"role": "assistant", "content": "pong"}, *ask("again")]) == "plain"
    # list content: the text parts are joined
    assert text([{"role": "user", "content": [{"type": "text", "text": "pi"}, {"type": "text", "text": "ng"}]}]) == (
        "pong"
    )


def test_match_headers(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "blue", "match": {"headers": {"X-Team": "blue"}}, "reply": {"content": "blue team"}},
                {"name": "any", "reply": {"content": "anyone"}},
            ]
        }
    )
    blue = client(served, default_headers={"x-team": "blue"})
    red = client(served, default_headers={"x-team": "red"})
    assert blue.chat.completions.create(model="m", messages=ask("x")).choices[0].message.content == "blue team"
    assert red.chat.completions.create(model="m", messages=ask("x")).choices[0].message.content == "anyone"
    extra = client(served).chat.completions.create(model="m", messages=ask("x"), extra_headers={"X-TEAM": "blue"})
    assert extra.choices[0].message.content == "blue team"


def test_priority_beats_file_order(serve) -> None:
    served = serve(
        {
            "rules": [
                {"name": "low", "match": {"user": {"contains": "x"}}, "reply": {"content": "low"}},
                {"name": "high", "priority": 5, "match": {"user": {"contains": "x"}}, "reply": {"content": "high"}},
                {"name": "also-high", "priority": 5, "reply": {"content": "also"}},
            ]
        }
    )
    c = client(served)
    assert c.chat.completions.create(model="m", messages=ask("x")).choices[0].message.content == "high"
    assert c.chat.completions.create(model="m", messages=ask("y")).choices[0].message.content == "also"


# -- models ----------------------------------------------------------------------------------


def test_models_list_and_retrieve(serve) -> None:
    served = serve(
        {
            "rules": [
                {"match": {"model": "gpt-4.1"}, "reply": {"content": "a"}},
                {"match": {"model": "o3-*"}, "reply": {"content": "b"}},
                {"reply": {"content": "c", "model": "gpt-4o-2024-08-06"}},
            ]
        }
    )
    c = client(served)
    models = c.models.list()
    ids = [m.id for m in models]
    assert ids == ["gpt-4o-mini", "gpt-4.1", "gpt-4o-2024-08-06"]  # the default, then what the rules name
    assert all(m.object == "model" and m.owned_by == "system" for m in models)
    assert c.models.retrieve("gpt-4.1").id == "gpt-4.1"
    assert c.models.retrieve("o3-mini").id == "o3-mini"  # a glob of a rule accepts it
    assert c.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as info:
        c.models.retrieve("nope")
    assert info.value.code == "model_not_found"
