"""`n` choices that each say their own text (the reply's `choices`), and the role delta's `"refusal": null`
(`refusal_null`), in chat and legacy completions, whole and streamed.

Real clients against the real server: the openai SDK (2.x on httpx, 3.x on httpx2), LiteLLM (env1), and
httpx for the bytes. Shapes: shared/wire.md section 2 ("n>1": one choice per chunk, each index with its
own role and finish chunk, one usage chunk; the 2025 role delta `{"role":"assistant","content":"",
"refusal":null}`), and openai-openapi's schemas, as tests/test_openapi_conformance.py reads them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
from helpers import chat_usage, openai_schema_defs
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from mockllm.tokens import split_tokens

TEXTS = ["one two three", "four", "five six"]
# `content` is what the other APIs answer; chat and legacy completions say the choices.
SCENARIO = {"reply": {"content": "fallback", "choices": TEXTS}}
ASK = [{"role": "user", "content": "Count"}]
PROMPT_TOKENS = 7  # the chat request's ASK: 3 + (3 + 1)

_SCHEMAS = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": openai_schema_defs()}
_REGISTRY = Registry().with_resource("urn:openai", Resource.from_contents(_SCHEMAS))


def check(name: str, value: Any) -> None:
    """`value` validates against OpenAI's schema `name` (with live traffic's adjustments: tests/helpers.py)."""
    validator = Draft202012Validator({"$ref": f"urn:openai#/$defs/{name}"}, registry=_REGISTRY)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5])


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": ASK, **extra}


def stream_payloads(served: Any, path: str, body: dict[str, Any]) -> list[bytes]:
    """The `data:` payloads of a streamed answer, its framing checked, `[DONE]` last."""
    response = httpx.post(served.base_url + path, json={**body, "stream": True}, timeout=10)
    assert response.status_code == 200, response.content
    raw = response.content
    assert raw.endswith(b"data: [DONE]\n\n")
    parts = raw.split(b"\n\n")
    assert parts[-1] == b""
    assert all(p.startswith(b"data: ") for p in parts[:-1])
    return [p[len(b"data: ") :] for p in parts[:-1]]


def chat_chunks(served: Any, **extra: Any) -> list[dict[str, Any]]:
    """A chat stream's chunks, each validated against the OAS chunk schema."""
    payloads = stream_payloads(served, "/chat/completions", chat_body(**extra))
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        check("CreateChatCompletionStreamResponse", chunk)
    return chunks


def completions_chunks(served: Any, **extra: Any) -> list[dict[str, Any]]:
    payloads = stream_payloads(served, "/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Count", **extra})
    chunks = [json.loads(p) for p in payloads[:-1]]
    for chunk in chunks:
        if chunk["choices"]:
            # The OAS describes legacy chunks with CreateCompletionResponse, whose finish_reason is a string;
            # live chunks carry null until the finish (shared/wire.md section 3), as these do.
            (choice,) = chunk["choices"]
            chunk = {**chunk, "choices": [{**choice, "finish_reason": choice["finish_reason"] or "stop"}]}
        check("CreateCompletionResponse", chunk)
    return chunks


def tokens(text: str) -> int:
    return len(split_tokens(text))


# -- chat, whole ---------------------------------------------------------------------------------------


def test_chat_each_choice_says_its_text(serve) -> None:
    served = serve(SCENARIO)
    answer = client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=3)  # type: ignore[arg-type]
    assert [(c.index, c.message.content, c.finish_reason) for c in answer.choices] == [
        (i, text, "stop") for i, text in enumerate(TEXTS)
    ]
    assert answer.usage is not None and answer.usage.completion_tokens == sum(map(tokens, TEXTS)) == 6
    # More choices than texts: they repeat in turn; one choice: the first text (not `content`).
    five = client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=5)  # type: ignore[arg-type]
    assert [c.message.content for c in five.choices] == [*TEXTS, *TEXTS[:2]]
    assert five.usage is not None and five.usage.completion_tokens == 6 + 3 + 1
    one = client(served).chat.completions.create(model="gpt-4o", messages=ASK)  # type: ignore[arg-type]
    assert [c.message.content for c in one.choices] == [TEXTS[0]]
    assert one.usage is not None and one.usage.completion_tokens == 3
    # The other APIs say the reply's body key.
    assert client(served).responses.create(model="gpt-4o", input="Count").output_text == "fallback"


