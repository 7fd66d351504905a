"""Non-streamed answers: the compiled-template fast path against the general path, on a real Engine.

`plan()` answers a non-streamed request from the chat dialect's template (in `Script.compiled`)
when the reply has one and no fault; otherwise it builds the body with `completion_json`. Both
must send the same bytes, the same headers and the same delay, and both must equal plain JSON
encoding of the expected object.
The general path is reached for the same rule by a twin Engine whose scripts have no template.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from helpers import chat_usage as usage

from mockllm import Engine
from mockllm.derive import Derived
from mockllm.router import Rule
from mockllm.tokens import count_tokens

JSON_TYPE = (b"content-type", b"application/json")
SSE_TYPE = (b"content-type", b"text/event-stream; charset=utf-8")

# A request with a name, list-of-parts content and an assistant turn with tool calls: its prompt
# token count exercises every term of the cookbook formula.
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse.", "name": "sys_bot"},
    {
        "role": "user",
        "name": "alice",
        "content": [
            {"type": "text", "text": "Weather in "},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "text", "text": "Paris, 日本 😀?"},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
    {"role": "assistant", "content": "It is 21 degrees at noon.", "name": "helper"},
    {"role": "user", "content": "Thanks! And 1+1?"},
]

TRICKY = 'Say "%s" %d {} {0} %% \\ back\\slash \\n\nnew line\ttab 日本語 😀 \u2028 \x00 </script>'

# Each case is one rule (`reply:` or `replies:`, maybe with a rule seed); the template path must
# take every reply of it.
TEMPLATED: list[dict[str, Any]] = [
    {"reply": {"content": "Hello, world!"}},
    {"reply": {"content": ""}},
    {"reply": {"content": TRICKY}},
    {"reply": {"content": "%s%s%(x)s {x} {{}}"}},
    {"reply": {"chunks": ["Hel", "lo ", "wörld", " 🌍", ""]}},
    {"reply": {"chunks": ["", "%s", '"', "\\"]}},
    {
        "reply": {
            "tool_calls": [
                {"id": "call_abc", "name": "get_weather", "arguments": {"city": "Zürich", "q": 'a"b\\c %s {}'}},
                {"id": 'call_"q"\\', "name": "get_time", "arguments": '{"tz": "CET"}'},
            ]
        }
    },
    {"reply": {"content": "Let me look.", "tool_calls": [{"id": "call_x", "name": "f_日本", "arguments": {}}]}},
    {"reply": {"content": "Counted.", "usage": {"prompt_tokens": 5, "completion_tokens": 7}}},
    {"reply": {"content": "Counted.", "usage": {"completion_tokens": 7}}},
    {"reply": {"content": "Counted.", "usage": {"prompt_tokens": 5}}},
    {"reply": {"content": "Zero.", "usage": {"prompt_tokens": 0, "completion_tokens": 0}}},
    {"reply": {"content": "m", "model": 'x"y'}},
    {"reply": {"content": "m", "model": "模型\\%s"}},
    {"reply": {"content": "fp", "system_fingerprint": 'fp_"q"'}},
    {"reply": {"content": "cut off", "finish_reason": "length"}},
    {"reply": {"content": "", "finish_reason": "content_filter"}},
    {"seed": 4242, "reply": {"content": "a rule seed"}},
    {"replies": [{"content": "first"}, {"content": "second", "model": "m2"}, {"chunks": ["th", "ird"]}]},
]


def request(messages: list[dict[str, Any]] | None = None, *, model: str = "gpt-4o", **extra: Any) -> bytes:
    return json.dumps({"model": model, "messages": messages or MESSAGES, **extra}).encode()


def expected_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The cookbook count, worked out here: 3 per message, its text, name and tool calls; 3 to prime."""
    total = 3
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            text = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        else:
            text = content if isinstance(content, str) else ""
        total += 3 + count_tokens(text)
        if isinstance(message.get("name"), str):
            total += 1 + count_tokens(message["name"])
        for call in message.get("tool_calls") or ():
            total += count_tokens(call["function"]["name"]) + count_tokens(call["function"]["arguments"])
    return total


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def expected_body(reply: dict[str, Any], *, seed: int, rule_key: str, call_index: int, model: str) -> bytes:
    """The chat.completion a reply should give, built as a plain dict and encoded by json."""
    derived = Derived(seed, rule_key, call_index)
    calls = [
        {
            "id": call["id"],
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": call.get("arguments", {})
                if isinstance(call.get("arguments"), str)
                else json.dumps(call.get("arguments", {}), ensure_ascii=False, separators=(",", ":")),
            },
        }
        for call in reply.get("tool_calls", ())
    ]
    content = reply.get("content")
    if "chunks" in reply:
        content = "".join(reply["chunks"])
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        message["tool_calls"] = calls
    given = reply.get("usage", {})
    completion = given.get("completion_tokens")
    if completion is None:
        completion = count_tokens(content or "") + sum(
            count_tokens(c["function"]["name"]) + count_tokens(c["function"]["arguments"]) for c in calls
        )
    prompt = given.get("prompt_tokens")
    if prompt is None:
        prompt = expected_prompt_tokens(MESSAGES)
    expected = {
        "id": derived.completion_id,
        "object": "chat.completion",
        "created": derived.created,
        "model": reply.get("model", model),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,  # the spec requires the key (openai-openapi: CreateChatCompletionResponse)
                "finish_reason": reply.get("finish_reason", "tool_calls" if calls else "stop"),
            }
        ],
        "usage": usage(prompt, completion),
        "service_tier": "default",
        "system_fingerprint": reply.get("system_fingerprint", Derived(seed, "", 0).fingerprint),
    }
    return compact(expected)


