"""The dialect layer: the route table, the fault layer every API shares, the Responses stream's
templates against plain encoding, `times` with `replies`, and what a scenario may ask of an API."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from mockllm import Engine, ScenarioError, load_text
from mockllm.dialects import DIALECTS, ENDPOINTS
from mockllm.dialects.responses import RESPONSES
from mockllm.routes import resolve

TRICKY = ["", "plain", 'quote " and \\ backslash', "line\nbreak\ttab", "日本語 😀", "\u2028\x7f", "</script>"]


def _post(engine: Engine, path: str, body: dict[str, Any]) -> Any:
    return engine.handle("POST", path, {}, json.dumps(body).encode())


def _events(answer: Any) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event of a streamed answer."""
    assert answer.writes is not None
    text = b"".join(w.data for w in answer.writes).decode()
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: "), block
        out.append((name[7:], json.loads(data[6:])))
    return out


# -- the route table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route", "params", "prefix"),
    [
        ("/v1/chat/completions", "/v1/chat/completions", {}, ""),
        ("/ns/t3/v1/responses", "/v1/responses", {}, "/ns/t3"),
        ("/v1/responses/resp_1", "/v1/responses/{response_id}", {"response_id": "resp_1"}, ""),
        ("/ns/t3/v1/responses/resp_1", "/v1/responses/{response_id}", {"response_id": "resp_1"}, "/ns/t3"),
        (
            "/openai/deployments/dep/chat/completions",
            "/openai/deployments/{deployment}/chat/completions",
            {"deployment": "dep"},
            "",
        ),
        ("/v1/models/org/model", "/v1/models/{model_id}", {"model_id": "org/model"}, ""),
        ("/base/v1/models", "/v1/models", {}, "/base"),
        # Gemini: /v1beta/ is a route's start too, under a namespace as well
        (
            "/ns/t3/v1beta/models/gemini-2.5-flash:generateContent",
            "/v1beta/models/{model}:generateContent",
            {"model": "gemini-2.5-flash"},
            "/ns/t3",
        ),
        (
            "/v1/models/gemini-2.5-flash:streamGenerateContent",
            "/v1/models/{streamed}:streamGenerateContent",
            {"streamed": "gemini-2.5-flash"},
            "",
        ),
        ("/ns/t3/v1beta/models", "/v1beta/models", {}, "/ns/t3"),
        (
            "/base/v1beta/models/gemini-2.5-flash",
            "/v1beta/models/{model_id}",
            {"model_id": "gemini-2.5-flash"},
            "/base",
        ),
        ("/v1/models/ft:gpt-4o-mini:org::x1", "/v1/models/{model_id}", {"model_id": "ft:gpt-4o-mini:org::x1"}, ""),
    ],
)
def test_the_route_table_finds_every_dialects_paths(path: str, route: str, params: dict[str, str], prefix: str) -> None:
    found = resolve(path)
    assert found is not None
    methods, got_params, got_prefix = found
    assert {target.route.path for target in methods.values()} == {route}
    assert (got_params, got_prefix) == (params, prefix)


def test_every_dialect_is_routed_and_named() -> None:
    assert ENDPOINTS == ("chat", "responses", "anthropic", "completions", "embeddings", "gemini")
    for name, dialect in DIALECTS.items():
        assert dialect.name == name
        for route in dialect.routes:
            found = resolve(route.path.replace("{", "x").replace("}", ""))
            assert found is not None and found[0][route.method].dialect is dialect
    assert resolve("/v1/audio/speech") is None  # not served: a 404


def test_unknown_paths_and_methods_get_openais_envelope() -> None:
    engine = Engine(time_scale=0)
    missing = engine.handle("POST", "/v1/audio/speech", {}, b"{}")
    assert missing.status == 404
    assert json.loads(missing.body)["error"]["message"] == "Invalid URL (POST /v1/audio/speech)"
    wrong = engine.handle("GET", "/v1/responses", {}, b"")
    assert wrong.status == 405
    assert json.loads(wrong.body)["error"]["code"] == "method_not_allowed"


# -- the Responses stream -------------------------------------------------------------------------


