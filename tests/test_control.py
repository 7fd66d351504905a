"""The control API (mockllm/control.py): every route of /_mockllm, for the default engine and per namespace,
against the real server and real clients; Router.remove (its index kept right); the journal's writes."""

from __future__ import annotations

import contextlib
import functools
import json
import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

import mockllm.index
from mockllm import Engine, Hit, Router, __version__, load_mapping
from mockllm.app import create_app
from mockllm.dialects import DIALECTS, ENDPOINTS
from mockllm.server import BackgroundServer
from mockllm.transport import transport

CHAT = DIALECTS["chat"]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    method: str, url: str, body: bytes | str | dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request with the standard library: status, headers (lower-case), and the body (JSON when it is)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _NO_PROXY.open(request, timeout=10) as response:
            status, got, raw = response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, dict(exc.headers.items()), exc.read()
        exc.close()
    got = {k.lower(): v for k, v in got.items()}
    return status, got, json.loads(raw) if got.get("content-type", "").startswith("application/json") else raw


RULES = {
    "version": 1,
    "rules": [
        {"name": "hello", "match": {"user": {"contains": "hello"}}, "reply": {"content": "Hi."}},
        {
            "name": "steps",
            "match": {"user": {"contains": "step"}},
            "replies": [{"content": "one"}, {"content": "two"}],
        },
        {
            "name": "talk",
            "match": {"user": {"contains": "talk"}},
            "sequence": "conversation",
            "replies": [{"content": "a"}],
        },
        {"name": "spare", "optional": True, "priority": 3, "match": {"model": "never"}, "reply": {"content": "-"}},
        {
            "name": "streamed",
            "match": {"user": {"contains": "stream"}},
            "reply": {"chunks": ["x", "y", "z"], "timing": {"ttft_ms": 0, "chunk_ms": 0}},
        },
    ],
}


@pytest.fixture(scope="module")
def own() -> Iterator[BackgroundServer]:
    """A server of this module's own, for the default engine's routes (the session's is shared)."""
    engine = Engine(time_scale=0)
    engine.add(RULES, "rules.yaml")
    with BackgroundServer(engine) as server:
        yield server


@pytest.fixture
def fresh(own: BackgroundServer) -> BackgroundServer:
    own.engine.reset()
    return own


@functools.cache
def client_of(base_url: str) -> openai.OpenAI:
    """One client per URL: making one (its SSL context) costs more than the requests of a test."""
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)


def ask(base_url: str, text: str, **kwargs: Any) -> Any:
    client = client_of(base_url)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **kwargs)


def said(base_url: str, text: str) -> str | None:
    return ask(base_url, text).choices[0].message.content  # type: ignore[no-any-return]


# -- health, version, rules ------------------------------------------------------------------


def test_health_and_version(fresh: BackgroundServer) -> None:
    status, headers, body = call("GET", f"{fresh.url}/_mockllm/health")
    assert (status, body) == (200, {"status": "ok"})
    assert headers["content-type"] == "application/json"
    status, _, body = call("GET", f"{fresh.url}/_mockllm/version")
    assert (status, body) == (200, {"version": __version__, "apis": list(ENDPOINTS)})


def test_rules_in_rule_order_with_their_counts(fresh: BackgroundServer) -> None:
    base = f"{fresh.url}/v1"
    assert said(base, "hello") == "Hi."
    assert said(base, "step 1") == "one"
    assert said(base, "talk") == "a"
    status, _, body = call("GET", f"{fresh.url}/_mockllm/rules")
    assert status == 200
    rules = {rule["name"]: rule for rule in body["rules"]}
    assert [rule["name"] for rule in body["rules"]] == ["spare", "hello", "steps", "talk", "streamed"]  # priority first
    assert rules["hello"] == {
        "name": "hello",
        "origin": "rules.yaml",
        "calls": 1,
        "capacity": None,
        "left": None,
        "optional": False,
        "priority": 0,
        "sequence": "server",
    }
    assert (rules["steps"]["calls"], rules["steps"]["capacity"], rules["steps"]["left"]) == (1, 2, 1)
    # Per conversation: the capacity is each conversation's, so nothing is "left" over all of them.
    assert (rules["talk"]["sequence"], rules["talk"]["capacity"], rules["talk"]["left"]) == ("conversation", 1, None)
    assert (rules["spare"]["optional"], rules["spare"]["priority"], rules["spare"]["calls"]) == (True, 3, 0)


