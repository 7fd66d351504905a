"""A `refusal` reply: the model refuses, in each API's own form (shared/wire.md section 2 "Refusal",
shared/dialects.md section 7): chat's `message.refusal` and `refusal` deltas, the Responses API's
refusal content part and `response.refusal.delta` events, Anthropic's `stop_reason: "refusal"`; in
Gemini and legacy completions (which have no such form) the text as text.

Real clients against the real server.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types
from pydantic import BaseModel

from mockllm import ScenarioError, load_text

TEXT = "I'm sorry, I can't help with that."
SCENARIO = {"reply": {"refusal": TEXT}}
ASK = [{"role": "user", "content": "Something bad"}]


class Answer(BaseModel):
    value: str


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def test_chat_refusal_whole_streamed_and_parsed(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    message = c.chat.completions.create(model="gpt-4o", messages=ASK).choices[0].message  # type: ignore[arg-type]
    assert (message.content, message.refusal) == (None, TEXT)
    chunks = list(c.chat.completions.create(model="gpt-4o", messages=ASK, stream=True))  # type: ignore[arg-type]
    first = chunks[0].choices[0].delta
    assert (first.role, first.content, first.refusal) == ("assistant", None, "")
    assert "".join(ch.choices[0].delta.refusal or "" for ch in chunks if ch.choices) == TEXT
    assert all(ch.choices[0].delta.content is None for ch in chunks if ch.choices)
    # The parse helpers give the refusal and no parsed value, as openai-python documents.
    parsed = c.chat.completions.parse(model="gpt-4o", messages=ASK, response_format=Answer).choices[0].message  # type: ignore[arg-type]
    assert (parsed.parsed, parsed.refusal) == (None, TEXT)
    with c.chat.completions.stream(model="gpt-4o", messages=ASK, response_format=Answer) as stream:  # type: ignore[arg-type]
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert {"refusal.delta", "refusal.done"} <= kinds and final.choices[0].message.refusal == TEXT


def test_responses_refusal_part_and_events(serve) -> None:
    served = serve(SCENARIO)
    c = client(served)
    response = c.responses.create(model="gpt-4o", input="Something bad")
    (part,) = response.output[0].content  # type: ignore[union-attr]
    assert (part.type, part.refusal) == ("refusal", TEXT)  # type: ignore[union-attr]
    assert response.output_text == ""
    events = list(c.responses.create(model="gpt-4o", input="Something bad", stream=True))
    deltas = [e.delta for e in events if e.type == "response.refusal.delta"]
    done = [e.refusal for e in events if e.type == "response.refusal.done"]
    assert "".join(deltas) == TEXT and done == [TEXT]
    assert not [e for e in events if e.type.startswith("response.output_text")]


def test_anthropic_stop_reason_refusal(serve) -> None:
    served = serve(SCENARIO)
    claude = anthropic.Anthropic(base_url=served.base_url.removesuffix("/v1"), api_key="test", max_retries=0)
    message = claude.messages.create(model="claude-x", max_tokens=100, messages=ASK)  # type: ignore[arg-type]
    assert message.stop_reason == "refusal" and message.content[0].text == TEXT  # type: ignore[union-attr]
    with claude.messages.stream(model="claude-x", max_tokens=100, messages=ASK) as stream:  # type: ignore[arg-type]
        assert "".join(stream.text_stream) == TEXT
        assert stream.get_final_message().stop_reason == "refusal"


def test_gemini_and_legacy_completions_say_it_as_text(serve) -> None:
    served = serve(SCENARIO)
    gemini = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=served.base_url.removesuffix("/v1")))
    assert gemini.models.generate_content(model="gemini-2.5-flash", contents="Something bad").text == TEXT
    legacy = client(served).completions.create(model="m", prompt="Something bad", max_tokens=100)
    assert legacy.choices[0].text == TEXT


def test_refusal_cannot_go_with_content_or_tool_calls() -> None:
    with pytest.raises(ScenarioError, match="expected one of content, chunks, generate, refusal, sse, error"):
        load_text("version: 1\nrules:\n  - reply: {refusal: nope, content: sure}\n", "bad.yaml")
    with pytest.raises(ScenarioError, match="tool_calls cannot go with refusal"):
        load_text("version: 1\nrules:\n  - reply: {refusal: nope, tool_calls: [{name: f}]}\n", "bad.yaml")