@pytest.mark.parametrize("text", TRICKY)
def test_responses_delta_templates_give_what_plain_encoding_gives(text: str) -> None:
    """The deltas are built from templates (the hot event); each must equal orjson's encoding of
    its own fields, as every other event is made, whatever the text holds."""
    engine = Engine(time_scale=0)
    engine.add(
        {"reply": {"chunks": [text, text + "!"], "tool_calls": [{"name": "f" + text, "arguments": {"a": text}}]}}
    )
    for obfuscation in (True, False):
        body = {"model": "m", "input": "x", "stream": True, "stream_options": {"include_obfuscation": obfuscation}}
        answer = _post(engine, "/v1/responses", body)
        raw = b"".join(w.data for w in answer.writes or ())
        datas = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
        deltas = [d for d in datas if b'.delta"' in d[:60]]
        assert len(deltas) >= 3
        for data in datas:
            assert orjson.dumps(json.loads(data)) == data
        kinds = [json.loads(d)["type"] for d in deltas]
        assert kinds[:2] == ["response.output_text.delta"] * 2
        assert set(kinds[2:]) == {"response.function_call_arguments.delta"}
        assert all(("obfuscation" in json.loads(d)) == obfuscation for d in deltas)


def test_the_plain_responses_stream_path_matches_the_general_one() -> None:
    """A stream with no fault and default framing is made as writes at once; same bytes, same times."""
    from mockllm.derive import Derived
    from mockllm.dialects.responses import ResponsesStream
    from mockllm.plan import _call
    from mockllm.router import Hit
    from mockllm.sse import frame

    replies = [
        {"content": "Hello, wörld 😀! 1+1", "timing": {"ttft_ms": 5, "chunk_ms": [1, 2]}},
        {"chunks": ["", "a", ""], "finish_reason": "length"},
        {"tool_calls": [{"name": "f", "arguments": {"x": 1}}, {"name": "g", "arguments": "{}"}]},
        {"content": "before", "tool_calls": [{"name": "f"}], "timing": {"chunk_ms": 3}},
    ]
    for spec in replies:
        for obfuscation in (True, False):
            engine = Engine(time_scale=1)
            engine.add({"reply": spec})
            body = {"model": "m", "input": "x", "stream": True, "stream_options": {"include_obfuscation": obfuscation}}
            state = engine.states["responses"]
            request = RESPONSES.parse(json.dumps(body).encode(), {}, {}, state)
            hit = engine.router.route(request)
            assert isinstance(hit, Hit)
            call = _call(hit, request, Derived(0, hit.rule.key, 0), None, 1.0, state)
            general = list(frame(ResponsesStream(call).events(), None))
            plain = list(ResponsesStream(call).plain_writes())
            assert plain == general, spec
            assert [w.at for w in plain] == [w.at for w in general]


def test_sequence_numbers_have_no_gaps_through_every_fault() -> None:
    engine = Engine(time_scale=0)
    for kind in ("error_event", "malformed", "no_done", "no_finish"):
        engine.add(
            {
                "match": {"model": kind},
                "reply": {"content": "one two three", "fault": {"kind": kind, "after_chunks": 2}},
            }
        )
    for kind in ("error_event", "no_done", "no_finish"):
        events = _events(_post(engine, "/v1/responses", {"model": kind, "input": "x", "stream": True}))
        numbers = [data["sequence_number"] for _, data in events]
        assert numbers == list(range(len(numbers))), kind
        assert all(name == data["type"] for name, data in events)
        names = [name for name, _ in events]
        if kind == "error_event":
            deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
            assert deltas == ["one", " two"]  # two chunks, then the failure
            assert names[-2:] == ["error", "response.failed"]
            assert events[-2][1]["error"]["code"] == "server_error"
            assert events[-1][1]["response"]["status"] == "failed"
        elif kind == "no_done":
            assert names[-1] == "response.output_item.done" and "response.completed" not in names
        else:
            assert not any(name.endswith(".done") for name in names)
            assert names[-1] == "response.completed"
    raw = b"".join(
        w.data
        for w in _post(engine, "/v1/responses", {"model": "malformed", "input": "x", "stream": True}).writes or ()
    )
    broken = [line for line in raw.split(b"\n") if line.startswith(b"data: ")]
    good = []
    for line in broken:
        try:
            good.append(json.loads(line[6:]))
        except ValueError:
            continue
    assert len(good) == len(broken) - 1  # one half event
    assert [d["sequence_number"] for d in good] == list(range(len(good)))  # the stream goes on, numbered
    assert good[-1]["type"] == "response.completed"


