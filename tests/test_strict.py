"""Strict checking (mockllm/strict.py): off by default; on, a field the API does not know or a value
out of its range gets the real API's 400, in its envelope, before any rule is tried.

Real clients against the real server; the known fields against OpenAI's published OpenAPI request
schemas (tests/data/openai-request-fields.json, extracted by tests/data/extract_openapi_schemas.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from mockllm import Engine, load_text
from mockllm.strict import FIELDS

REQUEST_FIELDS = json.loads((Path(__file__).parent / "data" / "openai-request-fields.json").read_text())
ASK = [{"role": "user", "content": "Hi"}]
RULE = {"reply": {"content": "Hello."}}


@pytest.mark.parametrize(
    ("endpoint", "schema"),
    [
        ("chat", "CreateChatCompletionRequest"),
        ("completions", "CreateCompletionRequest"),
        ("embeddings", "CreateEmbeddingRequest"),
        ("responses", "CreateResponse"),
    ],
)
def test_the_known_fields_are_the_openapi_request_schemas(endpoint: str, schema: str) -> None:
    assert sorted(FIELDS[endpoint]) == REQUEST_FIELDS[schema]


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def strict_server(serve: Any) -> Any:
    served = serve(RULE)
    served.engine.strict = True
    return served


def test_off_by_default_extra_fields_are_taken(serve) -> None:
    served = serve(RULE)
    answer = client(served).chat.completions.create(model="m", messages=ASK, extra_body={"top_k": 5})  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Hello."


def test_unknown_fields_are_refused_in_every_openai_api(serve) -> None:
    served = strict_server(serve)
    c = client(served)
    calls = [
        lambda: c.chat.completions.create(model="m", messages=ASK, extra_body={"top_k": 5}),  # type: ignore[arg-type]
        lambda: c.completions.create(model="m", prompt="Hi", extra_body={"top_k": 5}),
        lambda: c.responses.create(model="m", input="Hi", extra_body={"top_k": 5}),
        lambda: c.embeddings.create(model="text-embedding-3-small", input="Hi", extra_body={"top_k": 5}),
    ]
    for call in calls:
        with pytest.raises(openai.BadRequestError) as caught:
            call()
        assert caught.value.body["message"] == "Unrecognized request argument supplied: top_k"  # type: ignore[index]
    assert [e.status for e in served.journal] == [400, 400, 400, 400]
    assert c.chat.completions.create(model="m", messages=ASK, temperature=1).choices[0].message.content == "Hello."  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "message", "code"),
    [
        (
            "temperature",
            3,
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
            "decimal_above_max_value",
        ),
        (
            "top_p",
            -0.5,
            "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -0.5 instead.",
            "decimal_below_min_value",
        ),
        (
            "max_tokens",
            0,
            "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "integer_below_min_value",
        ),
    ],
)
def test_values_out_of_range_are_refused(serve, field: str, value: float, message: str, code: str) -> None:
    served = strict_server(serve)
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).chat.completions.create(model="m", messages=ASK, **{field: value})  # type: ignore[call-overload]
    assert (caught.value.body, caught.value.code) == (  # type: ignore[comparison-overlap]
        {"message": message, "type": "invalid_request_error", "param": field, "code": code},
        code,
    )


def test_anthropic_and_gemini_say_it_their_way(serve) -> None:
    served = strict_server(serve)
    root = served.base_url.removesuffix("/v1")
    claude = anthropic.Anthropic(base_url=root, api_key="test", max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="c", max_tokens=10, messages=ASK, extra_body={"frequency_penalty": 1})  # type: ignore[arg-type]
    assert caught.value.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "frequency_penalty: Extra inputs are not permitted",
    }
    response = httpx.post(
        f"{root}/v1beta/models/gemini-2.5-flash:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "temperature": 1},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 400,
        "message": 'Invalid JSON payload received. Unknown name "temperature": Cannot find field.',
        "status": "INVALID_ARGUMENT",
    }


def test_a_strict_scenario_file_makes_the_engine_strict() -> None:
    engine = Engine()
    assert not engine.strict
    engine.use(load_text("version: 1\nstrict: true\nrules:\n  - reply: {content: hi}\n", "strict.yaml"))
    assert engine.strict
    answer = engine.chat(b'{"model":"m","messages":[{"role":"user","content":"x"}],"top_k":3}', {})
    assert answer.status == 400 and b"Unrecognized request argument supplied: top_k" in (answer.body or b"")
