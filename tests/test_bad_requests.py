"""Bad requests get OpenAI's error envelope (400/404/405), and nothing a client sends makes a 500."""

from __future__ import annotations

import json
import random
from typing import Any

import httpx
import openai
import pytest

USER = [{"role": "user", "content": "hi"}]
RULES = {
    "rules": [
        {"name": "sanity", "match": {"user": {"equals": "sanity"}}, "reply": {"content": "still fine"}},
        {"name": "fuzz", "match": {"model": "fuzz-*"}, "reply": {"content": "fuzzed but valid"}},
    ]
}


def envelope(r: httpx.Response) -> dict[str, Any]:
    """The error object, after checking the envelope has exactly OpenAI's four fields."""
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


def post_raw(served: Any, content: bytes, **kwargs: Any) -> httpx.Response:
    return httpx.post(served.base_url + "/chat/completions", content=content, timeout=10, **kwargs)


BAD_BODIES: list[tuple[str, bytes, str | None, str | None, str]] = [
    # (id, body, param, code, a part of the message)
    ("not-json", b"model=gpt-4o&messages=hi", None, None, "could not parse the JSON body"),
    ("empty-body", b"", None, None, "could not parse the JSON body"),
    ("truncated-json", b'{"model": "gpt-4o", "messages": [', None, None, "could not parse the JSON body"),
    ("invalid-utf8", b'{"model": "gpt-4o\xff", "messages": []}', None, None, "could not parse the JSON body"),
    ("lone-surrogate", b'{"model":"m","messages":[{"role":"user","content":"\\ud800"}]}', None, None, "JSON body"),
    ("too-deep", b"[" * 100_000 + b"]" * 100_000, None, None, "could not parse the JSON body"),
    ("array-body", b'[{"model": "gpt-4o"}]', None, "invalid_type", "expected an object, but got an array"),
    ("null-body", b"null", None, "invalid_type", "expected an object"),
    ("missing-model", json.dumps({"messages": USER}).encode(), "model", "missing_required_parameter", "model"),
    ("model-number", json.dumps({"model": 4, "messages": USER}).encode(), "model", "invalid_type", "a string"),
    ("model-null", json.dumps({"model": None, "messages": USER}).encode(), "model", "missing_required_parameter", ""),
    ("missing-messages", b'{"model": "gpt-4o"}', "messages", "missing_required_parameter", "'messages'"),
    ("messages-string", b'{"model": "gpt-4o", "messages": "hi"}', "messages", "invalid_type", "an array"),
    ("messages-object", b'{"model": "gpt-4o", "messages": {"role": "user"}}', "messages", "invalid_type", "array"),
    ("messages-empty", b'{"model": "gpt-4o", "messages": []}', "messages", "empty_array", "empty array"),
    ("message-string", b'{"model": "m", "messages": ["hi"]}', "messages[0]", "invalid_type", "an object"),
    (
        "message-no-role",
        b'{"model": "m", "messages": [{"role": "user", "content": "a"}, {"content": "b"}]}',
        "messages[1].role",
        "missing_required_parameter",
        "messages[1].role",
    ),
    ("bad-role", b'{"model": "m", "messages": [{"role": "robot"}]}', "messages[0].role", "invalid_value", "robot"),
    ("role-number", b'{"model": "m", "messages": [{"role": 1}]}', "messages[0].role", "invalid_value", "Supported"),
    (
        "content-number",
        b'{"model": "m", "messages": [{"role": "user", "content": 5}]}',
        "messages[0].content",
        "invalid_type",
        "content",
    ),
    ("stream-string", b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}', "stream", "invalid_type", ""),
    ("stream-number", b'{"model": "m", "messages": [{"role": "user"}], "stream": 1}', "stream", "invalid_type", ""),
    (
        "stream-options-without-stream",
        b'{"model": "m", "messages": [{"role": "user"}], "stream_options": {"include_usage": true}}',
        "stream_options",
        "invalid_value",
        "only allowed when 'stream' is enabled",
    ),
    (
        "stream-options-not-object",
        b'{"model": "m", "messages": [{"role": "user"}], "stream": true, "stream_options": [1]}',
        "stream_options",
        "invalid_type",
        "",
    ),
]