# -- adding and removing rules ---------------------------------------------------------------


def test_a_yaml_rule_added_answers_the_openai_sdk(serve) -> None:
    served = serve()
    control = f"{served.server.url}/_mockllm/ns/{served.name}"
    rule = "name: added\nmatch:\n  user: {contains: weather}\nreply:\n  content: Sunny.\n"
    status, _, body = call("POST", f"{control}/rules", rule, {"content-type": "application/yaml"})
    assert (status, body) == (201, {"added": ["added"]})
    assert said(served.base_url, "the weather?") == "Sunny."
    _, _, listed = call("GET", f"{control}/rules")
    assert [(r["name"], r["origin"], r["calls"]) for r in listed["rules"]] == [("added", "<control>:1", 1)]


def test_json_rules_a_scenario_and_a_list(serve) -> None:
    served = serve()
    control = f"{served.server.url}/_mockllm/ns/{served.name}"
    one = {"name": "j", "match": {"user": {"contains": "json"}}, "reply": {"content": "from JSON"}}
    assert call("POST", f"{control}/rules", one)[:3:2] == (201, {"added": ["j"]})
    scenario = {"rules": [{"name": "s1", "reply": {"content": "s"}, "match": {"model": "s-*"}}]}
    assert call("POST", f"{control}/rules", scenario)[:3:2] == (201, {"added": ["s1"]})
    listed = '[{"name": "l1", "reply": {"content": "l"}}, {"name": "l2", "reply": {"content": "m"}}]'
    assert call("POST", f"{control}/rules", listed)[:3:2] == (201, {"added": ["l1", "l2"]})
    assert said(served.base_url, "json please") == "from JSON"
    assert said(served.base_url, "anything") == "l"  # after j; s1 wants another model


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "name: bad\nmatch: {user: {contains: x}}\nreply:\n  contnet: Hi\n",
            "<control>:4: reply.contnet: unknown key (did you mean 'content'?)",
        ),
        ('{"name": "bad",\n "reply": {"content": "x"},\n "tiems": 2}', "<control>:3: tiems: unknown key"),
        (
            "rules:\n  - name: a\n    reply: {content: x}\n  - reply: {conten: y}\n",
            "<control>:4: rules[1].reply.conten",
        ),
        ("name: a\nreply: [unclosed\n", "<control>:2: invalid YAML"),
        ("reply: {}\n", "<control>:1: reply: a reply needs one of"),
        ("", "<control>: the body is empty"),
        ("- 1\n- 2\n", "<control>:1: rules[0]"),
    ],
)
def test_a_bad_rule_is_400_with_the_loaders_file_line_message(serve, body: str, message: str) -> None:
    served = serve({"version": 1, "rules": [{"name": "kept", "reply": {"content": "still here"}}]})
    status, _, answer = call("POST", f"{served.server.url}/_mockllm/ns/{served.name}/rules", body)
    assert status == 400, answer
    assert answer["error"]["code"] == "bad_rule"
    assert answer["error"]["message"].startswith(message), answer["error"]["message"]
    assert [rule.name for rule in served.engine.router.rules] == ["kept"]  # nothing half-added
    assert said(served.base_url, "x") == "still here"


