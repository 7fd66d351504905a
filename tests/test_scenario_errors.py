"""Loading scenarios: every problem reported as `file:line: key: what was expected`, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockllm import Engine, ScenarioError, load, load_mapping, load_text


def error_of(text: str, source: str = "bad.yaml") -> str:
    with pytest.raises(ScenarioError) as info:
        load_text(text, source)
    return str(info.value)


def test_issue_example_exact_form(tmp_path: Path) -> None:
    text = """\
version: 1
rules:
  - reply: {content: hi}
  - name: slow
    reply:
      timing: {ttft_ms: fast}
      content: x
"""
    assert error_of(text) == "bad.yaml:6: rules[1].reply.timing.ttft_ms: expected a number, got 'fast'"
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert str(info.value) == f"{path}:6: rules[1].reply.timing.ttft_ms: expected a number, got 'fast'"
    (problem,) = info.value.problems
    assert (problem.source, problem.line, problem.key) == (str(path), 6, "rules[1].reply.timing.ttft_ms")


CASES: list[tuple[str, str, str]] = [
    (
        "unknown-reply-key",
        "version: 1\nrules:\n  - reply:\n      contnet: hi\n",
        "bad.yaml:4: rules[0].reply.contnet: unknown key (did you mean 'content'?); expected one of: content, chunks,",
    ),
    (
        "unknown-match-key",
        "version: 1\nrules:\n  - match: {usr: {contains: x}}\n    reply: {content: hi}\n",
        "bad.yaml:3: rules[0].match.usr: unknown key (did you mean 'user'?); expected one of: endpoint, model, stream",
    ),
    (
        "unknown-key-far-from-any",
        "version: 1\nrules:\n  - reply: {content: hi, colour: red}\n",
        "bad.yaml:3: rules[0].reply.colour: unknown key; expected one of: content,",
    ),
    (
        "unknown-top-key",
        "version: 1\nrule:\n  - reply: {content: hi}\n",
        "bad.yaml:2: rule: unknown key (did you mean 'rules'?)",
    ),
    (
        "duplicate-key",
        "version: 1\nrules:\n  - name: a\n    name: b\n    reply: {content: hi}\n",
        "bad.yaml:4: rules[0].name: duplicate key",
    ),
    ("invalid-yaml", "version: 1\nrules:\n  - reply:\n    content: [\n", "bad.yaml:5: invalid YAML: "),
    ("tab-indent", "version: 1\nrules:\n\t- reply: {content: hi}\n", "bad.yaml:3: invalid YAML: found character '\\t'"),
    ("empty-file", "", "bad.yaml:1: expected a mapping with 'version: 1' and 'rules', got an empty file"),
    (
        "comments-only",
        "# nothing here\n",
        "bad.yaml:1: expected a mapping with 'version: 1' and 'rules', got an empty file",
    ),
    ("a-list", "- a\n- b\n", "bad.yaml:1: expected a mapping with 'version: 1' and 'rules', got a list"),
    ("missing-version", "rules:\n  - reply: {content: hi}\n", "bad.yaml:1: version: required key is missing"),
    ("version-2", "version: 2\nrules:\n  - reply: {content: hi}\n", "bad.yaml:1: version: expected 1, got 2"),
    ("no-rules", "version: 1\nrules: []\n", "bad.yaml:2: rules: expected at least 1 item(s)"),
    (
        "reply-and-replies",
        "version: 1\nrules:\n  - reply: {content: hi}\n    replies: [{content: a}]\n",
        "bad.yaml:3: rules[0]: expected either reply or replies",
    ),
    ("neither-reply", "version: 1\nrules:\n  - name: x\n", "bad.yaml:3: rules[0]: expected either reply or replies"),
    (
        "no-body",
        "version: 1\nrules:\n  - reply: {finish_reason: stop}\n",
        "bad.yaml:3: rules[0].reply: a reply needs one of content, chunks, generate, refusal, tool_calls, choices, "
        "sse, error, vectors",
    ),
    (
        "two-bodies",
        "version: 1\nrules:\n  - reply: {content: hi, chunks: [a]}\n",
        "bad.yaml:3: rules[0].reply: expected one of content, chunks, generate, refusal, sse, error; "
        "got content and chunks",
    ),
    (
        "bad-regex",
        'version: 1\nrules:\n  - match: {user: {regex: "(unclosed"}}\n    reply: {content: hi}\n',
        "bad.yaml:3: rules[0].match.user: regex '(unclosed' does not compile",
    ),
    (
        "two-text-conditions",
        'version: 1\nrules:\n  - match: {user: {regex: "a", contains: b}}\n    reply: {content: hi}\n',
        "bad.yaml:3: rules[0].match.user: expected exactly one of equals, contains, regex",
    ),
    (
        "stream-not-bool",
        "version: 1\nrules:\n  - match: {stream: maybe}\n    reply: {content: hi}\n",
        "bad.yaml:3: rules[0].match.stream: expected true or false, got 'maybe'",
    ),
    (
        "model-list",
        "version: 1\nrules:\n  - match: {model: [a, b]}\n    reply: {content: hi}\n",
        "bad.yaml:3: rules[0].match.model: expected text, got ['a', 'b']",
    ),
    (
        "bad-finish-reason",
        "version: 1\nrules:\n  - reply: {content: hi, finish_reason: done}\n",
        "bad.yaml:3: rules[0].reply.finish_reason: expected 'stop', 'length', 'tool_calls', 'content_filter' or "
        "'function_call', got 'done'",
    ),
    (
        "times-zero",
        "version: 1\nrules:\n  - times: 0\n    reply: {content: hi}\n",
        "bad.yaml:3: rules[0].times: expected a number >= 1, got 0",
    ),
    (
        "negative-usage",
        "version: 1\nrules:\n  - reply: {content: hi, usage: {prompt_tokens: -1}}\n",
        "bad.yaml:3: rules[0].reply.usage.prompt_tokens: expected a number >= 0, got -1",
    ),
    (
        "tool-call-without-name",
        "version: 1\nrules:\n  - reply: {tool_calls: [{arguments: {a: 1}}]}\n",
        "bad.yaml:3: rules[0].reply.tool_calls[0].name: required key is missing",
    ),
    (
        "bad-item-in-replies",
        "version: 1\nrules:\n  - replies:\n      - content: a\n      - contnt: b\n",
        "bad.yaml:5: rules[0].replies[1].contnt: unknown key (did you mean 'content'?)",
    ),
    (
        "empty-replies",
        "version: 1\nrules:\n  - replies: []\n",
        "bad.yaml:3: rules[0].replies: expected at least 1 item(s)",
    ),
    (
        "unknown-endpoint",
        "version: 1\nrules:\n  - match: {endpoint: images}\n    reply: {content: hi}\n",
        "bad.yaml:3: rules[0].match.endpoint: unknown endpoint 'images'; known: chat, responses, anthropic,"
        " completions, embeddings",
    ),
    (
        "status-418-reserved",
        "version: 1\nrules:\n  - reply: {error: {status: 418}}\n",
        "bad.yaml:3: rules[0].reply.error.status: 418 is reserved for 'no rule matched'",
    ),
    (
        "generate-zero",
        "version: 1\nrules:\n  - reply: {generate: {sentences: 0}}\n",
        "bad.yaml:3: rules[0].reply.generate.sentences: expected a number >= 1, got 0",
    ),
    (
        "content-not-text",
        "version: 1\nrules:\n  - reply: {content: hi}\n  - reply: {content: 5}\n",
        "bad.yaml:4: rules[1].reply.content: expected text, got 5",
    ),
    (
        "error-in-defaults",
        "version: 1\ndefaults:\n  timing: {chunk_ms: slow}\nrules:\n  - reply: {content: hi}\n",
        "bad.yaml:3: defaults.timing.chunk_ms: expected a number, got 'slow'",
    ),
    (
        "defaults-seed-not-int",
        "version: 1\ndefaults: {seed: abc}\nrules:\n  - reply: {content: hi}\n",
        "bad.yaml:2: defaults.seed: expected a whole number, got 'abc'",
    ),
    (
        "unknown-key-in-defaults",
        "version: 1\ndefaults:\n  modle: gpt-4o\nrules:\n  - reply: {content: hi}\n",
        "bad.yaml:3: defaults.modle: unknown key (did you mean 'model'?)",
    ),
    (
        "defaults-give-no-body",
        "version: 1\ndefaults:\n  usage: {prompt_tokens: 5}\nrules:\n  - reply: {finish_reason: length}\n",
        "bad.yaml:5: rules[0].reply: a reply needs one of content",
    ),
    (
        "an-id-as-a-default",
        "version: 1\ndefaults:\n  id: resp_1\nrules:\n  - reply: {content: hi}\n",
        "bad.yaml:2: defaults: id cannot be a default: every answer would have the same id",
    ),
    (
        "an-id-that-needs-escaping",
        "version: 1\nrules:\n  - reply: {content: hi, id: 'say \"hi\"'}\n",
        "bad.yaml:3: rules[0].reply.id: String should match pattern",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_scenario(text: str, expected: str) -> None:
    message = error_of(text)
    assert any(line.startswith(expected) for line in message.splitlines()), message
    assert "Traceback" not in message


def test_every_problem_is_listed() -> None:
    text = "version: 1\nrules:\n  - reply: {content: hi, colour: red}\n  - reply: {content: 5}\n"
    with pytest.raises(ScenarioError) as info:
        load_text(text, "bad.yaml")
    assert [(p.line, p.key) for p in info.value.problems] == [
        (3, "rules[0].reply.colour"),
        (4, "rules[1].reply.content"),
    ]
    assert str(info.value).count("\n") == 1


def test_defaults_merged_into_every_rule(serve) -> None:
    scenario = {
        "version": 1,
        "defaults": {
            "seed": 7,
            "model": "gpt-4o-2024-08-06",
            "usage": {"prompt_tokens": 11},
            "content": "default text",
            "finish_reason": "length",
        },
        "rules": [
            {"name": "own-body", "match": {"user": {"equals": "a"}}, "reply": {"chunks": ["x", "y"]}},
            {
                "name": "own-model",
                "match": {"user": {"equals": "b"}},
                "reply": {"model": "other", "finish_reason": "stop"},
            },
            {"name": "all-defaults", "reply": {}},
        ],
    }
    served = serve(scenario)

    def ask(text: str) -> dict[str, Any]:
        r = httpx.post(
            served.base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": text}]},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    a, b, c = ask("a"), ask("b"), ask("c")
    assert a["choices"][0]["message"]["content"] == "xy"  # the rule's body replaces the defaults' one
    assert (a["model"], a["choices"][0]["finish_reason"], a["usage"]["prompt_tokens"]) == (
        "gpt-4o-2024-08-06",
        "length",
        11,
    )
    assert b["choices"][0]["message"]["content"] == "default text"
    assert (b["model"], b["choices"][0]["finish_reason"]) == ("other", "stop")
    assert c["choices"][0]["message"]["content"] == "default text"
    assert all(rule.seed == 7 for rule in served.engine.router.rules)


def test_defaults_timing_merges_key_by_key() -> None:
    scenario = load_mapping(
        {
            "version": 1,
            "defaults": {"timing": {"ttft_ms": 100, "chunk_ms": 20, "jitter_ms": 3}},
            "rules": [
                {"reply": {"content": "a", "timing": {"chunk_ms": 5}}},
                {"reply": {"content": "b", "timing": {"total_ms": 1000}}},
                {"reply": {"content": "c", "timing": {"preset": "slow"}}},
            ],
        }
    )
    first, second, third = (rule.replies[0].schedule for rule in scenario.rules)
    assert (first.ttft_ms, first.chunk_ms, first.jitter_ms) == (100, 5, 3)
    assert (second.ttft_ms, second.total_ms) == (100, 1000)
    assert third.ttft_ms == 2000  # a preset replaces the defaults' timing whole


def test_inline_mapping_errors_name_their_source() -> None:
    engine = Engine()
    with pytest.raises(ScenarioError) as info:
        engine.add({"reply": {"contnet": "x"}}, source="my_test.py")
    assert str(info.value).startswith("my_test.py: rules[0].reply.contnet: unknown key (did you mean 'content'?)")
    assert engine.router.rules == []  # nothing half-loaded


def test_folder_loads_recursively_in_path_order(tmp_path: Path, serve) -> None:
    def rule(name: str) -> str:
        return f"version: 1\nrules:\n  - name: {name}\n    reply: {{content: {name}}}\n"

    (tmp_path / "b.yaml").write_text(rule("from-b"))
    (tmp_path / "a.yml").write_text(rule("from-a"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "0.yaml").write_text(rule("from-sub"))
    (tmp_path / "notes.txt").write_text("not a scenario: ignored")
    (tmp_path / "data.json").write_text("{}")
    scenarios = load(tmp_path)
    assert [Path(s.source).relative_to(tmp_path).as_posix() for s in scenarios] == ["a.yml", "b.yaml", "sub/0.yaml"]
    served = serve(tmp_path)
    assert [r.name for r in served.engine.router.rules] == ["from-a", "from-b", "from-sub"]
    r = httpx.post(
        served.base_url + "/chat/completions", json={"model": "m", "messages": [{"role": "user"}]}, timeout=10
    )
    assert r.json()["choices"][0]["message"]["content"] == "from-a"  # equal priority: the first in path order
    assert served.engine.router.rules[0].origin == f"{tmp_path / 'a.yml'}:3"


def test_folder_reports_the_bad_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("version: 1\nrules:\n  - reply: {content: ok}\n")
    (tmp_path / "b.yaml").write_text("version: 1\nrules:\n  - reply: {content: [1]}\n")
    with pytest.raises(ScenarioError) as info:
        load(tmp_path)
    assert str(info.value) == f"{tmp_path / 'b.yaml'}:3: rules[0].reply.content: expected text, got [1]"


def test_empty_folder_missing_path_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load(tmp_path)
    assert str(info.value) == f"{tmp_path}: no *.yaml or *.yml scenario files in this folder"
    with pytest.raises(ScenarioError) as info:
        load(tmp_path / "missing.yaml")
    assert str(info.value) == f"{tmp_path / 'missing.yaml'}: no such file or folder"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\nrules:\n  - reply: {content: caf\xe9}\n")
    with pytest.raises(ScenarioError) as info:
        load(latin)
    assert str(info.value).startswith(f"{latin}: cannot read: ")


def test_rule_origin_and_default_name(tmp_path: Path) -> None:
    path = tmp_path / "named.yaml"
    path.write_text("version: 1\nrules:\n  - reply: {content: a}\n\n  - name: second\n    reply: {content: b}\n")
    (scenario,) = load(path)
    assert [(r.name, r.origin) for r in scenario.rules] == [
        ("named.yaml:rules[0]", f"{path}:3"),
        ("second", f"{path}:5"),
    ]


def test_yaml_anchors_and_unicode_load(tmp_path: Path) -> None:
    text = """\