def template(script: Any) -> Any:
    """The chat dialect's compiled body of a reply (None: answered by the general path)."""
    return script.compiled["chat"].template


def no_template(script: Any, **changes: Any) -> Any:
    """The same script, minus its chat body template."""
    chat = dataclasses.replace(script.compiled["chat"], template=None)
    return dataclasses.replace(script, compiled={**script.compiled, "chat": chat}, **changes)


def without_templates(engine: Engine) -> None:
    """Send every reply of `engine` down the general path: the same scripts, minus their template."""
    engine.router._rules = [
        dataclasses.replace(rule, replies=tuple(no_template(s, fixed_offsets={}) for s in rule.replies))
        for rule in engine.router._rules
    ]


def twins(rules: dict[str, Any], **options: Any) -> tuple[Engine, Engine]:
    """Two Engines with the same rules: the first answers by template, the second by the general path."""
    fast, general = Engine(**options), Engine(**options)
    fast.add(rules)
    general.add(rules)
    without_templates(general)
    assert all(template(s) is not None for r in fast.router.rules for s in r.replies), rules
    assert all(template(s) is None for r in general.router.rules for s in r.replies), rules
    return fast, general


def the_rule(engine: Engine) -> Rule:
    (rule,) = engine.router.rules
    return rule


def test_general_path_twin_keeps_the_rule() -> None:
    """The twin's rules differ from the originals only in their scripts' template (init=False fields rebuilt)."""
    fast, general = twins({"match": {"model": "gpt-*"}, "times": 2, "replies": [{"content": "a"}, {"content": "b"}]})
    before, after = the_rule(fast), the_rule(general)
    assert (after.name, after.key, after.origin, after.match, after.seed) == (
        before.name,
        before.key,
        before.origin,
        before.match,
        before.seed,
    )
    assert after.capacity == before.capacity == 2
    assert len(after.checks) == len(before.checks) == 1
    assert [no_template(s) for s in before.replies] == list(after.replies)
    assert general.chat(request(model="claude"), {}).status == 418  # the match still applies