def test_chat_whole_body_bytes_and_schema(serve) -> None:
    served = serve(SCENARIO)
    response = httpx.post(served.base_url + "/chat/completions", json=chat_body(n=2), timeout=10)
    body = response.json()
    check("CreateChatCompletionResponse", body)
    assert body["choices"] == [
        {
            "index": i,
            "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
        for i, text in enumerate(TEXTS[:2])
    ]
    assert body["usage"] == chat_usage(PROMPT_TOKENS, 4)
    assert b'"choices":[{"index":0,"message":{"role":"assistant","content":"one two three",' in response.content


def test_chat_limits_cut_each_choice_on_its_own(serve) -> None:
    served = serve(SCENARIO)
    capped = client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=3, max_tokens=2)  # type: ignore[arg-type]
    assert [(c.message.content, c.finish_reason) for c in capped.choices] == [
        ("one two", "length"),
        ("four", "stop"),
        ("five six", "stop"),
    ]
    assert capped.usage is not None and capped.usage.completion_tokens == 2 + 1 + 2
    stopped = client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=3, stop=[" six", " two"])  # type: ignore[arg-type]
    assert [(c.message.content, c.finish_reason) for c in stopped.choices] == [
        ("one", "stop"),
        ("four", "stop"),
        ("five", "stop"),
    ]
    assert stopped.usage is not None and stopped.usage.completion_tokens == 3


def test_chat_logprobs_per_choice(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    answer = c.chat.completions.create(model="gpt-4o", messages=ASK, n=3, logprobs=True, top_logprobs=2)  # type: ignore[arg-type]
    for choice, text in zip(answer.choices, TEXTS, strict=True):
        assert choice.logprobs is not None and choice.logprobs.content is not None
        assert [t.token for t in choice.logprobs.content] == split_tokens(text)
        assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in choice.logprobs.content)
    chunks = chat_chunks(served, n=3, logprobs=True, top_logprobs=2)
    streamed: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["delta"].get("content"):
                streamed.setdefault(choice["index"], []).extend(t["token"] for t in choice["logprobs"]["content"])
            elif "role" in choice["delta"]:
                assert choice["logprobs"] == {"content": [], "refusal": None}
    assert streamed == {i: split_tokens(text) for i, text in enumerate(TEXTS)}


def test_chat_choices_with_tool_calls(serve) -> None:
    """Each choice says its text, then the reply's tool calls; the finish is the reply's."""
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    served = serve({"reply": {"content": "x", "choices": ["Looking.", ""], "tool_calls": [call]}})
    answer = client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=2)  # type: ignore[arg-type]
    assert [c.message.content for c in answer.choices] == ["Looking.", ""]
    assert all(c.finish_reason == "tool_calls" for c in answer.choices)
    assert [[(t.id, t.function.arguments) for t in c.message.tool_calls or ()] for c in answer.choices] == [
        [("call_1", '{"city":"Paris"}')]
    ] * 2
    with client(served).chat.completions.stream(model="gpt-4o", messages=ASK, n=2) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    assert [(c.message.content, c.finish_reason) for c in final.choices] == [
        ("Looking.", "tool_calls"),
        (None, "tool_calls"),  # the stream sent it no text: its role delta's content is null
    ]
    assert [[t.function.arguments for t in c.message.tool_calls or ()] for c in final.choices] == [
        ['{"city":"Paris"}']
    ] * 2
    # Arguments left out are made for the offered tool's schema, per call: every choice carries the call's.
    offered = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    made = serve({"reply": {"content": "x", "choices": ["a", "b"], "tool_calls": [{"name": "get_weather"}]}})
    answer = client(made).chat.completions.create(model="gpt-4o", messages=ASK, n=2, tools=offered)  # type: ignore[arg-type]
    arguments = [json.loads((c.message.tool_calls or [])[0].function.arguments) for c in answer.choices]  # type: ignore[union-attr]
    assert arguments[0] == arguments[1] and isinstance(arguments[0]["city"], str)


