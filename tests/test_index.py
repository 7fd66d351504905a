"""`match.body` (fields of the request's JSON body, equal as JSON) and the index that looks such rules
up (mockllm/index.py): the index must change how fast a rule is found, never which one.
"""

from __future__ import annotations

import json
import random
from typing import Any

import openai
import pytest

import mockllm.index
from mockllm import Engine, Hit, Router, load_mapping
from mockllm.dialects import DIALECTS

CHAT = DIALECTS["chat"]


def _parse(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return CHAT.parse(json.dumps(body).encode(), headers or {}, {}, CHAT.new_state())


def test_body_fields_match_as_json(serve) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    served = serve(
        {
            "version": 1,
            "rules": [
                {
                    "name": "exact",
                    "match": {"body": {"messages": messages, "temperature": 0.5}},
                    "reply": {"content": "a"},
                },
                {"name": "one", "match": {"body": {"n": 1}}, "reply": {"content": "b"}},
            ],
        }
    )
    client = openai.OpenAI(base_url=served.base_url, api_key="t", max_retries=0)
    assert (
        client.chat.completions.create(model="m", messages=messages, temperature=0.5).choices[0].message.content == "a"
    )
    assert client.chat.completions.create(model="m", messages=messages, n=1).choices[0].message.content == "b"
    # JSON equality: 1.0 is not 1, and a field the body lacks never matches.
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi!"}], temperature=0.5)
    message = caught.value.response.json()["error"]["message"]
    assert "body.messages: messages[0].content is 'Hi!', the rule says 'Hi'" in message
    assert "body.n: the request has no 'n'" in message


def _random_rules(rng: random.Random, count: int) -> dict[str, Any]:
    rules = []
    for n in range(count):
        rule: dict[str, Any] = {
            "name": f"r{n}",
            "reply": {"content": f"r{n}"},
            "priority": rng.choice([0, 0, 0, 1, -1]),
        }
        match: dict[str, Any] = {}
        kind = rng.random()
        if kind < 0.7:
            match["body"] = {"messages": [{"role": "user", "content": f"q{rng.randrange(12)}"}]}
            if rng.random() < 0.3:
                match["body"]["temperature"] = rng.choice([0, 0.5])
        elif kind < 0.85:
            match["user"] = {"contains": f"q{rng.randrange(12)}"}
        if rng.random() < 0.3:
            match["model"] = rng.choice(["a", "b*"])
        if rng.random() < 0.2:
            rule["times"] = rng.randrange(1, 3)
        if rng.random() < 0.1:
            rule["sequence"] = "conversation"
            rule["times"] = 1
        rule["match"] = match
        rules.append(rule)
    return {"version": 1, "rules": rules}


def _requests(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        body: dict[str, Any] = {
            "model": rng.choice(["a", "bb", "c"]),
            "messages": [{"role": "user", "content": f"q{rng.randrange(14)}"}],
        }
        if rng.random() < 0.4:
            body["temperature"] = rng.choice([0, 0.5, 1])
        out.append(body)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_the_index_picks_the_rule_the_scan_picks(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    rules = load_mapping(_random_rules(rng, 120), "random.yaml").rules
    indexed = Router(rules)
    assert indexed._index is not None
    monkeypatch.setattr(mockllm.index, "_WORTH_IT", 10**9)
    scanned = Router(rules)
    assert scanned._index is None
    for body in _requests(rng, 400):
        one, other = indexed.route(_parse(body)), scanned.route(_parse(body))
        assert type(one) is type(other)
        if isinstance(one, Hit):
            assert isinstance(other, Hit)
            assert (one.rule.name, one.call_index, one.reply) == (other.rule.name, other.call_index, other.reply)
        else:
            assert one.explain() == other.explain()  # type: ignore[union-attr]
    assert [indexed.calls(r) for r in rules] == [scanned.calls(r) for r in rules]


def test_a_recording_of_ten_thousand_rules_answers_each_request(serve) -> None:
    rules = [
        {
            "name": f"exchange-{n}",
            "match": {"body": {"messages": [{"role": "user", "content": f"Q{n}"}]}},
            "reply": {"content": f"A{n}"},
        }
        for n in range(10_000)
    ]
    engine = Engine()
    engine.add({"version": 1, "rules": rules})
    assert engine.router._index is not None and not engine.router._index.scanned
    served = serve()
    served.engine.use(load_mapping({"version": 1, "rules": rules}, "recording.yaml"))
    client = openai.OpenAI(base_url=served.base_url, api_key="t", max_retries=0)
    for n in (0, 4_999, 9_999):
        answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"Q{n}"}])
        assert answer.choices[0].message.content == f"A{n}"
