"""The bytes on the wire, read with httpx: SSE framing, headers, JSON layout, UTF-8."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from helpers import SCENARIOS
from helpers import chat_usage as _usage

from mockllm.tokens import split_tokens

REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")


def post(served: Any, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(served.base_url + "/chat/completions", json=body, timeout=10, **kwargs)


def chat(text: str = "Hi", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}


def events(raw: bytes) -> list[bytes]:
    """Split an SSE body into the payloads of its `data: ` events, checking the framing on the way."""
    assert raw.endswith(b"data: [DONE]\n\n")
    parts = raw.split(b"\n\n")
    assert parts[-1] == b""  # every event, the last included, ends with a blank line
    payloads = []
    for part in parts[:-1]:
        assert part.startswith(b"data: "), part
        assert b"\n" not in part and b"\r" not in part  # one line per event
        payloads.append(part[len(b"data: ") :])
    return payloads


def compact(payload: bytes) -> bool:
    obj = json.loads(payload)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() == payload


def test_stream_framing_exact(serve) -> None:
    served = serve({"reply": {"content": "Hello, world!"}})
    with httpx.stream("POST", served.base_url + "/chat/completions", json=chat(stream=True), timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        assert REQUEST_ID.fullmatch(r.headers["x-request-id"])
        raw = b"".join(r.iter_raw())
    payloads = events(raw)
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(compact(p) for p in payloads[:-1])
    assert len({(c["id"], c["created"], c["model"], c["system_fingerprint"]) for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
    assert [c["choices"][0]["delta"] for c in chunks[1:-1]] == [
        {"content": "Hello"},
        {"content": ","},
        {"content": " world"},
        {"content": "!"},
    ]
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert all("usage" not in c for c in chunks)
    assert list(chunks[0])[:4] == ["id", "object", "created", "model"]  # field order of recorded traffic


def test_stream_include_usage_bytes(serve) -> None:
    served = serve({"reply": {"content": "Two."}})
    r = post(served, chat("What's 1+1? Answer in one word.", stream=True, stream_options={"include_usage": True}))
    payloads = events(r.content)
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])  # "usage": null on every chunk
    assert all(b'"usage":null' in p for p in payloads[:-2])
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 18
    assert last["usage"]["completion_tokens"] == 2
    assert last["usage"]["total_tokens"] == 20
    assert last["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"  # the finish chunk comes before the usage chunk
    assert last["id"] == chunks[0]["id"]


def test_obfuscation_on_by_default_and_off_on_request(serve) -> None:
    served = serve({"reply": {"content": "a b c"}})
    on = [json.loads(p) for p in events(post(served, chat(stream=True)).content)[:-1]]
    assert all(isinstance(c["obfuscation"], str) and len(c["obfuscation"]) <= 15 for c in on)
    off_body = chat(stream=True, stream_options={"include_obfuscation": False})
    off = [json.loads(p) for p in events(post(served, off_body).content)[:-1]]
    assert all("obfuscation" not in c for c in off)


def test_non_stream_body_and_headers(serve) -> None:
    served = serve({"reply": {"content": "Hello!"}})
    r = post(served, chat())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    assert REQUEST_ID.fullmatch(r.headers["x-request-id"])
    assert r.headers["openai-version"] == "2020-10-01"
    assert r.headers["x-ratelimit-limit-requests"].isdigit()
    assert compact(r.content)
    body = r.json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    ]
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": []},
            # OpenAPI's CreateChatCompletionResponse requires the key: null when logprobs were not asked
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_non_ascii_stays_utf8(serve) -> None:
    text = "Grüße aus 東京 🎌, naïve café"
    served = serve({"reply": {"content": text}})
    whole = post(served, chat())
    assert text.encode() in whole.content
    assert b"\\u" not in whole.content
    streamed = post(served, chat(stream=True)).content
    assert b"\\u" not in streamed
    assert "東京".encode() in streamed and "🎌".encode() in streamed
    pieces = [json.loads(p)["choices"][0]["delta"].get("content") for p in events(streamed)[:-1]]
    assert "".join(p or "" for p in pieces) == text


def test_tool_call_bytes(serve) -> None:
    served = serve({"reply": {"tool_calls": [{"name": "f", "arguments": {"q": "x y"}, "id": "call_1"}]}})
    chunks = [json.loads(p) for p in events(post(served, chat(stream=True)).content)[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    head = chunks[1]["choices"][0]["delta"]
    assert head == {
        "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]
    }
    fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[2:-1]]
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments)
    assert "".join(f["function"]["arguments"] for f in fragments) == '{"q":"x y"}'
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}


def test_every_answer_has_a_request_id(serve) -> None:
    served = serve({"match": {"model": "only-this"}, "reply": {"content": "x"}})
    answers = [
        post(served, {"model": "only-this", "messages": [{"role": "user", "content": "a"}]}),  # 200
        post(served, {"model": "other", "messages": [{"role": "user", "content": "a"}]}),  # 418
        httpx.post(served.base_url + "/chat/completions", content=b"nope"),  # 400
    ]
    assert [a.status_code for a in answers] == [200, 418, 400]
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(REQUEST_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == 3


def test_readme_curl_example(serve) -> None:
    served = serve(SCENARIOS)
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello!"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    r = post(served, body, headers={"Authorization": "Bearer test"})
    assert r.status_code == 200
    chunks = [json.loads(p) for p in events(r.content)[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[0]["model"] == "gpt-4o"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    usage = chunks[-1]["usage"]
    # 3 priming + (3 + 6) for the system message + (3 + 2) for "Hello!"
    assert usage["prompt_tokens"] == 17
    assert usage["completion_tokens"] == len(chunks) - 3 > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert text.count(".") >= 3  # three generated sentences
    assert served.journal.last.rule == "generated-text"


def test_query_string_is_ignored(serve) -> None:
    served = serve({"reply": {"content": "ok"}})
    r = httpx.post(served.base_url + "/chat/completions?api-version=2024-10-21", json=chat(), timeout=10)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"


def test_models_bytes(serve) -> None:
    served = serve({"match": {"model": "gpt-4.1"}, "reply": {"content": "x"}})
    r = httpx.get(served.base_url + "/models", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1715367049, "owned_by": "system"},
            {"id": "gpt-4.1", "object": "model", "created": 1715367049, "owned_by": "system"},
        ],
    }
    one = httpx.get(served.base_url + "/models/gpt-4.1", timeout=10)
    assert one.json() == {"id": "gpt-4.1", "object": "model", "created": 1715367049, "owned_by": "system"}
    missing = httpx.get(served.base_url + "/models/none", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_long_stream(serve) -> None:
    text = "word " * 20_000
    served = serve({"reply": {"content": text}})
    with httpx.stream("POST", served.base_url + "/chat/completions", json=chat(stream=True), timeout=30) as r:
        parts = list(r.iter_raw())
    assert parts[0].startswith(b"data: {") and b'"role":"assistant"' in parts[0]
    payloads = events(b"".join(parts))
    assert len(payloads) == len(split_tokens(text)) + 3  # role chunk, finish chunk, [DONE]
    assert b"".join(json.loads(p)["choices"][0]["delta"].get("content", "").encode() for p in payloads[1:-2]) == (
        text.encode()
    )


# The builders write JSON from templates for speed; they must give exactly what encoding the
# same objects gives (compact, UTF-8 kept), whatever the text holds.
TRICKY = ["", "plain", 'quote " and \\ backslash', "line\nbreak\ttab", "日本語 😀", "\u2028\x00\x1f", "</script>"]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_template_builders_match_plain_json_encoding() -> None:
    from mockllm.dialects import ToolCallWire
    from mockllm.dialects.chat import ChunkMaker, choices_json, completion_json, usage_json

    assert usage_json(18, 2) == _compact(_usage(18, 2))
    for text in TRICKY:
        call = ToolCallWire("call_" + text, "fn" + text, '{"a":' + json.dumps(text) + "}")
        for content, calls, fingerprint in ((text, [], "fp_1"), (None, [call], None)):
            message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
            if calls:
                message["tool_calls"] = [
                    {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                ]
            expected = {
                "id": "chatcmpl-" + text,
                "object": "chat.completion",
                "created": 1,
                "model": "m" + text,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
                "usage": _usage(3, 4),
                "service_tier": "default",
                "system_fingerprint": fingerprint,
            }
            choices = choices_json(content, calls, "stop")
            body = completion_json("chatcmpl-" + text, 1, "m" + text, fingerprint, choices, 3, 4)
            assert body == _compact(expected).encode()
        maker = ChunkMaker(
            id="c" + text, created=2, model=text, fingerprint=None, include_usage=True, obfuscation=["x"]
        )
        head = {"id": "c" + text, "object": "chat.completion.chunk", "created": 2, "model": text}
        head |= {"service_tier": "default", "system_fingerprint": None}
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
        want = {**head, "choices": [choice], "usage": None, "obfuscation": "x"}
        assert maker.chunk(1, maker.content_delta(text)) == _compact(want)
        want_usage = {**head, "choices": [], "usage": _usage(1, 2), "obfuscation": "x"}
        assert maker.usage_chunk(2, usage_json(1, 2)) == _compact(want_usage)


def test_the_plain_stream_path_matches_the_general_one() -> None:
    """A stream with no fault and default framing skips the event layer; same bytes, same times."""
    from mockllm.derive import Derived
    from mockllm.dialects import Call, ToolCallWire
    from mockllm.dialects.chat import ChatStream
    from mockllm.request import Request
    from mockllm.router import Conditions, Rule
    from mockllm.scenario import Reply
    from mockllm.script import compile_reply
    from mockllm.sse import frame

    replies = [
        {"content": "Hello, wörld 😀! 1+1"},
        {"chunks": ["", "a", ""]},
        {"tool_calls": [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": "{}"}]},
        {"content": "before", "tool_calls": [{"name": "f"}], "timing": {"ttft_ms": 5, "chunk_ms": [1, 2]}},
    ]
    for spec in replies:
        script = compile_reply(Reply.model_validate(spec))
        rule = Rule("r", "r", "here", Conditions(), (script,))
        tools = tuple(ToolCallWire(f"call_{i}", t.name, t.arguments, t.fragments) for i, t in enumerate(script.tools))
        count = max(len(script.pieces) + script.tool_chunks, 1)
        offsets = script.offsets(count, None, 1.0)
        for usage in (False, True):
            for obfuscation in (False, True):
                request = Request("chat", {}, "m", True, {}, None, None, 1, usage, obfuscation)
                call = Call(
                    request, rule, script, Derived(0, "r", 0), "m", "fp", script.content, script.pieces, tools,
                    1, 2, script.finish_reason, offsets, None,
                )  # fmt: skip
                general = list(frame(ChatStream(call).events(), None))
                plain = list(ChatStream(call).plain_writes())
                assert plain == general, spec