# -- chat, streamed -------------------------------------------------------------------------------------


def test_chat_stream_interleaves_the_choices(serve) -> None:
    """Round j sends delta j of each choice that has one, in index order; a choice's finish chunk comes
    after its last delta; each index has its own role chunk; one usage chunk counts them all."""
    served = serve({"reply": {**SCENARIO["reply"], "refusal_null": True}})
    chunks = chat_chunks(served, n=3, stream_options={"include_usage": True})
    role = {"role": "assistant", "content": "", "refusal": None}
    sent = [c["choices"][0] for c in chunks[:-1]]
    order = [(choice["index"], choice["delta"], choice["finish_reason"]) for choice in sent]
    assert order == [
        (0, role, None),
        (1, role, None),
        (2, role, None),
        (0, {"content": "one"}, None),
        (1, {"content": "four"}, None),
        (2, {"content": "five"}, None),
        (1, {}, "stop"),
        (0, {"content": " two"}, None),
        (2, {"content": " six"}, None),
        (2, {}, "stop"),
        (0, {"content": " three"}, None),
        (0, {}, "stop"),
    ]
    assert all(len(c["choices"]) == 1 and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == chat_usage(PROMPT_TOKENS, 6)
    assert len({(c["id"], c["created"], c["model"]) for c in chunks}) == 1


def test_chat_stream_limits_per_choice(serve) -> None:
    served = serve(SCENARIO)
    chunks = chat_chunks(served, n=3, max_tokens=1, stream_options={"include_usage": True})
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        texts[choice["index"]] = texts.get(choice["index"], "") + (choice["delta"].get("content") or "")
        if choice["finish_reason"]:
            assert choice["index"] not in finishes  # one finish chunk per index
            finishes[choice["index"]] = choice["finish_reason"]
    assert texts == {0: "one", 1: "four", 2: "five"}
    assert finishes == {0: "length", 1: "stop", 2: "length"}
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_chat_stream_through_the_sdk(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    stream = c.chat.completions.create(
        model="gpt-4o",
        messages=ASK,  # type: ignore[arg-type]
        n=3,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    usage = None
    with stream:
        for chunk in stream:
            usage = chunk.usage or usage
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                if choice.finish_reason:
                    finishes[choice.index] = choice.finish_reason
    assert texts == dict(enumerate(TEXTS))
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    assert usage is not None and usage.completion_tokens == 6
    # The SDK's stream helper keeps a choice per index...
    with c.chat.completions.stream(model="gpt-4o", messages=ASK, n=3, stop=" six") as helper:  # type: ignore[arg-type]
        final = helper.get_final_completion()
    assert [(ch.index, ch.message.content, ch.finish_reason) for ch in final.choices] == [
        (0, "one two three", "stop"),
        (1, "four", "stop"),
        (2, "five", "stop"),
    ]
    # ...and raises when any one of them ends at the cap (shared/dialects.md section 6).
    capped = c.chat.completions.stream(model="gpt-4o", messages=ASK, n=3, max_tokens=2)  # type: ignore[arg-type]
    with pytest.raises(openai.LengthFinishReasonError) as caught, capped as helper:
        helper.get_final_completion()
    assert [(ch.message.content, ch.finish_reason) for ch in caught.value.completion.choices] == [
        ("one two", "length"),
        ("four", "stop"),
        ("five six", "stop"),
    ]


def test_a_fault_counts_every_choice_s_deltas(serve) -> None:
    served = serve({"reply": {**SCENARIO["reply"], "fault": {"kind": "error_event", "after_chunks": 4}}})
    raw = httpx.post(served.base_url + "/chat/completions", json=chat_body(n=3, stream=True), timeout=10).content
    sent = [json.loads(p.removeprefix(b"data: ")) for p in raw.split(b"\n\n") if p]
    error = next(i for i, p in enumerate(sent) if "error" in p)
    assert error == len(sent) - 1  # the stream ends there
    deltas = [p for p in sent[:error] if p["choices"] and p["choices"][0]["delta"].get("content")]
    assert [(d["choices"][0]["index"], d["choices"][0]["delta"]["content"]) for d in deltas] == [
        (0, "one"),
        (1, "four"),
        (2, "five"),
        (0, " two"),
    ]
    with pytest.raises(openai.APIError):
        list(client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=3, stream=True))  # type: ignore[arg-type]


# -- refusal_null ----------------------------------------------------------------------------------------


def test_refusal_null_in_the_role_delta(serve) -> None:
    """The plain stream (a fast path) and the general one (here: a framing given) send the same bytes."""
    plain = serve({"reply": {"content": "Hi there", "refusal_null": True}})
    framed = serve({"reply": {"content": "Hi there", "refusal_null": True, "framing": {"line_ending": "lf"}}})
    first = [stream_payloads(served, "/chat/completions", chat_body()) for served in (plain, framed)]
    role = b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"finish_reason":null}]'
    assert all(role in payloads[0] for payloads in first)
    assert [p.count(b'"refusal"') for p in first[0]] == [1, 0, 0, 0, 0]  # the role delta's alone
    assert first[0] == first[1]
    for payload in first[0][:-1]:
        check("CreateChatCompletionStreamResponse", json.loads(payload))
    # Without the key: no refusal in the role delta (the older traffic's shape, what the scenarios pin).
    without = serve({"reply": {"content": "Hi there"}})
    assert stream_payloads(without, "/chat/completions", chat_body())[0].count(b'"refusal"') == 0
    # Tool calls alone: the role delta's content is null.
    tools = serve({"reply": {"tool_calls": [{"id": "call_1", "name": "f"}], "refusal_null": True}})
    assert (
        b'"delta":{"role":"assistant","content":null,"refusal":null}'
        in stream_payloads(tools, "/chat/completions", chat_body())[0]
    )