@pytest.mark.parametrize("seed", [0, 987654321])
@pytest.mark.parametrize("rules", TEMPLATED, ids=lambda rules: json.dumps(rules, ensure_ascii=True)[:60])
def test_template_and_general_path_give_the_same_bytes(rules: dict[str, Any], seed: int) -> None:
    fast, general = twins(rules, seed=seed)
    rule = the_rule(fast)
    replies = rules["replies"] if "replies" in rules else [rules["reply"]] * 3
    model = 'gpt-4o "mini" \\ 日本'  # the request's model is echoed when the reply names none
    for call_index, reply in enumerate(replies):
        extra = {"stream": False} if call_index % 2 else {}  # `stream` left out, or false
        a = fast.chat(request(model=model, **extra), {})
        b = general.chat(request(model=model, **extra), {})
        want = expected_body(reply, seed=rules.get("seed", seed), rule_key=rule.key, call_index=call_index, model=model)
        assert a.body == want, (call_index, a.body, want)
        assert b.body == want, (call_index, b.body, want)
        assert (a.status, a.headers, a.delay, a.abort, a.writes) == (b.status, b.headers, b.delay, b.abort, b.writes)
        assert (a.status, a.delay, a.abort, a.writes) == (200, 0.0, False, None)
        request_id = Derived(rules.get("seed", seed), rule.key, call_index).request_id
        assert a.headers[:2] == [JSON_TYPE, (b"x-request-id", request_id.encode())]
        assert a.headers[-1] == (b"openai-processing-ms", b"0")
        assert all(type(n) is bytes and type(v) is bytes for n, v in a.headers)
        assert a.entry is not None and b.entry is not None
        assert a.entry.call_index == b.entry.call_index == call_index