def test_remove_by_name_then_routing_falls_through(serve) -> None:
    served = serve(RULES)
    control = f"{served.server.url}/_mockllm/ns/{served.name}"
    call("POST", f"{control}/rules", {"name": "hello", "priority": -1, "reply": {"content": "fallback"}})
    assert said(served.base_url, "hello") == "Hi."
    status, _, body = call("DELETE", f"{control}/rules/hello")
    assert (status, body) == (200, {"removed": ["hello", "hello"]})  # both rules of that name
    status, _, body = call("DELETE", f"{control}/rules/hello")
    assert status == 404 and body["error"]["code"] == "unknown_rule" and "'steps'" in body["error"]["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        ask(served.base_url, "hello")
    assert caught.value.status_code == 418
    assert said(served.base_url, "step") == "one"  # the others keep their counts and order


def test_a_name_with_slashes_and_spaces_is_removed(serve) -> None:
    served = serve()
    control = f"{served.server.url}/_mockllm/ns/{served.name}"
    call("POST", f"{control}/rules", {"name": "a/b c", "reply": {"content": "x"}})
    status, _, body = call("DELETE", f"{control}/rules/a%2Fb%20c")
    assert (status, body) == (200, {"removed": ["a/b c"]})


def test_remove_through_the_index(serve) -> None:
    """32 body rules: the router looks them up in its index, whose positions removal must keep right."""
    rules = [
        {"name": f"q{n}", "match": {"body": {"messages": [{"role": "user", "content": f"q{n % 16}"}]}}, "reply": {}}
        for n in range(32)
    ]
    for n, rule in enumerate(rules):
        rule["reply"] = {"content": f"answer {n}"}
    rules.insert(0, {"name": "other", "match": {"user": {"contains": "zz"}}, "reply": {"content": "zz"}})
    served = serve({"version": 1, "rules": rules})
    assert served.engine.router._index is not None
    control = f"{served.server.url}/_mockllm/ns/{served.name}"
    assert said(served.base_url, "q3") == "answer 3"
    assert call("DELETE", f"{control}/rules/q3")[0] == 200
    assert served.engine.router._index is not None
    assert said(served.base_url, "q3") == "answer 19"  # the next rule naming that body
    for name in ("q0", "other", "q20"):
        assert call("DELETE", f"{control}/rules/{name}")[0] == 200
    assert said(served.base_url, "q0") == "answer 16"
    assert said(served.base_url, "q4") == "answer 4"
    assert said(served.base_url, "q15") == "answer 15"
    with pytest.raises(openai.APIStatusError):
        ask(served.base_url, "zz")


def _random_rules(rng: random.Random, count: int) -> dict[str, Any]:
    rules = []
    for n in range(count):
        match: dict[str, Any] = {}
        if rng.random() < 0.7:
            match["body"] = {"messages": [{"role": "user", "content": f"q{rng.randrange(10)}"}]}
        elif rng.random() < 0.5:
            match["user"] = {"contains": f"q{rng.randrange(10)}"}
        rule: dict[str, Any] = {"name": f"r{n % 40}", "match": match, "reply": {"content": f"{n}"}}
        rule["priority"] = rng.choice([0, 0, 1, -1])
        if rng.random() < 0.3:
            rule["times"] = rng.randrange(1, 3)
        if rng.random() < 0.1:
            rule["sequence"], rule["times"] = "conversation", 1
        rules.append(rule)
    return {"version": 1, "rules": rules}


def _request(rng: random.Random) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": f"q{rng.randrange(12)}"}]}
    return CHAT.parse(json.dumps(body).encode(), {}, {}, CHAT.new_state())


@pytest.mark.parametrize("seed", range(4))
def test_router_remove_keeps_the_index_equal_to_the_scan(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    rules = load_mapping(_random_rules(rng, 120), "random.yaml").rules
    indexed = Router(rules)
    monkeypatch.setattr(mockllm.index, "_WORTH_IT", 10**9)
    scanned = Router(rules)
    monkeypatch.undo()
    assert indexed._index is not None and scanned._index is None

    def same(rounds: int) -> None:
        for _ in range(rounds):
            request = _request(rng)
            one, other = indexed.route(request), scanned.route(request)
            assert type(one) is type(other)
            if isinstance(one, Hit) and isinstance(other, Hit):
                assert (one.rule.key, one.call_index) == (other.rule.key, other.call_index)

    same(150)
    before = {rule.key: indexed.calls(rule) for rule in rules}
    for name in ("r3", "r17", "r39", "r0"):
        removed = indexed.remove(name)
        assert removed == scanned.remove(name) and removed and all(rule.name == name for rule in removed)
    assert indexed.remove("r3") == []
    assert {rule.name for rule in indexed.rules}.isdisjoint({"r3", "r17", "r39", "r0"})
    assert {r.key: n for r, n in indexed.counts()} == {r.key: before[r.key] for r in indexed.rules}
    # The index still holds positions of the rules as they stand (rebuilt, or gone below its threshold).
    fresh = Router(indexed.rules)
    assert (indexed._index is None) == (fresh._index is None)
    if indexed._index is not None and fresh._index is not None:
        assert (indexed._index.scanned, indexed._index.groups) == (fresh._index.scanned, fresh._index.groups)
    same(300)
    assert [n for _, n in indexed.counts()] == [n for _, n in scanned.counts()]


# -- the journal -------------------------------------------------------------------------------


def test_journal_entries_as_json(fresh: BackgroundServer) -> None:
    base = f"{fresh.url}/v1"
    client = openai.OpenAI(base_url=base, api_key="sk-secret", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "stream it"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "xyz"
    status, _, body = call("GET", f"{fresh.url}/_mockllm/journal")
    assert status == 200 and body["next"] == 2
    whole, streamed = body["entries"]
    assert whole["index"] == 0 and whole["endpoint"] == "chat" and whole["method"] == "POST"
    assert (whole["path"], whole["status"], whole["rule"], whole["origin"]) == (
        "/v1/chat/completions",
        200,
        "hello",
        "rules.yaml",
    )
    assert (whole["call_index"], whole["stream"], whole["user_text"], whole["error"]) == (0, False, "hello", None)
    assert whole["request"]["messages"] == [{"role": "user", "content": "hello"}]
    assert whole["headers"]["authorization"] == "[redacted]" and "sk-secret" not in json.dumps(body)
    assert whole["headers"]["content-type"] == "application/json"
    assert fresh.engine.journal[0].arrived <= whole["arrived"] + 1e-6 and whole["arrived"] > 1.7e9
    (write,) = whole["writes"]  # a whole answer: its body, at its delay
    assert (write["at"], write["sent"]) == (0.0, None)
    assert json.loads(write["text"])["choices"][0]["message"]["content"] == "Hi."
    assert write["size"] == len(fresh.engine.journal[0].body and fresh.engine.journal[0].writes[0][1])
    assert (whole["aborted"], whole["raised"], whole["backoff"]) == (False, False, None)
    assert streamed["stream"] is True and len(streamed["writes"]) == len(fresh.engine.journal[1].sent) > 3
    assert all(isinstance(w["sent"], float) and w["at"] == 0.0 for w in streamed["writes"])
    assert "".join(w["text"] for w in streamed["writes"]).endswith("data: [DONE]\n\n")
    # When each answer ended: a whole one at its delay, a stream after its last write.
    assert whole["ended"] == 0.0
    assert streamed["ended"] >= streamed["writes"][-1]["sent"] >= 0  # (uvloop's clock: 0.0 within its first ms)


def test_journal_filters_and_next(fresh: BackgroundServer) -> None:
    base = f"{fresh.url}/v1"
    for text in ("hello", "step", "hello", "nothing matches"):
        with contextlib.suppress(openai.APIStatusError):
            said(base, text)
    journal = f"{fresh.url}/_mockllm/journal"

    def indexes(query: str) -> list[int]:
        status, _, body = call("GET", f"{journal}?{query}")
        assert status == 200 and body["next"] == 4, body
        return [entry["index"] for entry in body["entries"]]

    assert indexes("") == [0, 1, 2, 3]
    assert indexes("rule=hello") == [0, 2]
    assert indexes("status=418") == [3]
    assert indexes("endpoint=chat&limit=2") == [2, 3]
    assert indexes("endpoint=responses") == []
    assert indexes("since=2") == [2, 3]
    assert indexes("since=4") == []
    assert indexes("limit=0") == []
    assert indexes("rule=hello&since=1&limit=5") == [2]
    _, _, body = call("GET", f"{journal}?status=418")
    assert body["entries"][0]["error"].startswith("mockllm: no rule matched this chat request")
    assert body["entries"][0]["origin"] is None
    for query, word in (("limit=x", "limit='x'"), ("limit=-1", "negative"), ("rulee=a", "unknown journal filter")):
        status, _, body = call("GET", f"{journal}?{query}")
        assert status == 400 and body["error"]["code"] == "bad_filter" and word in body["error"]["message"]


def test_the_in_process_transport_journals_its_writes() -> None:
    engine = Engine(time_scale=0)
    engine.add(RULES)
    client = openai.OpenAI(
        base_url="http://mockllm.invalid/v1", api_key="t", http_client=httpx.Client(transport=transport(engine))
    )
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
    list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "stream"}], stream=True))
    whole, streamed = engine.journal
    assert [json.loads(data)["choices"][0]["message"]["content"] for _, data, _ in whole.writes] == ["Hi."]
    assert whole.sent == [] and whole.to_json()["writes"][0]["sent"] is None
    assert len(streamed.writes) == len(streamed.sent) > 3
    assert b"".join(data for _, data, _ in streamed.writes).endswith(b"data: [DONE]\n\n")
    assert whole.ended is not None and streamed.ended is not None and streamed.ended >= streamed.sent[-1]


