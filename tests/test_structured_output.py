"""Structured output end to end, on the bundled scenarios (what `mockllm serve` serves): a request
that asks for JSON of a schema, or forces a tool, gets seeded JSON valid against it from the
catch-all `generate` rule, and the SDK helpers that parse it succeed.

Real clients against the real server: the openai SDK's `chat.completions.parse`, `responses.parse`
and forced tools, the anthropic SDK's forced tool, google-genai's `response_schema`, instructor and
pydantic-ai (where they install: instructor needs openai < 3, see .ci/run). What each sends was
captured from the real SDKs by tests/test_structured.py.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import anthropic
import jsonschema
import openai
import pytest
from google import genai
from google.genai import types
from helpers import SCENARIOS
from pydantic import BaseModel

ASK = "Tell me about a city."


class Address(BaseModel):
    street: str
    city: str
    zip_code: str | None


class Person(BaseModel):
    name: str
    age: int
    email: str
    kind: Literal["customer", "employee"]
    addresses: list[Address]
    nickname: str | None = None


def openai_client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def test_chat_parse_gets_a_valid_object(serve) -> None:
    served = serve(SCENARIOS)
    completion = openai_client(served).chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}], response_format=Person
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Person) and parsed.kind in ("customer", "employee")
    assert served.journal.last.rule == "generated-text"
    again = openai_client(served).chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}], response_format=Person, seed=3
    )
    same = openai_client(served).chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}], response_format=Person, seed=3
    )
    assert again.choices[0].message.parsed == same.choices[0].message.parsed  # seeded


def test_chat_json_object_gets_a_json_object(serve) -> None:
    served = serve(SCENARIOS)
    answer = openai_client(served).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Reply in JSON."}],
        response_format={"type": "json_object"},
    )
    import json

    assert isinstance(json.loads(answer.choices[0].message.content or ""), dict)


def test_chat_forced_tool_gets_valid_arguments(serve) -> None:
    served = serve(SCENARIOS)
    tool = openai.pydantic_function_tool(Person)
    for choice in ("required", {"type": "function", "function": {"name": "Person"}}):
        completion = openai_client(served).chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": ASK}],
            tools=[tool],
            tool_choice=choice,  # type: ignore[arg-type]
        )
        message = completion.choices[0]
        assert message.finish_reason == "tool_calls"
        (call,) = message.message.tool_calls or []
        assert call.function.name == "Person" and isinstance(call.function.parsed_arguments, Person)


def test_chat_stream_with_a_schema_is_valid_json(serve) -> None:
    served = serve(SCENARIOS)
    with openai_client(served).chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}], response_format=Person
    ) as stream:
        final = stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Person)


def test_responses_parse_gets_a_valid_object(serve) -> None:
    served = serve(SCENARIOS)
    response = openai_client(served).responses.parse(model="gpt-4o-mini", input=ASK, text_format=Person)
    assert isinstance(response.output_parsed, Person)


def test_anthropic_forced_tool_input_is_valid(serve) -> None:
    served = serve(SCENARIOS)
    client = anthropic.Anthropic(base_url=served.base_url.removesuffix("/v1"), api_key="test", max_retries=0)
    schema = Person.model_json_schema()
    message = client.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=4096,
        messages=[{"role": "user", "content": ASK}],
        tools=[{"name": "record_person", "description": "Record a person.", "input_schema": schema}],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "record_person"},
    )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "record_person"
    jsonschema.validate(block.input, schema)
    Person.model_validate(block.input)


def test_gemini_response_schema_gets_parsed(serve) -> None:
    served = serve(SCENARIOS)
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=served.base_url.removesuffix("/v1")))
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=Person)
    response = client.models.generate_content(model="gemini-2.5-flash", contents=ASK, config=config)
    assert isinstance(response.parsed, Person)


@pytest.mark.skipif(importlib.util.find_spec("instructor") is None, reason="instructor needs openai < 3: env 1 only")
@pytest.mark.parametrize("mode", ["TOOLS", "JSON_SCHEMA", "JSON"])
def test_instructor(serve, mode: str) -> None:
    import instructor

    served = serve(SCENARIOS)
    client = instructor.from_openai(openai_client(served), mode=getattr(instructor.Mode, mode))
    person = client.chat.completions.create(
        model="gpt-4o-mini", response_model=Person, messages=[{"role": "user", "content": ASK}], max_retries=0
    )
    assert isinstance(person, Person)


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("output", ["tool", "native"])
def test_pydantic_ai_structured_output(serve, api: str, output: str) -> None:
    from pydantic_ai import Agent, NativeOutput
    from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    served = serve(SCENARIOS)
    provider = OpenAIProvider(base_url=served.base_url, api_key="test")
    model = (
        OpenAIChatModel("gpt-4o-mini", provider=provider)
        if api == "chat"
        else OpenAIResponsesModel("gpt-4o-mini", provider=provider)
    )
    agent: Agent[None, Person] = Agent(model, output_type=Person if output == "tool" else NativeOutput(Person))
    result = agent.run_sync(ASK)
    assert isinstance(result.output, Person)
