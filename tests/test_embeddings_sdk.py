"""Embeddings (`POST /v1/embeddings`) through the real openai SDK, against the real server.

The SDK asks for base64 when the caller names no format and decodes it (little-endian float32,
openai/resources/embeddings.py); an explicit "float" gets the list as sent. Wire facts:
shared/dialects.md section 5; the vectors' geometry: mockllm/dialects/embeddings.py.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import httpx
import openai
import pytest

RULES: dict[str, Any] = {
    "rules": [
        {"name": "broken", "match": {"model": "broken"}, "reply": {"error": {"status": 503}}},
        {"name": "cut", "match": {"model": "cut"}, "reply": {"content": "x", "fault": {"kind": "disconnect"}}},
        {"name": "vectors", "match": {"endpoint": "embeddings"}, "reply": {"content": "ignored"}},
    ]
}
DOCS = ["the cat sat on the mat", "stock markets fell sharply today", "a cat and a dog"]


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def test_default_base64_decoded_by_the_sdk(serve) -> None:
    served = serve(RULES)
    done = client(served).embeddings.create(model="text-embedding-3-small", input="hello world")
    assert done.object == "list" and done.model == "text-embedding-3-small"
    (item,) = done.data
    assert (item.object, item.index, len(item.embedding)) == ("embedding", 0, 1536)
    assert abs(norm(item.embedding) - 1) < 1e-5
    assert done.usage.prompt_tokens == done.usage.total_tokens == 2
    entry = served.journal.last
    assert (entry.endpoint, entry.rule, entry.user_text) == ("embeddings", "vectors", "hello world")
    assert entry.json["encoding_format"] == "base64"  # what the SDK asked for


def test_float_and_base64_agree(serve) -> None:
    served = serve(RULES)
    c = client(served)
    floats = c.embeddings.create(model="text-embedding-3-small", input="hello world", encoding_format="float")
    assert served.journal.last.json["encoding_format"] == "float"
    decoded = c.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert floats.data[0].embedding == decoded.data[0].embedding
    raw = httpx.post(
        f"{served.base_url}/embeddings", json={"model": "m", "input": "hello world", "encoding_format": "base64"}
    )
    assert raw.headers["openai-model"] == "m" and raw.text.endswith("}\n")
    text = json.loads(raw.text)["data"][0]["embedding"]
    assert isinstance(text, str) and len(text) == 8192  # 1536 float32 values (shared/dialects.md section 5)
    assert list(struct.unpack("<1536f", base64.b64decode(text))) == floats.data[0].embedding


def test_several_inputs_dimensions_and_sizes(serve) -> None:
    served = serve(RULES)
    c = client(served)
    done = c.embeddings.create(model="text-embedding-3-large", input=DOCS)
    assert [d.index for d in done.data] == [0, 1, 2]
    assert {len(d.embedding) for d in done.data} == {3072}
    assert served.journal.last.user_text == DOCS[-1]  # the rules' `user`: the last input
    short = c.embeddings.create(model="text-embedding-3-large", input=DOCS, dimensions=256)
    assert {len(d.embedding) for d in short.data} == {256}
    assert all(abs(norm(d.embedding) - 1) < 1e-5 for d in short.data)
    # shortened = the full vector's prefix, renormalised (as OpenAI's `dimensions`)
    full = done.data[0].embedding[:256]
    assert max(abs(a - b / norm(full)) for a, b in zip(short.data[0].embedding, full, strict=True)) < 1e-5
    assert len(c.embeddings.create(model="some-other-model", input="x").data[0].embedding) == 1536
    tokens = c.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        c.embeddings.create(model="text-embedding-3-small", input="x", dimensions=2000)


def test_deterministic_per_text_not_per_call(serve) -> None:
    served = serve(RULES)
    c = client(served)
    first = c.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    again = c.embeddings.create(model="text-embedding-3-small", input=["beta", "alpha"])
    assert first.data[0].embedding == again.data[1].embedding
    assert first.data[1].embedding == again.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding
    other_seed = client(serve(RULES, seed=7)).embeddings.create(model="text-embedding-3-small", input="alpha")
    assert other_seed.data[0].embedding != first.data[0].embedding


def test_shared_words_rank_first(serve) -> None:
    served = serve(RULES)
    c = client(served)
    docs = [d.embedding for d in c.embeddings.create(model="text-embedding-3-small", input=DOCS).data]
    query = c.embeddings.create(model="text-embedding-3-small", input="where is the cat").data[0].embedding
    scores = [cosine(query, d) for d in docs]
    assert scores.index(max(scores)) == 0
    assert abs(scores[1]) < 0.15  # no word shared: near orthogonal


def test_scripted_error_and_disconnect(serve) -> None:
    served = serve(RULES)
    c = client(served)
    with pytest.raises(openai.InternalServerError) as raised:
        c.embeddings.create(model="broken", input="x")
    assert raised.value.status_code == 503
    with pytest.raises(openai.APIConnectionError):  # a body cut before it began: both generations
        c.embeddings.create(model="cut", input="x")


def test_stream_is_refused(serve) -> None:
    served = serve(RULES)
    raw = httpx.post(f"{served.base_url}/embeddings", json={"model": "m", "input": "x", "stream": True})
    assert raw.status_code == 400
    assert json.loads(raw.text)["error"]["message"] == "Unrecognized request argument supplied: stream"


def test_a_scenario_pins_the_vector_of_an_input(serve) -> None:
    """`vectors:` maps an input text to the vector sent for it (both encodings); other inputs of the same
    request get their own, and a rule with `vectors` must name the embeddings API only."""
    import pytest

    from mockllm import ScenarioError, load_text

    pinned = [0.6, 0.8, 0.0]
    served = serve({"match": {"endpoint": "embeddings"}, "reply": {"vectors": {"the pinned one": pinned}}})
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    for fmt in ("float", "base64"):
        result = client.embeddings.create(
            model="text-embedding-3-small", input=["the pinned one", "another"], encoding_format=fmt
        )  # type: ignore[call-overload]
        first, second = (item.embedding for item in result.data)
        if fmt == "base64":  # asked for by the caller, the SDK hands the base64 text over as it came
            first, second = (
                list(struct.unpack(f"<{len(base64.b64decode(v)) // 4}f", base64.b64decode(v))) for v in (first, second)
            )  # type: ignore[arg-type]
        assert first == pytest.approx(pinned, abs=1e-7) and len(second) == 1536
    with pytest.raises(ScenarioError, match="only embeddings answers with vectors"):
        load_text("version: 1\nrules:\n  - reply: {vectors: {a: [1.0]}}\n", "bad.yaml")
