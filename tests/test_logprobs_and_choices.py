"""Logprobs when a request asks for them, and `n` choices, in the shape of each API, streamed and
not: logprobs one per token, deterministic, <= 0, with distinct alternatives in descending order.

Real clients against the real server: the openai SDK's chat, Responses and legacy completions.
Shapes: shared/wire.md section 2 ("Logprobs", "n>1"), shared/dialects.md (Responses `include`),
and openai-openapi's CreateCompletionResponse for the legacy lists.
"""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import openai
import pytest

from mockllm.logprobs import token_logprobs

SCENARIO = {"reply": {"content": "one two three", "timing": {"ttft_ms": 0, "chunk_ms": 0}}}
ASK = [{"role": "user", "content": "Count"}]
TOKENS = ["one", " two", " three"]


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def check_alternatives(token: str, logprob: float, top: list[tuple[str, float]], k: int) -> None:
    assert logprob <= 0 and len(top) == k
    if k:
        assert top[0] == (token, logprob)  # the token was the most likely
        values = [lp for _, lp in top]
        assert values == sorted(values, reverse=True) and len({t for t, _ in top}) == k
        assert sum(math.exp(v) for v in values) <= 1.0 + 1e-9


def test_chat_logprobs_not_streamed(serve) -> None:
    served = serve(SCENARIO)
    answer = client(served).chat.completions.create(model="gpt-4o", messages=ASK, logprobs=True, top_logprobs=3)
    content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and [t.token for t in content] == TOKENS
    for t in content:
        assert t.bytes == list(t.token.encode())
        check_alternatives(t.token, t.logprob, [(a.token, a.logprob) for a in t.top_logprobs], 3)
    again = client(served).chat.completions.create(model="gpt-4o", messages=ASK, logprobs=True, top_logprobs=3)
    assert again.choices[0].logprobs == answer.choices[0].logprobs  # the same every call of the rule's reply
    plain = client(served).chat.completions.create(model="gpt-4o", messages=ASK)
    assert plain.choices[0].logprobs is None


def test_chat_logprobs_streamed_match_the_whole_answer(serve) -> None:
    served = serve(SCENARIO)
    whole = client(served).chat.completions.create(model="gpt-4o", messages=ASK, logprobs=True, top_logprobs=2)
    chunks = list(
        client(served).chat.completions.create(model="gpt-4o", messages=ASK, logprobs=True, top_logprobs=2, stream=True)
    )
    first = chunks[0].choices[0].logprobs
    assert first is not None and first.content == []  # the role chunk (shared/wire.md section 2)
    streamed = [
        t for c in chunks[1:] if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []
    ]
    # Each answer of the rule derives its own seed (call index): compare shapes, and the values of the same call.
    assert [t.token for t in streamed] == TOKENS
    assert [len(t.top_logprobs) for t in streamed] == [2, 2, 2]
    assert whole.choices[0].logprobs is not None


def test_chat_logprobs_bad_values_are_refused(serve) -> None:
    served = serve(SCENARIO)
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).chat.completions.create(model="gpt-4o", messages=ASK, logprobs=True, top_logprobs=21)
    assert caught.value.param == "top_logprobs" and caught.value.code == "integer_above_max_value"
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).chat.completions.create(model="gpt-4o", messages=ASK, top_logprobs=2)
    assert caught.value.param == "top_logprobs"


def test_responses_logprobs_through_include(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    include: Any = ["message.output_text.logprobs"]
    response = c.responses.create(model="gpt-4o", input="Count", include=include, top_logprobs=2)
    part = response.output[0].content[0]  # type: ignore[union-attr]
    assert [t.token for t in part.logprobs] == TOKENS  # type: ignore[union-attr]
    for t in part.logprobs:  # type: ignore[union-attr]
        check_alternatives(t.token, t.logprob, [(a.token, a.logprob) for a in t.top_logprobs], 2)
    assert response.top_logprobs == 2
    events = list(c.responses.create(model="gpt-4o", input="Count", include=include, top_logprobs=2, stream=True))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert [[t.token for t in e.logprobs] for e in deltas] == [[t] for t in TOKENS]
    done = next(e for e in events if e.type == "response.output_text.done")
    assert [t.token for t in done.logprobs] == TOKENS  # type: ignore[union-attr]
    assert c.responses.create(model="gpt-4o", input="Count").output[0].content[0].logprobs == []  # type: ignore[union-attr]


def test_legacy_completions_logprobs(serve) -> None:
    served = serve(SCENARIO)
    answer = client(served).completions.create(model="gpt-3.5-turbo-instruct", prompt="Count", logprobs=2)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens == TOKENS and logprobs.text_offset == [0, 3, 7]
    assert logprobs.token_logprobs is not None and logprobs.top_logprobs is not None
    for token, logprob, top in zip(logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        check_alternatives(token, logprob, list(top.items()), 2)
    chunks = list(
        client(served).completions.create(model="gpt-3.5-turbo-instruct", prompt="Count", logprobs=0, stream=True)
    )
    offsets = [c.choices[0].logprobs.text_offset for c in chunks if c.choices and c.choices[0].logprobs]
    assert offsets == [[0], [3], [7]]
    with pytest.raises(openai.BadRequestError):
        client(served).completions.create(model="gpt-3.5-turbo-instruct", prompt="Count", logprobs=6)


def test_the_numbers_are_the_same_in_every_process() -> None:
    code = "from mockllm.logprobs import token_logprobs; print(token_logprobs(['a', ' b'], 7, 4))"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONHASHSEED": seed}, check=True
        ).stdout
        for seed in ("1", "2")
    }
    assert runs == {f"{token_logprobs(['a', ' b'], 7, 4)}\n"}


# -- n choices ----------------------------------------------------------------------------------------


def test_chat_n_choices(serve) -> None:
    """`n` choices, each the reply; streamed one choice per chunk, round-robin, a role and a finish
    chunk for each (shared/wire.md section 2, "n>1"); usage counts every choice."""
    served = serve(SCENARIO)
    c = client(served)
    answer = c.chat.completions.create(model="gpt-4o", messages=ASK, n=3)
    assert [(ch.index, ch.message.content, ch.finish_reason) for ch in answer.choices] == [
        (i, "one two three", "stop") for i in range(3)
    ]
    assert answer.usage is not None and answer.usage.completion_tokens == 9
    chunks = list(
        c.chat.completions.create(
            model="gpt-4o", messages=ASK, n=2, stream=True, stream_options={"include_usage": True}
        )
    )
    order = [
        (ch.choices[0].index, ch.choices[0].delta.role, ch.choices[0].delta.content, ch.choices[0].finish_reason)
        for ch in chunks
        if ch.choices
    ]
    assert order == [
        (0, "assistant", "", None),
        (1, "assistant", "", None),
        *[(i, None, piece, None) for piece in TOKENS for i in (0, 1)],
        (0, None, None, "stop"),
        (1, None, None, "stop"),
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    with pytest.raises(openai.BadRequestError) as caught:
        c.chat.completions.create(model="gpt-4o", messages=ASK, n=129)
    assert caught.value.code == "integer_above_max_value" and caught.value.param == "n"


def test_legacy_completions_n_choices(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    answer = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Count", n=2)
    assert [(ch.index, ch.text) for ch in answer.choices] == [(0, "one two three"), (1, "one two three")]
    assert answer.usage is not None and answer.usage.completion_tokens == 6
    chunks = list(c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Count", n=2, stream=True))
    texts: dict[int, str] = {}
    for ch in chunks:
        for choice in ch.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "one two three", 1: "one two three"}
