"""The bundled scenarios: each loads, each is exercised by some test, and the folder served whole behaves."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import openai
import pytest
from helpers import ROOT, SCENARIOS

from mockllm import bundled_scenarios, load

TESTS = ROOT / "tests"
FILES = sorted(p for p in SCENARIOS.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
ORDINARY_MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo", "o3-mini", "gpt-4.1-nano", "claude-3-5-sonnet"]


def rel(path: Path) -> str:
    return path.relative_to(SCENARIOS).as_posix()


def test_bundled_scenarios_is_the_scenarios_folder() -> None:
    assert bundled_scenarios().resolve() == SCENARIOS.resolve()
    assert {"default.yaml", "cookbook.yaml"} <= {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[rel(p) for p in FILES])
def test_every_bundled_file_loads(path: Path) -> None:
    (scenario,) = load(path)
    assert scenario.rules
    assert all(not rule.name.startswith(f"{path.name}:rules[") for rule in scenario.rules), (
        "bundled rules should have a name: it is what users see in the journal and in diagnostics"
    )


def test_every_bundled_file_is_named_by_a_test() -> None:
    """A coverage guard: a scenario shipped to users must be exercised by at least one test file.

    A test names a file by its relative path ("edge-cases/refusal.yaml"), its file name
    ("refusal.yaml"), or its stem as a string literal ("refusal", for tests that build the path).
    """
    texts = [p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py")]
    missing = []
    for path in FILES:
        wanted = {rel(path), path.name, f'"{path.stem}"', f"'{path.stem}'"}
        if not any(name in text for text in texts for name in wanted):
            missing.append(rel(path))
    assert not missing, f"bundled scenarios that no file under tests/ names: {missing}"


def test_bundled_rule_names_are_unique() -> None:
    names = [rule.name for scenario in load(SCENARIOS) for rule in scenario.rules]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_default_catch_all_answers_any_request(serve) -> None:
    served = serve(SCENARIOS)
    client = openai.OpenAI(base_url=served.base_url, api_key="test")
    requests = [
        [{"role": "user", "content": "Tell me about the weather."}],
        [{"role": "system", "content": "Only a system message."}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        [{"role": "developer", "content": "dev"}, {"role": "user", "content": [{"type": "text", "text": "parts"}]}],
        [{"role": "tool", "content": "42", "tool_call_id": "call_1"}],
    ]
    for model in ORDINARY_MODELS:
        for messages in requests:
            done = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
            text = done.choices[0].message.content
            assert text and len(re.findall(r"[.!?]", text)) >= 3, text  # three generated sentences
            assert done.model == model
            assert served.journal.last.rule == "generated-text", (model, messages)
    with client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream please"}], stream=True
    ) as stream:
        streamed = "".join(c.choices[0].delta.content or "" for c in stream)
    assert streamed and served.journal.last.rule == "generated-text"


def test_default_generated_text_is_deterministic(serve) -> None:
    def texts(served: object) -> list[str]:
        client = openai.OpenAI(base_url=served.base_url, api_key="test")  # type: ignore[attr-defined]
        return [
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}])
            .choices[0]
            .message.content
            or ""
            for i in range(3)
        ]

    first, second = texts(serve(SCENARIOS)), texts(serve(SCENARIOS))
    assert first == second
    assert len(set(first)) == 3  # each call generates anew, in the same order every time
    other_seed = texts(serve(SCENARIOS, seed=1))
    assert other_seed != first


def test_default_yaml_alone(serve) -> None:
    served = serve(SCENARIOS / "default.yaml")
    r = httpx.post(
        served.base_url + "/chat/completions",
        json={"model": "anything", "messages": [{"role": "user", "content": "What's 1+1? Answer in one word."}]},
        timeout=10,
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] != "Two."  # no cookbook: the catch-all answers
    assert served.journal.last.rule == "generated-text"


def test_cookbook_rules_win_over_the_catch_all(serve) -> None:
    served = serve(SCENARIOS)
    client = openai.OpenAI(base_url=served.base_url, api_key="test")
    for model in ORDINARY_MODELS:
        one = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}]
        )
        assert one.choices[0].message.content == "Two."
        assert served.journal.last.rule == "one-plus-one"
        count = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Please COUNT TO 100 for me"}]
        )
        assert count.choices[0].message.content == ", ".join(str(n) for n in range(1, 101))
        assert served.journal.last.rule == "count-to-100"


def test_cookbook_yaml_alone_leaves_other_requests_unmatched(serve) -> None:
    served = serve(SCENARIOS / "cookbook.yaml")
    client = openai.OpenAI(base_url=served.base_url, api_key="test")
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    assert info.value.status_code == 418
    assert "one-plus-one (" in str(info.value.body) and "count-to-100 (" in str(info.value.body)


def test_models_list_of_the_bundled_folder(serve) -> None:
    served = serve(SCENARIOS)
    ids = [m.id for m in openai.OpenAI(base_url=served.base_url, api_key="test").models.list()]
    assert ids[0] == "gpt-4o-mini"
    assert len(ids) == len(set(ids))
    literal = {
        rule.match.model
        for scenario in load(SCENARIOS)
        for rule in scenario.rules
        if rule.match.model and not any(ch in rule.match.model for ch in "*?[")
    }
    assert literal <= set(ids)
