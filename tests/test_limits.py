"""The request's own limits shape the answer, in every API: a token cap cuts it with the API's
`length` finish and usage counts what was sent; a stop sequence ends the text before it.

Real clients against the real server: the openai SDK (chat, Responses, legacy completions), the
anthropic SDK and google-genai. Finish words per API: shared/dialects.md section 7.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from mockllm.dialects.base import ToolCallWire
from mockllm.limits import cut

TEXT = "one two three four five six seven eight"  # eight tokens: "one", " two", ...
TOOL_CALL = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
SCENARIO = {
    "rules": [
        {
            "name": "tool",
            "match": {"user": {"contains": "weather"}},
            "reply": {"content": "Let me look.", "tool_calls": [TOOL_CALL]},
        },
        {"name": "text", "reply": {"content": TEXT}},
    ]
}
ASK = [{"role": "user", "content": "Count"}]


def openai_client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def root(served: Any) -> str:
    return served.base_url.removesuffix("/v1")


# -- Chat Completions -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_chat_cap_cuts_the_answer_with_length(serve, key: str) -> None:
    served = serve(SCENARIO)
    answer = openai_client(served).chat.completions.create(model="gpt-4o", messages=ASK, **{key: 3})  # type: ignore[call-overload]
    choice = answer.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("one two three", "length")
    assert answer.usage is not None and answer.usage.completion_tokens == 3


def test_chat_cap_streamed(serve) -> None:
    served = serve(SCENARIO)
    stream = openai_client(served).chat.completions.create(
        model="gpt-4o", messages=ASK, max_tokens=3, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert (deltas, finishes) == (["one", " two", " three"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_a_cap_the_reply_fits_changes_nothing(serve) -> None:
    served = serve(SCENARIO)
    answer = openai_client(served).chat.completions.create(model="gpt-4o", messages=ASK, max_tokens=8)
    assert (answer.choices[0].message.content, answer.choices[0].finish_reason) == (TEXT, "stop")


def test_chat_cap_inside_a_tool_call_cuts_its_arguments(serve) -> None:
    """The cap falls inside the call's arguments: they end there (not valid JSON), finish `length`:
    what an app that json.loads tool arguments without checking the finish trips on."""
    served = serve(SCENARIO)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    answer = openai_client(served).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], tools=tools, max_tokens=8
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "length" and choice.message.content == "Let me look."
    (call,) = choice.message.tool_calls or []
    full = json.dumps(TOOL_CALL["arguments"], separators=(",", ":"))
    assert (
        call.function.name == "get_weather"
        and full.startswith(call.function.arguments)
        and call.function.arguments != full
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(call.function.arguments)


def test_chat_stop_sequences(serve) -> None:
    served = serve(SCENARIO)
    client = openai_client(served)
    answer = client.chat.completions.create(model="gpt-4o", messages=ASK, stop=[" four", "six"])
    assert (answer.choices[0].message.content, answer.choices[0].finish_reason) == ("one two three", "stop")
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    # A stop sequence inside a piece cuts the piece; the stream sends what is left of it.
    stream = client.chat.completions.create(model="gpt-4o", messages=ASK, stop="ree", stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "one two th"


def test_chat_bad_stop_is_refused_as_openai_does(serve) -> None:
    served = serve(SCENARIO)
    client = openai_client(served)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK, stop=["a", "b", "c", "d", "e"])
    assert caught.value.code == "array_above_max_length" and caught.value.param == "stop"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ASK, stop=7)  # type: ignore[arg-type]
    assert caught.value.code == "invalid_type"


# -- Responses -----------------------------------------------------------------------------------


def test_responses_cap_makes_an_incomplete_response(serve) -> None:
    served = serve(SCENARIO)
    client = openai_client(served)
    response = client.responses.create(model="gpt-4o", input="Count", max_output_tokens=3)
    assert (response.status, response.output_text) == ("incomplete", "one two three")
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 3
    events = list(client.responses.create(model="gpt-4o", input="Count", max_output_tokens=3, stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["one", " two", " three"] and events[-1].type == "response.incomplete"


# -- legacy completions ---------------------------------------------------------------------------


def test_completions_default_cap_is_16_tokens(serve) -> None:
    """The real API's default `max_tokens` is 16: a longer answer comes back cut (openai-openapi,
    CreateCompletionRequest.max_tokens)."""
    served = serve({"reply": {"content": " ".join(f"w{i}" for i in range(30))}})
    client = openai_client(served)
    cut_short = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say it")
    assert cut_short.choices[0].finish_reason == "length"
    assert cut_short.usage is not None and cut_short.usage.completion_tokens == 16
    whole = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say it", max_tokens=100)
    assert whole.choices[0].finish_reason == "stop" and whole.choices[0].text.endswith("w29")
    stopped = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say it", stop=" w2", max_tokens=100)
    assert stopped.choices[0].text == "w0 w1"


# -- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_max_tokens_and_stop_sequences(serve) -> None:
    served = serve(SCENARIO)
    client = anthropic.Anthropic(base_url=root(served), api_key="test", max_retries=0)
    capped = client.messages.create(model="claude-x", max_tokens=3, messages=ASK)  # type: ignore[arg-type]
    assert (capped.content[0].text, capped.stop_reason, capped.stop_sequence) == ("one two three", "max_tokens", None)  # type: ignore[union-attr]
    assert capped.usage.output_tokens == 3
    stopped = client.messages.create(model="claude-x", max_tokens=100, messages=ASK, stop_sequences=[" four"])  # type: ignore[arg-type]
    # Anthropic names the sequence that matched (shared/dialects.md section 7: `stop_sequence`).
    assert (stopped.content[0].text, stopped.stop_reason, stopped.stop_sequence) == (
        "one two three",
        "stop_sequence",
        " four",
    )  # type: ignore[union-attr]
    with client.messages.stream(model="claude-x", max_tokens=100, messages=ASK, stop_sequences=[" four"]) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert (text, final.stop_reason, final.stop_sequence) == ("one two three", "stop_sequence", " four")


# -- Gemini --------------------------------------------------------------------------------------


def test_gemini_max_output_tokens_and_stop_sequences(serve) -> None:
    served = serve(SCENARIO)
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=root(served)))
    config = types.GenerateContentConfig(max_output_tokens=3)
    capped = client.models.generate_content(model="gemini-2.5-flash", contents="Count", config=config)
    assert capped.candidates is not None and capped.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert capped.text == "one two three"
    assert capped.usage_metadata is not None and capped.usage_metadata.candidates_token_count == 3
    config = types.GenerateContentConfig(stop_sequences=[" four"])
    text = "".join(
        c.text or ""
        for c in client.models.generate_content_stream(model="gemini-2.5-flash", contents="Count", config=config)
    )
    assert text == "one two three"


# -- the cut itself --------------------------------------------------------------------------------


def test_a_chunk_of_several_tokens_is_cut_at_a_token_boundary() -> None:
    limited = cut(("one two", " three four"), (), 3, ())
    assert limited is not None and limited.pieces == ("one two", " three") and limited.finish_reason == "length"


def test_the_first_stop_sequence_in_the_text_wins_and_drops_the_calls() -> None:
    tool = ToolCallWire("call_1", "f", "{}", ("{}",))
    limited = cut(("a", "b", "c", "d"), (tool,), None, ("cd", "bc"))
    assert limited is not None and (limited.pieces, limited.tools, limited.stop_sequence) == (("a",), (), "bc")
    assert cut(("a", "b"), (tool,), None, ("zz",)) is None and cut(("a", "b"), (tool,), 10, ()) is None


# -- the request's seed ------------------------------------------------------------------------------


def test_the_requests_seed_makes_the_generated_text(serve) -> None:
    """A `generate` reply: the same request `seed` gives the same text at every call, another seed
    another text; without a seed each call of the rule gets its own (chat, legacy completions, Gemini)."""
    served = serve({"reply": {"generate": {"sentences": 2}}})
    c = openai_client(served)

    def text(**more: Any) -> str | None:
        return c.chat.completions.create(model="gpt-4o", messages=ASK, **more).choices[0].message.content

    assert text(seed=5) == text(seed=5) != text(seed=6)
    assert text() != text()
    legacy = [c.completions.create(model="m", prompt="x", seed=5, max_tokens=200).choices[0].text for _ in range(2)]
    assert legacy[0] == legacy[1]
    gemini = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=root(served)))
    config = types.GenerateContentConfig(seed=5)
    texts = {gemini.models.generate_content(model="g", contents="x", config=config).text for _ in range(2)}
    assert len(texts) == 1


def test_a_stop_before_a_tool_call_drops_the_call_in_every_api(serve) -> None:
    """The text ends before the stop sequence, so the call after it is never made (each API's ids
    are then made for the calls that are sent)."""
    served = serve(SCENARIO)
    ask = [{"role": "user", "content": "weather?"}]
    claude = anthropic.Anthropic(base_url=root(served), api_key="test", max_retries=0)
    message = claude.messages.create(model="c", max_tokens=100, messages=ask, stop_sequences=[" look"])  # type: ignore[arg-type]
    assert [b.type for b in message.content] == ["text"] and message.stop_reason == "stop_sequence"
    answer = openai_client(served).chat.completions.create(model="gpt-4o", messages=ask, stop=" look")  # type: ignore[arg-type]
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].message.content == "Let me"
    capped = claude.messages.create(model="c", max_tokens=5, messages=ask)  # type: ignore[arg-type]
    assert capped.stop_reason == "max_tokens" and [b.type for b in capped.content] == ["text", "tool_use"]