def test_a_fault_after_the_last_chunk_comes_before_the_closing_events_in_both_apis() -> None:
    engine = Engine(time_scale=0)
    engine.add({"reply": {"content": "a b", "fault": {"kind": "disconnect", "after_chunks": 9}}})
    for path, body in (
        ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}),
        ("/v1/responses", {"model": "m", "input": "x", "stream": True}),
    ):
        writes = list(_post(engine, path, body).writes or ())
        assert writes[-1].abort
        sent = b"".join(w.data for w in writes)
        assert sent.count(b'"a"') == 1 and sent.count(b'" b"') == 1  # every delta went out
        assert b"[DONE]" not in sent and b"response.completed" not in sent and b'"finish_reason":"stop"' not in sent


def test_the_non_streamed_response_is_pretty_and_kept_until_reset() -> None:
    engine = Engine(time_scale=0)
    engine.add({"reply": {"content": "hi", "usage": {"prompt_tokens": 7, "completion_tokens": 3}}})
    answer = _post(engine, "/v1/responses", {"model": "m", "input": "x", "instructions": "be brief"})
    body = json.loads(answer.body)
    assert answer.body == orjson.dumps(body, option=orjson.OPT_INDENT_2)
    assert body["instructions"] == "be brief" and body["status"] == "completed"
    assert body["usage"]["input_tokens"] == 7 and body["usage"]["total_tokens"] == 10
    fetched = engine.handle("GET", f"/v1/responses/{body['id']}", {}, b"")
    assert (fetched.status, json.loads(fetched.body)) == (200, body)
    engine.reset()
    assert engine.handle("GET", f"/v1/responses/{body['id']}", {}, b"").status == 404
    unstored = _post(engine, "/v1/responses", {"model": "m", "input": "x", "store": False})
    assert engine.handle("GET", f"/v1/responses/{json.loads(unstored.body)['id']}", {}, b"").status == 404


def test_the_store_is_bounded() -> None:
    engine = Engine(time_scale=0)
    engine.add({"reply": {"content": "hi"}})
    store = engine.states["responses"]
    store.limit = 3
    ids = [json.loads(_post(engine, "/v1/responses", {"model": "m", "input": "x"}).body)["id"] for _ in range(5)]
    assert [store.get(i) is not None for i in ids] == [False, False, True, True, True]
    assert store.history(ids[0]) is None and store.history(ids[-1]) is not None


# -- rules ----------------------------------------------------------------------------------------


def test_times_with_replies_plays_them_round_after_round() -> None:
    engine = Engine(time_scale=0)
    engine.add({"times": 5, "replies": [{"content": "a"}, {"content": "b"}]})
    engine.add({"name": "once", "match": {"model": "once"}, "replies": [{"content": "c"}, {"content": "d"}]})
    ask = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    got = [json.loads(engine.chat(json.dumps(ask).encode(), {}).body) for _ in range(6)]
    assert [g["choices"][0]["message"]["content"] for g in got[:5]] == ["a", "b", "a", "b", "a"]
    assert "times: already served 5 of 5 call(s)" in got[5]["error"]["message"]
    once = {**ask, "model": "once"}
    texts = [engine.chat(json.dumps(once).encode(), {}) for _ in range(3)]
    assert [t.status for t in texts] == [200, 200, 418]
    assert "replies: already served 2 of 2 call(s)" in json.loads(texts[2].body)["error"]["message"]


def test_one_rule_answers_every_api_and_endpoint_limits_it() -> None:
    engine = Engine(time_scale=0)
    engine.add(
        {
            "name": "both",
            "match": {"endpoint": ["chat", "responses"], "user": {"contains": "both"}},
            "reply": {"content": "B"},
        }
    )
    engine.add({"name": "any", "match": {"user": {"contains": "any"}}, "reply": {"content": "A"}})
    engine.add({"name": "chat", "match": {"endpoint": "chat"}, "reply": {"content": "C"}})
    for text, want in (("both", "B"), ("any", "A")):
        chat = json.loads(
            _post(engine, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}).body
        )
        responses = json.loads(_post(engine, "/v1/responses", {"model": "m", "input": text}).body)
        assert chat["choices"][0]["message"]["content"] == want
        assert responses["output"][0]["content"][0]["text"] == want
    missed = _post(engine, "/v1/responses", {"model": "m", "input": "other"})
    assert missed.status == 418
    assert json.loads(missed.body)["error"]["message"].startswith("mockllm: no rule matched this responses request")
    assert engine.journal.last.endpoint == "responses"