version: 1
rules:
  - name: first
    reply: &shared
      content: "Grüße 🌍"
      usage: {prompt_tokens: 1}
  - name: second
    reply: *shared
"""
    scenario = load_text(text)
    assert [r.replies[0].content for r in scenario.rules] == ["Grüße 🌍", "Grüße 🌍"]


def test_loader_results_are_json_safe() -> None:
    # arguments given as a mapping become compact JSON text once, at load time
    scenario = load_text("version: 1\nrules:\n  - reply: {tool_calls: [{name: f, arguments: {b: 1, a: [x]}}]}\n")
    (tool,) = scenario.rules[0].replies[0].tools
    assert json.loads(tool.arguments) == {"b": 1, "a": ["x"]}
    assert "".join(tool.fragments) == tool.arguments and len(tool.fragments) > 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"Retry After": "1"', "'Retry After' is not an HTTP header name"),
        ('X-Price: "5 €"', "the value of X-Price ('5 €') has a character an HTTP header cannot carry"),
        ('X-Split: "a\\r\\nb"', "the value of X-Split ('a\\r\\nb') has a character an HTTP header cannot carry"),
    ],
)
def test_error_headers_must_be_sendable(header: str, expected: str) -> None:
    """A header HTTP cannot carry is refused at load, not as a 500 when the rule first answers."""
    text = f"version: 1\nrules:\n  - reply:\n      error:\n        status: 429\n        headers:\n          {header}\n"
    message = error_of(text)
    assert message.startswith("bad.yaml:6: rules[0].reply.error.headers: "), message
    assert expected in message


def test_latin1_error_header_is_sent(serve: Any) -> None:
    served = serve({"reply": {"error": {"status": 429, "headers": {"X-Note": "café"}}}})
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(f"{served.base_url}/chat/completions", json=body)
    assert response.status_code == 429
    assert response.headers["x-note"] == "café"  # httpx decodes header values as Latin-1
