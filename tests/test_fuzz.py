"""Fuzzing every route of mockllm/routes.py ROUTES over the real server: random bodies (JSON of any
shape, near-valid requests with random values, raw bytes), random path parameters and wrong methods.

Whatever comes in, the answer is no 5xx, and every error is in its API's envelope (OpenAI's
`{"error": {"message", "type", "param", "code"}}`, Anthropic's, Gemini's google.rpc status), with a
message that is text. Bounded for CI:
a fixed number of examples per route (derandomized: the same inputs every run, so a failure
reproduces), a deadline per example, no example database written. MOCKLLM_FUZZ_EXAMPLES=N runs
more, locally.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")  # the test extra has it; a bare environment skips

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mockllm import Engine  # noqa: E402
from mockllm.routes import BY_PATH, ROUTES, Target, resolve  # noqa: E402
from mockllm.server import BackgroundServer  # noqa: E402

EXAMPLES = int(os.environ.get("MOCKLLM_FUZZ_EXAMPLES", "50"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),  # one request on loopback takes milliseconds; 2 s is a hang
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# The rules answer anything (so the fuzz reaches the answer paths, not only the 418), streamed and not,
# with text, tool calls and a regex; no scripted error, so any 5xx is mockllm's own.
SCENARIO = {
    "version": 1,
    "rules": [
        {"match": {"user": {"regex": "^[0-9]+$"}}, "reply": {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]}},
        {"match": {"model": "gen*"}, "reply": {"generate": {"words": 5}}},
        {"match": {"model": "*"}, "reply": {"content": "Fuzzed, fine."}},
    ],
}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
TEXT = st.text(max_size=30)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "developer", "assistant", "tool"]) | JSON, "content": TEXT | JSON},
    optional={"name": TEXT | JSON, "tool_calls": JSON, "tool_call_id": JSON},
)
# Near-valid bodies: the keys each API reads, with values that are right, or anything.
CHAT_BODY = st.fixed_dictionaries(
    {"model": TEXT | JSON, "messages": st.lists(MESSAGE, max_size=3) | JSON},
    optional={
        "stream": st.booleans() | JSON,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans() | JSON}) | JSON,
        "tools": JSON,
        "n": JSON,
    },
)
RESPONSES_BODY = st.fixed_dictionaries(
    {"model": TEXT | JSON, "input": TEXT | st.lists(MESSAGE, max_size=3) | JSON},
    optional={
        "stream": st.booleans() | JSON,
        "instructions": TEXT | JSON,
        "previous_response_id": TEXT | JSON,
        "store": st.booleans() | JSON,
        "tools": JSON,
    },
)
PART = st.fixed_dictionaries(
    {},
    optional={"text": TEXT | JSON, "functionCall": JSON, "functionResponse": JSON, "inlineData": JSON, "thought": JSON},
)
CONTENT = st.fixed_dictionaries(
    {"parts": st.lists(PART, max_size=3) | JSON}, optional={"role": st.sampled_from(["user", "model"]) | JSON}
)
GEMINI_BODY = st.fixed_dictionaries(
    {"contents": st.lists(CONTENT, max_size=3) | JSON},
    optional={
        "systemInstruction": CONTENT | JSON,
        "generationConfig": st.fixed_dictionaries({}, optional={"maxOutputTokens": st.integers() | JSON}) | JSON,
        "tools": st.lists(st.fixed_dictionaries({"functionDeclarations": JSON}), max_size=2) | JSON,
    },
)
NEAR_VALID = {"chat": CHAT_BODY, "responses": RESPONSES_BODY, "gemini": GEMINI_BODY}
# Valid requests with random text: most near-valid bodies are refused with a 400 at the first wrong
# value, so these make sure the answer paths (routing, regex, streams, tool calls) get their share.
VALID_MESSAGES = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "developer"]), "content": TEXT}),
    min_size=1,
    max_size=3,
)
VALID_STREAM = st.fixed_dictionaries({}, optional={"stream": st.booleans()})
VALID = {
    "chat": st.builds(
        lambda model, messages, stream, usage: {
            "model": model,
            "messages": messages,
            **stream,
            **({"stream_options": {"include_usage": usage}} if stream.get("stream") else {}),
        },
        st.sampled_from(["gpt-4o-mini", "gen-x"]) | st.text(min_size=1, max_size=10),
        VALID_MESSAGES,
        VALID_STREAM,
        st.booleans(),
    ),
    "responses": st.builds(
        lambda model, given, stream: {"model": model, "input": given, **stream},
        st.sampled_from(["gpt-4o-mini", "gen-x"]) | st.text(min_size=1, max_size=10),
        TEXT | VALID_MESSAGES,
        VALID_STREAM,
    ),
    # the model is in the path, the stream in the method: the body is the turns only
    "gemini": st.builds(
        lambda texts, system: {
            "contents": [{"role": "user", "parts": [{"text": text}]} for text in texts],
            **({"systemInstruction": {"parts": [{"text": system}]}} if system is not None else {}),
        },
        st.lists(TEXT, min_size=1, max_size=3),
        st.none() | TEXT,
    ),
}


def _body(target: Target) -> st.SearchStrategy[bytes]:
    """Bytes for the route's body: a valid request with random values (half the time), a near-valid
    one, encoded JSON of any shape, or raw bytes."""
    shapes = [JSON.map(_encode), st.binary(max_size=64)]
    name = target.dialect.name if target.dialect is not None else None
    if name in NEAR_VALID:
        shapes = [VALID[name].map(_encode)] * 3 + [NEAR_VALID[name].map(_encode), *shapes]
    return st.one_of(shapes)


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


PARAMETER = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)


def _path(template: str, values: list[str]) -> str:
    """The template with its {parameters} filled in, each percent-encoded (slashes kept in model ids)."""
    given_values = iter(values)
    return re.sub(
        r"\{(\w+)\}",
        lambda m: quote(next(given_values), safe="/" if m[1] == "model_id" else ""),
        template,
    )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[httpx.Client, str]]:
    """A server of its own (module scope: hypothesis runs many examples per test) and a client."""
    engine = Engine(seed=0, time_scale=0)
    engine.add(SCENARIO)
    with BackgroundServer() as server, httpx.Client(timeout=10) as client:
        server.namespaces["fuzz"] = engine
        yield client, f"{server.url}/ns/fuzz"


def _api(response: httpx.Response) -> str | None:
    """The API of the route the request's path leads to (None: OpenAI's listing, or no route)."""
    found = resolve(unquote(urlsplit(str(response.request.url)).path))
    if found is None:
        return None
    dialects = {target.dialect.name for target in found[0].values() if target.dialect is not None}
    return dialects.pop() if dialects else None


def check(response: httpx.Response, what: str) -> None:
    """No 5xx; an error in its API's envelope (Anthropic's for /v1/messages, Gemini's for its routes,
    else OpenAI's), with its message as text."""
    assert response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"
    if response.status_code < 400:
        return
    assert response.headers["content-type"].startswith("application/json"), what
    body = response.json()
    api = _api(response)
    if api == "gemini":  # shared/dialects.md section 3, "Errors": google.rpc Status
        assert isinstance(body, dict) and set(body) == {"error"}, f"{what}: {body!r}"
        error = body["error"]
        assert set(error) <= {"code", "message", "status", "details"}, f"{what}: {error!r}"
        assert error["code"] == response.status_code and re.fullmatch("[A-Z_]+", error["status"]), f"{what}: {error!r}"
    elif api == "anthropic":  # shared/dialects.md section 2, "Errors"
        assert isinstance(body, dict) and set(body) == {"type", "error", "request_id"}, f"{what}: {body!r}"
        assert body["type"] == "error" and body["request_id"] == response.headers["request-id"], what
        error = body["error"]
        assert set(error) == {"type", "message"}, f"{what}: {error!r}"
    else:
        assert isinstance(body, dict) and set(body) == {"error"}, f"{what}: {body!r}"
        error = body["error"]
        assert {"message", "type", "param", "code"} <= set(error), f"{what}: {error!r}"
    assert isinstance(error["message"], str) and error["message"], f"{what}: {error!r}"


@pytest.mark.parametrize("target", ROUTES, ids=lambda t: f"{t.route.method} {t.route.path}")
def test_random_requests_to_every_route(target: Target, served: tuple[httpx.Client, str]) -> None:
    client, base = served
    count = target.route.path.count("{")

    @FUZZ
    @given(values=st.lists(PARAMETER, min_size=count, max_size=count), body=_body(target), query=JSON)
    def one(values: list[str], body: bytes, query: Any) -> None:
        url = base + _path(target.route.path, values)
        if target.route.method == "GET":
            params = {"q": json.dumps(query)}
            response = client.get(url, params=params)
        else:
            response = client.post(url, content=body, headers={"content-type": "application/json"})
        check(response, f"{target.route.method} {url} {body[:200]!r}")

    one()


@pytest.mark.parametrize("path", sorted(BY_PATH), ids=str)
def test_every_other_method_gets_405_in_the_envelope(path: str, served: tuple[httpx.Client, str]) -> None:
    client, base = served
    url = base + _path(path, ["x"] * path.count("{"))
    for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - set(BY_PATH[path])):
        response = client.request(method, url, content=b"{}")
        assert response.status_code == 405, (method, path, response.status_code)
        check(response, f"{method} {path}")