def test_a_fault_an_api_cannot_send_is_refused_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RESPONSES, "fault_kinds", frozenset({"disconnect"}))
    text = "version: 1\nrules:\n  - match: {endpoint: responses}\n    reply:\n      content: hi\n      fault: {kind: stall}\n"  # noqa: E501
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "api.yaml")
    assert str(caught.value) == "api.yaml:6: rules[0].reply.fault: the responses API cannot send the fault 'stall'"
    load_text(text.replace("{endpoint: responses}", "{}"), "any.yaml")  # every API: sent where it can be


def test_instructions_are_the_system_text_and_a_chain_is_history() -> None:
    engine = Engine(time_scale=0)
    engine.add({"name": "sys", "match": {"system": {"equals": "be brief"}}, "reply": {"content": "brief"}})
    engine.add({"name": "user", "match": {"user": {"equals": "first"}}, "reply": {"content": "again"}})
    first = json.loads(
        _post(engine, "/v1/responses", {"model": "m", "input": "first", "instructions": "be brief"}).body
    )
    assert first["output"][0]["content"][0]["text"] == "brief"
    follow = _post(
        engine,
        "/v1/responses",
        {
            "model": "m",
            "input": [{"type": "function_call_output", "call_id": "c", "output": "1"}],
            "previous_response_id": first["id"],
        },
    )
    followed = json.loads(follow.body)
    assert followed["output"][0]["content"][0]["text"] == "again"  # instructions are not carried, the user text is
    assert followed["usage"]["input_tokens"] > first["usage"]["input_tokens"]  # the history counts
    unknown = _post(engine, "/v1/responses", {"model": "m", "input": "x", "previous_response_id": "resp_nope"})
    assert unknown.status == 404
    assert json.loads(unknown.body)["error"]["code"] == "previous_response_not_found"


@pytest.mark.parametrize(
    "reply",
    [
        {"content": "Hello! How can I help you today?"},
        {"content": 'quote " \\ 日本語 😀\n', "usage": {"prompt_tokens": 3}},
        {"chunks": ["", "a"], "finish_reason": "length", "model": "gpt-x"},
        {"content": "slow", "timing": {"ttft_ms": 40, "chunk_ms": 5}},
        {"content": "", "finish_reason": "content_filter", "usage": {"completion_tokens": 9}},
    ],
)
def test_the_compiled_responses_body_is_the_general_paths(reply: dict[str, Any]) -> None:
    """A text reply to a request of only model and input takes the body compiled at load: the same
    bytes, headers, delay and stored response as the general path gives."""
    import dataclasses

    fast, general = Engine(time_scale=1, seed=3), Engine(time_scale=1, seed=3)
    fast.add({"reply": reply})
    general.add({"reply": reply})
    (script,) = general.router.rules[0].replies
    assert script.compiled["responses"] is not None
    general.router._rules = [
        dataclasses.replace(
            rule,
            replies=tuple(dataclasses.replace(s, compiled={**s.compiled, "responses": None}) for s in rule.replies),
        )
        for rule in general.router._rules
    ]
    for model in ("gpt-4o-mini", 'a "model" \\ 日本'):
        for _ in range(2):
            body = {"model": model, "input": [{"role": "user", "content": "hi there"}]}
            a, b = _post(fast, "/v1/responses", body), _post(general, "/v1/responses", body)
            assert (a.status, a.headers, a.body, a.delay, a.writes) == (b.status, b.headers, b.body, b.delay, b.writes)
            rid = json.loads(a.body)["id"]
            assert fast.handle("GET", f"/v1/responses/{rid}", {}, b"").body == a.body
            assert fast.states["responses"].history(rid) == general.states["responses"].history(rid)
    # anything beyond model and input, or a stream, takes the general path (nothing compiled is wrong then)
    extra = _post(fast, "/v1/responses", {"model": "m", "input": "x", "instructions": "be brief"})
    assert json.loads(extra.body)["instructions"] == "be brief"


@pytest.mark.parametrize("text", [*TRICKY, "What's 1+1? Answer in one word."])
def test_the_usual_responses_request_parses_as_the_general_path_does(text: str) -> None:
    from mockllm.dialects.responses import ResponseStore, _parse, parse_responses

    body = {"model": "gpt-4o-mini", "input": text}
    fast = parse_responses(json.dumps(body).encode(), {}, ResponseStore())
    general = _parse(body, body["model"], {}, ResponseStore())
    assert fast == general