@pytest.mark.parametrize(
    ("body", "param", "code", "words"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_bad_body_gets_400_envelope(serve, body: bytes, param: str | None, code: str | None, words: str) -> None:
    served = serve(RULES)
    r = post_raw(served, body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    error = envelope(r)
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert words in error["message"]
    assert r.headers["x-request-id"].startswith("req_")
    entry = served.journal.last
    assert (entry.status, entry.rule, entry.error) == (400, None, error["message"])
    assert entry.body == body


def test_valid_escapes_still_work(serve) -> None:
    served = serve({"reply": {"content": "ok"}})
    # an escaped surrogate pair is a real character (what json.dumps sends for emoji by default)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi \U0001f600 \u00e9"}]}).encode()
    assert b"\\ud83d\\ude00" in body
    r = post_raw(served, body)
    assert r.status_code == 200
    assert served.journal.last.json["messages"][0]["content"] == "hi \U0001f600 \u00e9"


def test_sdk_raises_bad_request(serve) -> None:
    served = serve(RULES)
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=2)
    attempts: list[dict[str, Any]] = [
        {"model": "gpt-4o", "messages": []},
        {"model": 123, "messages": USER},
        {"model": "gpt-4o", "messages": [{"content": "no role"}]},
        {"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]},
        {"model": "gpt-4o", "messages": USER, "stream_options": {"include_usage": True}},
        {"model": "gpt-4o", "messages": "hello"},
    ]
    for kwargs in attempts:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(**kwargs)
        assert info.value.status_code == 400
        assert info.value.type == "invalid_request_error"
    assert len(served.journal) == len(attempts)  # a 400 is never retried
    with pytest.raises(openai.BadRequestError) as streamed:
        client.chat.completions.create(model="gpt-4o", messages=[], stream=True)
    assert streamed.value.code == "empty_array" and streamed.value.param == "messages"


def test_unknown_paths_are_404(serve) -> None:
    served = serve(RULES)
    root = served.server.url
    for method, url in [
        ("POST", served.base_url + "/nothing"),
        ("POST", served.base_url + "/images/generations"),
        ("POST", served.base_url + "/audio/speech"),
        ("GET", root + "/"),
        ("GET", root + "/v2/models"),
        ("POST", root + "/ns/no-such-namespace/v1/chat/completions"),
        ("GET", root + "/ns/no-such-namespace/v1/models"),
    ]:
        r = httpx.request(method, url, json={"model": "m", "messages": USER}, timeout=10)
        assert r.status_code == 404, url
        assert envelope(r)["type"] == "invalid_request_error"
    client = openai.OpenAI(base_url=served.base_url, api_key="test")
    with pytest.raises(openai.NotFoundError):  # an API no dialect speaks
        client.images.generate(model="dall-e-3", prompt="hi")


def test_wrong_methods_are_405(serve) -> None:
    served = serve(RULES)
    for method, path in [("GET", "/chat/completions"), ("PUT", "/chat/completions"), ("POST", "/models")]:
        r = httpx.request(method, served.base_url + path, timeout=10)
        assert r.status_code == 405, (method, path)
        error = envelope(r)
        assert error["code"] == "method_not_allowed"
        assert method in error["message"]
    assert len(served.journal) == 0  # refused before the engine


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**70, 1.5, float("1e300")])
    if kind in (3, 4, 5):
        return "".join(rng.choice("ab \u00e9\u4e16\U0001f600\n\"\\'{}") for _ in range(rng.randrange(12)))
    if kind in (6, 7):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["role", "content", "model", "x", "name", "tool_calls"]): _random_json(rng, depth + 1)}


