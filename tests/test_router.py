"""Routing: which rule answers, and what an unmatched request is told (418, no retry, why)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import openai
import pytest

from mockllm import NO_MATCH_STATUS, Engine, Hit, Miss
from mockllm.dialects.chat import parse_chat

RULES = {
    "rules": [
        {
            "name": "weather",
            "match": {"model": "gpt-4o*", "stream": True, "user": {"contains": "weather"}},
            "reply": {"content": "Sunny."},
        },
        {"name": "system-pirate", "match": {"system": {"regex": "(?i)pirate"}}, "reply": {"content": "Arr."}},
        {"name": "vip", "match": {"headers": {"X-Tier": "vip"}}, "reply": {"content": "Welcome."}},
    ]
}


def client(served: Any, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", **kwargs)


def test_unmatched_is_418_with_explanation_and_no_retry(serve) -> None:
    served = serve(RULES)
    c = client(served, max_retries=2)
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="o3-mini", messages=[{"role": "user", "content": "Tell me a joke"}])
    err = info.value
    assert err.status_code == NO_MATCH_STATUS == 418
    assert err.code == "no_rule_matched"
    assert err.response.headers["x-should-retry"] == "false"
    assert re.fullmatch(r"req_[0-9a-f]{32}", err.response.headers["x-request-id"])
    message = err.body["message"]  # type: ignore[index]
    assert "no rule matched this chat request" in message
    assert "model='o3-mini'" in message and "stream=false" in message and "user='Tell me a joke'" in message
    assert "nearest rules (of 3)" in message
    assert "model: 'o3-mini' does not match 'gpt-4o*'" in message
    assert "stream: wanted true, got false" in message
    assert "user: 'Tell me a joke' does not contain 'weather'" in message
    assert "system: no system message" in message
    assert "header X-Tier: wanted 'vip', got missing" in message
    assert "    - weather (<inline>): " in message  # each rule named with its origin
    assert len(served.journal) == 1  # max_retries=2, yet a single attempt
    entry = served.journal.last
    assert (entry.status, entry.rule, entry.matched) == (418, None, False)
    assert entry.error == message
    assert served.journal.unmatched == [entry]


def test_unmatched_stream_raises_at_create_and_is_not_retried(serve) -> None:
    served = serve(RULES)
    with pytest.raises(openai.APIStatusError) as info:
        client(served, max_retries=3).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True
        )
    assert info.value.status_code == 418
    assert "stream=true" in info.value.body["message"]
    assert len(served.journal) == 1


def test_unmatched_async_not_retried(serve) -> None:
    served = serve(RULES)

    async def main() -> int:
        async with openai.AsyncOpenAI(base_url=served.base_url, api_key="test", max_retries=2) as c:
            try:
                await c.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
            except openai.APIStatusError as exc:
                return exc.status_code
        return 0

    assert asyncio.run(main()) == 418
    assert len(served.journal) == 1


def test_nearest_rules_come_first(serve) -> None:
    served = serve(RULES)
    r = httpx.post(
        served.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}], "stream": False},
    )
    assert r.status_code == 418
    lines = r.json()["error"]["message"].splitlines()
    rules = [line.strip() for line in lines if line.strip().startswith("- ")]
    # "weather" misses one condition (stream), the others miss one too; file order among equals
    assert rules[0].startswith("- weather (") and rules[0].endswith("stream: wanted true, got false")
    assert r.json()["error"]["type"] == "mockllm_error"
    assert r.json()["error"]["param"] is None


def test_no_rules_loaded(serve) -> None:
    served = serve()
    r = httpx.post(served.base_url + "/chat/completions", json={"model": "m", "messages": [{"role": "user"}]})
    assert r.status_code == 418
    assert "no rules are loaded" in r.json()["error"]["message"]
    assert "user=''" in r.json()["error"]["message"]  # a user message without content


def test_long_user_text_is_clipped_in_explanation(serve) -> None:
    served = serve(RULES)
    text = "word " * 100
    r = httpx.post(
        served.base_url + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    message = r.json()["error"]["message"]
    assert "..." in message and text not in message


def test_replies_exhausted_explained(serve) -> None:
    served = serve({"name": "once", "replies": [{"content": "only"}]})
    c = client(served)
    assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}]).choices[0].message.content
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
    assert (
        "once (" in info.value.body["message"]
        and "replies: already served 1 of 1 call(s)" in info.value.body["message"]
    )


def test_times_exhausted_explained(serve) -> None:
    served = serve({"name": "limited", "times": 1, "reply": {"content": "x"}})
    c = client(served)
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
    with pytest.raises(openai.APIStatusError) as info:
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "a"}])
    assert "times: already served 1 of 1 call(s)" in info.value.body["message"]


def test_times_and_replies_together(serve) -> None:
    served = serve({"times": 2, "replies": [{"content": "a"}, {"content": "b"}, {"content": "c"}]})
    c = client(served)
    got = [c.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}]) for _ in range(2)]
    assert [g.choices[0].message.content for g in got] == ["a", "b"]
    with pytest.raises(openai.APIStatusError):
        c.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}])


def test_rules_added_later_come_after_with_equal_priority(serve) -> None:
    served = serve({"name": "first", "reply": {"content": "first"}})
    served.engine.add({"name": "second", "reply": {"content": "second"}})
    served.engine.add({"name": "urgent", "priority": 1, "reply": {"content": "urgent"}})
    c = client(served)
    assert c.chat.completions.create(model="m", messages=[{"role": "user", "content": "q"}]).choices[
        0
    ].message.content == ("urgent")
    assert [r.name for r in served.engine.router.rules] == ["urgent", "first", "second"]


def test_router_directly() -> None:
    engine = Engine(time_scale=0)
    engine.add(RULES)
    request = parse_chat(
        b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"weather in Oslo"}]}', {}
    )
    hit = engine.router.route(request)
    assert isinstance(hit, Hit) and hit.rule.name == "weather" and hit.call_index == 0
    again = engine.router.route(request)
    assert isinstance(again, Hit) and again.call_index == 1
    assert engine.router.calls(hit.rule) == 2
    assert [r.name for r in engine.router.unused()] == ["system-pirate", "vip"]
    other = parse_chat(b'{"model":"x","messages":[{"role":"user","content":"hi"}]}', {"x-tier": "gold"})
    miss = engine.router.route(other)
    assert isinstance(miss, Miss)
    assert "header X-Tier: wanted 'vip', got 'gold'" in miss.explain()
    vip = parse_chat(b'{"model":"x","messages":[{"role":"user","content":"hi"}]}', {"x-tier": "vip"})
    assert isinstance(engine.router.route(vip), Hit)


def test_unfinished_sequences() -> None:
    engine = Engine(time_scale=0)
    engine.add({"name": "seq", "replies": [{"content": "a"}, {"content": "b"}]})
    request = parse_chat(b'{"model":"x","messages":[{"role":"user","content":"hi"}]}', {})
    assert [r.name for r in engine.router.unfinished()] == ["seq"]
    engine.router.route(request)
    engine.router.route(request)
    assert engine.router.unfinished() == []


def test_a_journal_with_a_limit_keeps_the_newest_entries() -> None:
    from mockllm import Engine

    engine = Engine(time_scale=0, journal_limit=2)
    engine.add({"reply": {"content": "ok"}})
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    for _ in range(5):
        assert engine.chat(body, {}).status == 200
    assert len(engine.journal) == 2
    assert [entry.index for entry in engine.journal] == [3, 4]
    assert engine.journal.last.index == 4
    assert engine.journal[0:1][0].index == 3


def test_the_fast_match_and_the_explanation_agree() -> None:
    """A rule is taken exactly when it has no reason not to match (the router checks twice)."""
    from mockllm import Engine

    engine = Engine(time_scale=0)
    engine.add(
        {
            "rules": [
                {"name": "a", "match": {"model": "gpt-4*", "stream": True}, "reply": {"content": "a"}},
                {
                    "name": "b",
                    "match": {"user": {"regex": "^b"}, "headers": {"X-Team": "b"}},
                    "reply": {"content": "b"},
                },
                {"name": "c", "match": {"system": {"equals": "sys"}}, "times": 1, "reply": {"content": "c"}},
            ]
        }
    )
    cases = [
        ({"model": "gpt-4o", "stream": True}, {}, "a"),
        ({"model": "gpt-3.5", "stream": True}, {}, None),
        ({"model": "x"}, {"x-team": "b"}, "b"),
        ({"model": "x"}, {"x-team": "c"}, None),
        ({"model": "x", "system": "sys"}, {}, "c"),
        ({"model": "x", "system": "sys"}, {}, None),  # c served its one call
    ]
    for fields, headers, wanted in cases:
        messages = [{"role": "system", "content": fields.get("system", "-")}, {"role": "user", "content": "b-question"}]
        body = {"model": fields["model"], "messages": messages, "stream": fields.get("stream", False)}
        answer = engine.chat(json.dumps(body).encode(), headers)
        entry = engine.journal.last
        assert entry.rule == wanted, (fields, entry.error)
        if wanted is None:
            assert answer.status == 418 and "nearest rules (of 3)" in (entry.error or "")


def test_request_headers_read_like_a_dict() -> None:
    from mockllm.app import RequestHeaders

    headers = RequestHeaders([(b"x-team", b"search"), (b"accept", b"*/*"), (b"x-note", b"caf\xe9")])
    assert headers["x-team"] == "search" and headers.get("nope") is None and headers.get("nope", "-") == "-"
    assert "accept" in headers and "nope" not in headers and len(headers) == 3
    assert headers == {"x-team": "search", "accept": "*/*", "x-note": "café"} == dict(headers)
    assert headers == RequestHeaders([(b"x-team", b"search"), (b"accept", b"*/*"), (b"x-note", b"caf\xe9")])
    assert list(headers) == ["x-team", "accept", "x-note"] and "x-team" in repr(headers)
    with pytest.raises(KeyError):
        headers["nope"]
