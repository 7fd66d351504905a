"""The fixture serves the Responses API too, in both modes, and its journal speaks every API."""

from __future__ import annotations

from typing import Any

import pytest
from mockllm_pytest import MockLLM
from plugin_helpers import in_both_modes


@in_both_modes()
def test_responses_in_both_modes(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply("Hi there!", when_user_contains="hello")
    client = mockllm.client()
    parts: list[Any] = [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]
    answer = client.responses.create(model="gpt-4o-mini", input=parts)
    assert answer.output_text == "Hi there!"
    with client.responses.stream(model="gpt-4o-mini", input="well, hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hi there!"
    assert client.responses.retrieve(final.id).output_text == "Hi there!"
    assert [(e.endpoint, e.stream, e.status) for e in mockllm.requests] == [
        ("responses", False, 200),
        ("responses", True, 200),
    ]
    # an input_text part is the user text, for the rule and for the journal alike
    assert mockllm.requests[0].user_text == "hello"
    assert mockllm.last_user_message == "well, hello"


@in_both_modes()
def test_last_user_message_in_each_api(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply("ok")
    client = mockllm.client()
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": [{"type": "text", "text": "from chat"}]}]
    )
    assert mockllm.last_user_message == "from chat"
    first = client.responses.create(model="gpt-4o-mini", input="first turn")
    # a turn that only returns a tool result still has the chain's last user text
    client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "42"}],
    )
    assert mockllm.last_user_message == "first turn"


@pytest.mark.mockllm(allow_unmatched=True)
def test_an_endpoint_limited_rule_explains_the_miss(mockllm: MockLLM) -> None:
    import openai

    mockllm.add({"name": "chat-only", "match": {"endpoint": "chat"}, "reply": {"content": "x"}})
    with pytest.raises(openai.APIStatusError) as caught:
        mockllm.client(max_retries=0).responses.create(model="gpt-4o-mini", input="hi")
    assert caught.value.status_code == 418
    message = mockllm.requests[-1].error or ""
    assert "no rule matched this responses request" in message
    assert "endpoint: wanted chat, got responses" in message
