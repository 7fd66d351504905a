"""The bundled scenarios: each loads, each is exercised by some test, and the folder served whole behaves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import openai
import pytest
from helpers import ROOT, SCENARIOS, asking, bundled_rules

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


# -- the Gemini API: every bundled rule that names no other API answers it, in its own wire format ------

GEMINI_RULES = bundled_rules("gemini")


def _gemini_chunks(raw: bytes) -> list[str]:
    """The data of each event, whatever the line endings (a rule's `framing` may set its own)."""
    events = [e for e in re.split(r"\r?\n\r?\n", raw.decode()) if e.strip()]
    assert all(e.startswith("data: ") for e in events), events  # no `event:` line, no comment
    return [e[len("data: ") :] for e in events]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(("file", "rule"), GEMINI_RULES, ids=[str(r["name"]) for _, r in GEMINI_RULES])
def test_every_bundled_rule_answers_gemini(serve, file: str, rule: dict[str, object], stream: bool) -> None:
    served = serve(SCENARIOS)
    model, text = asking(rule, "gemini-2.5-flash")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    url = f"{served.base_url[: -len('/v1')]}/v1beta/models/{model}:{method}"
    first: dict[str, object] = rule.get("reply") or rule["replies"][0]  # type: ignore[assignment, index]
    error: dict[str, object] = first.get("error")  # type: ignore[assignment]
    fault: dict[str, object] = first.get("fault") or {}  # type: ignore[assignment]
    ask = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if fault.get("kind") in ("disconnect", "stall"):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadTimeout)):
            httpx.post(url, json=ask, timeout=1)
        assert served.journal.last.rule == rule["name"]
        return
    response = httpx.post(url, json=ask, timeout=10)
    assert served.journal.last.rule == rule["name"], (file, served.journal.last.error)
    if error is not None:
        assert response.status_code == error["status"]
        body = response.json()["error"]  # google.rpc Status (shared/dialects.md section 3, "Errors")
        assert body["code"] == error["status"] and body["status"].isupper() and body["message"]
        return
    assert response.status_code == 200, response.content
    if not stream:
        (candidate,) = response.json()["candidates"]
        assert candidate["content"]["parts"] and candidate["finishReason"] in ("STOP", "MAX_TOKENS", "SAFETY")
        return
    datas = _gemini_chunks(response.content)
    if fault.get("kind") == "malformed":
        bad = [d for d in datas if not _is_json(d)]
        assert len(bad) == 1, datas
        datas = [d for d in datas if _is_json(d)]
    chunks = [json.loads(d) for d in datas]
    if fault.get("kind") == "error_event":
        assert set(chunks[-1]) == {"error"} and chunks[-1]["error"]["status"] == "UNAVAILABLE"
        chunks = chunks[:-1]
    assert chunks and all(c["candidates"][0]["content"]["parts"] for c in chunks)
    finishes = [c["candidates"][0].get("finishReason") for c in chunks]
    if fault.get("kind") not in ("error_event", "no_finish"):
        assert finishes[-1] in ("STOP", "MAX_TOKENS", "SAFETY") and not any(finishes[:-1])
    else:
        assert not any(finishes)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_the_bundled_folder_through_google_genai(serve) -> None:
    genai = pytest.importorskip("google.genai")
    served = serve(SCENARIOS)
    options = genai.types.HttpOptions(base_url=served.base_url[: -len("/v1")])
    client = genai.Client(api_key="test", http_options=options)
    one = client.models.generate_content(model="gemini-2.5-flash", contents="What's 1+1? Answer in one word.")
    assert one.text == "Two." and served.journal.last.rule == "one-plus-one"
    generated = client.models.generate_content(model="gemini-2.5-flash", contents="Tell me a story.")
    assert generated.text and len(re.findall(r"[.!?]", generated.text)) >= 3  # three generated sentences
    assert served.journal.last.rule == "generated-text"
    streamed = "".join(c.text for c in client.models.generate_content_stream(model="g", contents="Tell me a story."))
    assert streamed and served.journal.last.rule == "generated-text"
    with pytest.raises(genai.errors.ClientError) as raised:
        client.models.generate_content(model="error-429", contents="x")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