# -- reset -------------------------------------------------------------------------------------


def test_reset_sequences_journal_and_all(serve) -> None:
    served = serve(RULES)
    control = f"{served.server.url}/_mockllm/ns/{served.name}"
    assert said(served.base_url, "step") == "one"
    assert call("POST", f"{control}/reset", {"what": "sequences"})[::2] == (200, {"reset": "sequences"})
    assert said(served.base_url, "step") == "one"  # started over
    assert len(served.engine.journal) == 2  # the journal kept
    assert call("POST", f"{control}/reset", {"what": "journal"})[::2] == (200, {"reset": "journal"})
    assert call("GET", f"{control}/journal")[2] == {"entries": [], "next": 0}
    assert said(served.base_url, "step") == "two"  # the sequence kept
    assert call("POST", f"{control}/reset")[::2] == (200, {"reset": "all"})  # no body: all
    assert len(served.engine.journal) == 0 and said(served.base_url, "step") == "one"
    for bad in ({"what": "rules"}, "not json", {"what": "all", "also": 1}):
        status, _, body = call("POST", f"{control}/reset", bad)
        assert status == 400 and body["error"]["code"] == "bad_reset"


# -- namespaces, unknown routes, methods, and the provider routes around them ------------------


def test_each_namespace_has_its_own_control_routes(serve) -> None:
    first, second = serve(RULES), serve()
    said(first.base_url, "hello")
    url = first.server.url
    assert call("GET", f"{url}/_mockllm/ns/{first.name}/journal")[2]["next"] == 1
    assert call("GET", f"{url}/_mockllm/ns/{second.name}/journal")[2] == {"entries": [], "next": 0}
    assert call("GET", f"{url}/_mockllm/ns/{second.name}/rules")[2] == {"rules": []}
    assert call("GET", f"{url}/_mockllm/ns/{second.name}/health")[2] == {"status": "ok"}
    status, _, body = call("GET", f"{url}/_mockllm/ns/nobody-here/rules")
    assert (status, body["error"]["code"]) == (404, "unknown_namespace")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/_mockllm/nope", 404, "unknown_route"),
        ("GET", "/_mockllm/rules/extra/parts", 405, "method_not_allowed"),  # rules/{name} takes DELETE
        ("PUT", "/_mockllm/journal", 405, "method_not_allowed"),
        ("POST", "/_mockllm/health", 405, "method_not_allowed"),
        ("DELETE", "/_mockllm/rules", 405, "method_not_allowed"),
        ("GET", "/_mockllm/reset", 405, "method_not_allowed"),
        ("GET", "/_mockllm/v1/chat/completions", 404, "unknown_route"),  # no provider route under the prefix
        ("POST", "/_mockllm/ns/x/v1/chat/completions", 404, "unknown_namespace"),
        ("GET", "/_mockllm/inspector/no-such-file.js", 404, "unknown_file"),
    ],
)
def test_unknown_control_routes_and_methods(
    fresh: BackgroundServer, method: str, path: str, status: int, code: str
) -> None:
    got, headers, body = call(method, fresh.url + path, b"" if method in ("POST", "PUT") else None)
    assert (got, body["error"]["code"]) == (status, code), body
    if status == 405:
        assert headers["allow"] in ("GET", "DELETE", "POST", "GET, POST")