NOT_TEMPLATED: list[tuple[dict[str, Any], int, tuple[bytes, bytes]]] = [
    ({"generate": {"sentences": 2}}, 200, JSON_TYPE),
    ({"generate": {"words": 5}, "usage": {"completion_tokens": 7}}, 200, JSON_TYPE),
    ({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}, 200, JSON_TYPE),
    ({"content": "x", "tool_calls": [{"name": "a", "id": "call_a"}, {"name": "b"}]}, 200, JSON_TYPE),
    ({"sse": 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n'}, 200, SSE_TYPE),
    ({"error": {"status": 429}}, 429, JSON_TYPE),
    ({"error": {"status": 503, "message": "busy"}}, 503, JSON_TYPE),
    ({"error": {"status": 400, "flavour": "azure", "code": "content_filter"}}, 400, JSON_TYPE),
]


@pytest.mark.parametrize(("reply", "status", "content_type"), NOT_TEMPLATED, ids=lambda v: str(v)[:40])
def test_replies_made_per_call_get_no_template(
    reply: dict[str, Any], status: int, content_type: tuple[bytes, bytes]
) -> None:
    engine = Engine(seed=5)
    engine.add({"reply": reply})
    (script,) = the_rule(engine).replies
    assert template(script) is None
    answer = engine.chat(request(), {})
    assert answer.status == status
    assert answer.headers[0] == content_type
    assert not answer.abort
    if "sse" in reply:  # a verbatim transcript is sent as SSE, even to a non-streamed request
        assert answer.writes is not None
        assert b"".join(w.data for w in answer.writes) == reply["sse"].encode() + b"\n"
        return
    assert answer.writes is None
    body = json.loads(answer.body)
    if "error" in reply:
        assert set(body) == {"error"}
        if status == 429:
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert (b"retry-after", b"1") in answer.headers
        return
    assert body["object"] == "chat.completion"
    message = body["choices"][0]["message"]
    calls = message.get("tool_calls", [])
    if "generate" in reply:
        assert isinstance(message["content"], str) and message["content"]
    for call in calls:
        assert call["id"].startswith("call_")
    completion = count_tokens(message["content"] or "") + sum(
        count_tokens(c["function"]["name"]) + count_tokens(c["function"]["arguments"]) for c in calls
    )
    assert body["usage"] == usage(
        expected_prompt_tokens(MESSAGES), reply.get("usage", {}).get("completion_tokens", completion)
    )


TIMED = {"ttft_ms": 100, "chunk_ms": 10, "jitter_ms": 5}


@pytest.mark.parametrize(
    "reply",
    [
        {"content": "Hello there, dear world!"},
        {"content": ""},
        {"tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
    ],
    ids=["content", "empty", "tool_calls"],
)
def test_delay_is_the_same_on_both_paths(reply: dict[str, Any]) -> None:
    fast, general = twins({"reply": {**reply, "timing": TIMED}}, seed=11, time_scale=1)
    (script,) = the_rule(fast).replies
    chunks = max(script.chunk_count, 1)
    low = (100 + 10 * (chunks - 1) - 5 * chunks) / 1000  # each of the `chunks` offsets wobbles by 5 ms at most
    high = (100 + 10 * (chunks - 1) + 5 * chunks) / 1000
    delays = []
    for _ in range(4):
        a, b = fast.chat(request(), {}), general.chat(request(), {})
        assert a.body == b.body
        assert a.delay == b.delay  # the same seeded jitter for the same call index
        assert a.headers == b.headers
        assert 0 < low <= a.delay <= high
        assert (b"openai-processing-ms", b"%d" % round(a.delay * 1000)) in a.headers
        delays.append(a.delay)
    assert len(set(delays)) > 1  # jitter differs from call to call

    fast, general = twins({"reply": {**reply, "timing": TIMED}}, seed=11, time_scale=1)
    assert [fast.chat(request(), {}).delay for _ in range(4)] == delays  # and again, from a new Engine

    still, still_general = twins({"reply": {**reply, "timing": TIMED}}, seed=11, time_scale=0)
    for engine in (still, still_general):
        answer = engine.chat(request(), {})
        assert answer.delay == 0
        assert answer.headers[-1] == (b"openai-processing-ms", b"0")

    # A scenario's own time_scale wins over the Engine's, on both paths.
    scaled, scaled_general = twins({"time_scale": 0, "rules": [{"reply": {**reply, "timing": TIMED}}]}, time_scale=1)
    assert scaled.chat(request(), {}).delay == scaled_general.chat(request(), {}).delay == 0


def test_delay_without_jitter_is_the_schedule() -> None:
    fast, general = twins({"reply": {"content": "one two three", "timing": {"ttft_ms": 100, "chunk_ms": 10}}})
    assert the_rule(fast).replies[0].chunk_count == 3
    for engine in (fast, general):
        for _ in range(2):
            assert engine.chat(request(), {}).delay == pytest.approx(0.12)


@pytest.mark.parametrize("stream", [None, False])
def test_a_fault_is_not_skipped_by_the_fast_path(stream: bool | None) -> None:
    extra = {} if stream is None else {"stream": stream}
    engine = Engine(seed=3)
    engine.add(
        {
            "rules": [
                {
                    "match": {"user": {"contains": "drop"}},
                    "reply": {"content": "never sent", "fault": {"kind": "disconnect"}},
                },
                {
                    "match": {"user": {"contains": "hang"}},
                    "reply": {"content": "never sent", "fault": {"kind": "stall", "stall_ms": 50}},
                },
            ]
        }
    )
    # The replies have a template: only the fault keeps them off the fast path.
    assert all(template(s) is not None for r in engine.router.rules for s in r.replies)
    dropped = engine.chat(request([{"role": "user", "content": "drop"}], **extra), {})
    assert dropped.abort is True
    assert (dropped.status, dropped.body, dropped.delay, dropped.writes) == (200, b"", 0.0, None)
    stalled = engine.chat(request([{"role": "user", "content": "hang"}], **extra), {})
    assert stalled.abort is True
    assert stalled.body == b""
    assert stalled.delay == pytest.approx(0.05)  # a stall is never scaled


CONVERSATIONS: list[list[dict[str, Any]]] = [
    MESSAGES,
    [{"role": "user", "content": "Hi", "name": "bob"}],
    [{"role": "user", "content": [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]}],
    [{"role": "user", "content": []}, {"role": "assistant", "content": None, "tool_calls": []}],
    [
        {"role": "developer", "content": "Be brief.", "name": "ops"},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "name": "weather_bot",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "sunny"},
    ],
]


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=range(len(CONVERSATIONS)))
def test_prompt_tokens_follow_the_cookbook(messages: list[dict[str, Any]]) -> None:
    want = expected_prompt_tokens(messages)
    fast, general = twins({"reply": {"content": "ok"}})
    for engine in (fast, general):
        body = json.loads(engine.chat(request(messages), {}).body)
        assert body["usage"]["prompt_tokens"] == want
        assert body["usage"]["total_tokens"] == want + count_tokens("ok")
        streamed = engine.chat(request(messages, stream=True, stream_options={"include_usage": True}), {})
        assert streamed.writes is not None
        last = [w.data for w in streamed.writes if w.data.startswith(b"data: {")][-1]
        assert json.loads(last[len(b"data: ") :])["usage"]["prompt_tokens"] == want


def test_prompt_tokens_known_cookbook_value() -> None:
    messages = [{"role": "user", "content": "What's 1+1? Answer in one word."}]
    assert expected_prompt_tokens(messages) == 18
    engine = Engine()
    engine.add({"reply": {"content": "Two."}})
    assert json.loads(engine.chat(request(messages), {}).body)["usage"]["prompt_tokens"] == 18


def test_prompt_tokens_of_tool_calls_without_a_content_key() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [call]}]
    with_null = [messages[0], {"role": "assistant", "content": None, "tool_calls": [call]}]
    engine = Engine()
    engine.add({"reply": {"content": "ok"}})
    answered = [json.loads(engine.chat(request(m), {}).body)["usage"]["prompt_tokens"] for m in (with_null, messages)]
    assert answered == [expected_prompt_tokens(with_null)] * 2