def _garbage(rng: random.Random, n: int) -> bytes:
    valid = {
        "model": "fuzz-model",
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    kind = n % 10
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 3000))
    if kind == 1:  # a valid body with random bytes flipped, cut or inserted
        raw = bytearray(json.dumps(valid).encode())
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(raw))
            op = rng.randrange(3)
            if op == 0:
                raw[i] = rng.randrange(256)
            elif op == 1:
                del raw[i]
            else:
                raw.insert(i, rng.randrange(256))
        return bytes(raw)
    if kind in (2, 3, 4):  # the right shape, random values
        body: dict[str, Any] = dict(valid)
        for key in rng.sample(["model", "messages", "stream", "stream_options", "tools", "n"], rng.randrange(1, 4)):
            body[key] = _random_json(rng)
        if rng.random() < 0.5:
            body["messages"] = [
                {"role": rng.choice(["user", "assistant", "tool", "system", "developer", "function", "x"]), **m}
                if isinstance(m, dict)
                else m
                for m in (body["messages"] if isinstance(body["messages"], list) else [body["messages"]])
            ]
        return json.dumps(body).encode()
    if kind == 5:  # huge
        size = rng.choice([100_000, 1_000_000, 3_000_000])
        return json.dumps({"model": "fuzz-x", "messages": [{"role": "user", "content": "x " * (size // 2)}]}).encode()
    if kind == 6:  # deep
        depth = rng.choice([500, 5_000, 50_000, 200_000])
        inner = "[" * depth + "]" * depth
        return ('{"model":"fuzz-deep","messages":[{"role":"user","content":' + inner + "}]}").encode()
    if kind == 7:  # invalid UTF-8 or lone surrogates inside strings
        bad = rng.choice([b"\xc3\x28", b"\xed\xa0\x80", b"\xff\xfe", b"\\udc00", b"\\ud83d", b"\x00"])
        return b'{"model":"fuzz-' + bad + b'","messages":[{"role":"user","content":"' + bad + b'"}]}'
    if kind == 8:  # many messages, many parts
        parts = [{"type": "text", "text": "p"}, {"type": "image_url", "image_url": {"url": "data:"}}, 5, None]
        messages = [{"role": "user", "content": parts} for _ in range(rng.randrange(1, 2000))]
        return json.dumps({"model": "fuzz-many", "messages": messages, "stream": rng.random() < 0.5}).encode()
    numbers = [b"1e999", b"-1e999", b"NaN", b"Infinity", b"1" * 5000, b"0.0000001", b"-0"]
    return b'{"model":' + rng.choice(numbers) + b',"messages":[{"role":"user"}],"stream":' + rng.choice(numbers) + b"}"


def test_garbage_burst_never_500(serve) -> None:
    served = serve(RULES)
    rng = random.Random(20240607)
    statuses: dict[int, int] = {}
    url = served.base_url + "/chat/completions"
    with httpx.Client(timeout=30) as http:
        for n in range(200):
            body = _garbage(rng, n)
            kind = rng.choice([b"application/json", b"text/plain", b"application/x-www-form-urlencoded"])
            headers = {b"content-type": kind}
            if n % 7 == 0:  # visible ASCII and obs-text (bytes >= 0x80): legal in a header value
                headers[b"x-odd"] = bytes(rng.choice([*range(0x21, 0x7F), *range(0x80, 0x100)]) for _ in range(20))
            r = http.post(url, content=body, headers=headers)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code in (200, 400, 418), (n, r.status_code, r.text[:300])
            if r.status_code != 200:
                envelope(r)
            elif r.headers["content-type"].startswith("text/event-stream"):
                assert r.content.endswith(b"data: [DONE]\n\n")
        assert len(served.journal) == 200  # every body reached the engine, and is journaled
        # odd methods and paths on the same connection
        for _ in range(20):
            method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"])
            path = rng.choice(["/chat/completions", "/models", "/models/" + "x" * rng.randrange(1, 300), "/../etc"])
            r = http.request(method, served.base_url + path, content=rng.randbytes(rng.randrange(100)))
            assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
    assert statuses.get(400, 0) > 50 and statuses.get(200, 0) > 0, statuses
    # the server is alive and well
    client = openai.OpenAI(base_url=served.base_url, api_key="test")
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "sanity"}])
    assert answer.choices[0].message.content == "still fine"
    with client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "sanity"}], stream=True
    ) as stream:
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "still fine"


def test_odd_model_ids_in_paths(serve) -> None:
    served = serve({"match": {"model": "gpt-*"}, "reply": {"content": "x"}})
    for path in ["/models/%ff", "/models/%ed%a0%80", "/models/a%00b", "/models/", "/models/a/b"]:
        r = httpx.get(served.base_url + path, timeout=10)
        assert r.status_code == 404, path
        assert envelope(r)["code"] == "model_not_found"
    emoji = httpx.get(served.base_url + "/models/gpt-%F0%9F%98%80", timeout=10)  # a glob of a rule accepts it
    assert emoji.status_code == 200 and emoji.json()["id"] == "gpt-\U0001f600"