def test_provider_paths_are_unaffected(fresh: BackgroundServer) -> None:
    assert said(f"{fresh.url}/v1", "hello") == "Hi."
    status, _, body = call("GET", f"{fresh.url}/_mockllmx")  # not the prefix: the provider's own 404
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    status, _, body = call("GET", f"{fresh.url}/v1/models")
    assert status == 200 and body["object"] == "list"
    assert call("GET", f"{fresh.url}/_mockllm/journal")[2]["next"] == 1  # the listing is not journaled


def test_the_inspector_page_and_files() -> None:
    from mockllm.inspector import page  # the inspector's own module (another part of issue 16)

    with BackgroundServer(Engine()) as server:
        for path, name in (("/_mockllm/", ""), ("/_mockllm", ""), ("/_mockllm/inspector/inspector.js", "inspector.js")):
            status, headers, body = call("GET", server.url + path)
            expected = page(name)
            assert expected is not None
            assert (status, headers["content-type"], body) == (200, expected[1], expected[0])
        assert call("GET", f"{server.url}/_mockllm/ns/nobody/")[0] == 404


def test_starlettes_routing_serves_the_control_routes_too() -> None:
    """With middleware (or a root_path) the app's fast path steps aside: starlette's routes answer the same."""
    engine = Engine(time_scale=0)
    engine.add(RULES)
    app = create_app(engine, {})
    app.add_middleware(_PassThrough)

    async def run() -> list[tuple[int, Any]]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await client.post(
                "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hello"}]}
            )
            out = []
            for method, path, body in (
                ("GET", "/_mockllm/health", None),
                ("GET", "/_mockllm/journal?limit=1", None),
                ("POST", "/_mockllm/rules", b"name: late\nreply: {content: late}\n"),
                ("DELETE", "/_mockllm/rules/late", None),
                ("GET", "/_mockllm/nope", None),
                ("GET", "/_mockllm", None),
            ):
                response = await client.request(method, path, content=body)
                is_json = response.headers["content-type"] == "application/json"
                out.append((response.status_code, response.json() if is_json else response.text[:15]))
            return out

    import asyncio

    got = asyncio.run(run())
    assert got[0] == (200, {"status": "ok"})
    assert got[1][0] == 200 and got[1][1]["entries"][0]["rule"] == "hello" and got[1][1]["next"] == 1
    assert got[2:4] == [(201, {"added": ["late"]}), (200, {"removed": ["late"]})]
    assert got[4][0] == 404 and got[4][1]["error"]["code"] == "unknown_route"
    assert got[5] == (200, "<!doctype html>")


class _PassThrough:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