# Literal values, worked out once and written down: the tests above build their expected ids with
# the production `Derived`, so a change to how ids derive would pass them. These pin what the wire
# carries for (seed, the first inline rule, call index): the determinism promise, on both paths.
PINNED: dict[tuple[int, int], tuple[str, int, str, str]] = {
    # (seed, call index): id, created, system_fingerprint, x-request-id
    (0, 0): (
        "chatcmpl-yefsKh3fgdRFXAJO3Unxxxgh0X8rf",
        1742662894,
        "fp_4960537bb5",
        "req_020a4c07ffcc1c19b4eb77be8d3306bd",
    ),
    (0, 1): (
        "chatcmpl-HIFAH0LjYzFHu4GiTV9oeIPfsn0fG",
        1717416158,
        "fp_4960537bb5",
        "req_e5aee35255212351cabb4a8b24858ca4",
    ),
    (987654321, 0): (
        "chatcmpl-efoPQ0YkthjL0bi0NSAGp3UZzUdPi",
        1725010451,
        "fp_c2e53d4876",
        "req_14b078321c530964c527f75bbdbbaba2",
    ),
    (987654321, 1): (
        "chatcmpl-f8vOo9ltymCTXJ0lBgK8z0Q03dWss",
        1734484190,
        "fp_c2e53d4876",
        "req_37eddd8f3799cfcb7566c1c74b2b886d",
    ),
}


@pytest.mark.parametrize("seed", [0, 987654321])
def test_ids_and_created_are_the_pinned_literals(seed: int) -> None:
    fast, general = twins({"reply": {"content": "Hello, world!"}}, seed=seed)
    assert the_rule(fast).key == "<inline>\x1f0\x1f"  # source, rule index
    for call_index in (0, 1):
        completion_id, created, fingerprint, request_id = PINNED[seed, call_index]
        for engine in (fast, general):
            answer = engine.chat(request([{"role": "user", "content": "hi"}]), {})
            body = json.loads(answer.body)
            assert (body["id"], body["created"], body["system_fingerprint"]) == (completion_id, created, fingerprint)
            assert (b"x-request-id", request_id.encode()) in answer.headers, (seed, call_index, answer.headers)