def test_refusal_null_on_every_choice_s_role_chunk(serve) -> None:
    served = serve({"reply": {"content": "Hi there", "refusal_null": True}})
    chunks = chat_chunks(served, n=2, logprobs=True)
    roles = [c["choices"][0] for c in chunks if "role" in c["choices"][0]["delta"]]
    assert [(r["index"], r["delta"]) for r in roles] == [
        (i, {"role": "assistant", "content": "", "refusal": None}) for i in (0, 1)
    ]
    # The SDK reads it as no refusal.
    stream = client(served).chat.completions.create(model="gpt-4o", messages=ASK, n=2, stream=True)  # type: ignore[arg-type]
    with stream:
        firsts = [c.choices[0].delta for c in stream][:2]
    assert [(d.role, d.content, d.refusal) for d in firsts] == [("assistant", "", None)] * 2


# -- legacy completions ----------------------------------------------------------------------------------


def test_completions_each_choice_says_its_text(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    answer = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Count", n=2)
    assert [(ch.index, ch.text, ch.finish_reason) for ch in answer.choices] == [
        (0, "one two three", "stop"),
        (1, "four", "stop"),
    ]
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    response = httpx.post(
        served.base_url + "/completions",
        json={"model": "gpt-3.5-turbo-instruct", "prompt": "Count", "n": 3, "max_tokens": 1, "logprobs": 1},
        timeout=10,
    )
    body = response.json()
    check("CreateCompletionResponse", body)
    assert [(ch["text"], ch["finish_reason"], ch["logprobs"]["tokens"]) for ch in body["choices"]] == [
        ("one", "length", ["one"]),
        ("four", "stop", ["four"]),
        ("five", "length", ["five"]),
    ]
    assert body["usage"] == {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4}


def test_completions_stream_interleaves_the_choices(serve) -> None:
    served = serve(SCENARIO)
    chunks = completions_chunks(served, n=3, logprobs=1, stream_options={"include_usage": True})
    order = [(c["choices"][0]["index"], c["choices"][0]["text"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]
    assert order == [
        (0, "one", None),
        (1, "four", None),
        (2, "five", None),
        (1, "", "stop"),
        (0, " two", None),
        (2, " six", None),
        (2, "", "stop"),
        (0, " three", None),
        (0, "", "stop"),
    ]
    # Each choice's logprobs count its own text from 0.
    offsets: dict[int, list[int]] = {}
    for ch in chunks[:-1]:
        choice = ch["choices"][0]
        if choice["text"]:
            offsets.setdefault(choice["index"], []).extend(choice["logprobs"]["text_offset"])
    assert offsets == {0: [0, 3, 7], 1: [0], 2: [0, 4]}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6


def test_completions_stream_through_the_sdk(serve) -> None:
    served = serve(SCENARIO)
    stream = client(served).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Count", n=2, stream=True, stop=[" three"]
    )
    texts: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    with stream:
        for chunk in stream:
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + choice.text
                if choice.finish_reason:
                    finishes[choice.index] = choice.finish_reason
    assert texts == {0: "one two", 1: "four"}
    assert finishes == {0: "stop", 1: "stop"}


# -- LiteLLM ----------------------------------------------------------------------------------------------


def test_litellm_n_choices(serve, monkeypatch) -> None:
    monkeypatch.setenv("LITELLM_TELEMETRY", "False")  # offline: nothing but the fake (conftest: no cost map fetch)
    litellm = pytest.importorskip("litellm")
    served = serve(SCENARIO)
    base = {"api_base": served.base_url, "api_key": "test", "num_retries": 0}
    answer = litellm.completion(model="openai/gpt-4o", messages=ASK, n=3, **base)
    assert [c.message.content for c in answer.choices] == TEXTS
    assert answer.usage.completion_tokens == 6
    texts: dict[int, str] = {}
    for chunk in litellm.completion(model="openai/gpt-4o", messages=ASK, n=3, stream=True, **base):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == dict(enumerate(TEXTS))


QUOTING = {
    "match": {"user": {"contains": "Name"}},
    "reply": {"choices": ["Hi {user}!", "Model {model} here.", "{{user}} stays"]},
}


def test_choices_fill_their_placeholders_per_request(serve) -> None:
    """Each choice is a template, as `content` is: filled for each request, whole and streamed; the
    choice alone is what the other APIs say; `{{user}}` writes the braces."""
    served = serve(QUOTING)
    sdk = client(served)
    for name in ("Name: Ada", "Name: Bo"):
        asked: Any = [{"role": "user", "content": name}]
        whole = sdk.chat.completions.create(model="gpt-4o", messages=asked, n=3)
        expected = [f"Hi {name}!", "Model gpt-4o here.", "{user} stays"]
        assert [c.message.content for c in whole.choices] == expected
        assert whole.usage is not None and whole.usage.completion_tokens == sum(map(tokens, expected))
        streamed = ["", "", ""]
        for chunk in sdk.chat.completions.create(model="gpt-4o", messages=asked, n=3, stream=True):
            for choice in chunk.choices:
                streamed[choice.index] += choice.delta.content or ""
        assert streamed == expected
        assert sdk.responses.create(model="gpt-4o", input=name).output_text == f"Hi {name}!"
