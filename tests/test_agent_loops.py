"""Agent loops against the bundled scenarios alone (what `mockllm serve` serves): the catch-all calls
the first offered tool, with arguments valid for its schema, until the conversation ends in a tool
result, then answers in text (scenarios/default.yaml, `generate: {call_tools: true}`).

Real clients against the real server, in each API: the openai SDK's chat and Responses loops, the
anthropic SDK's tool_use -> tool_result -> text, google-genai's functionCall -> functionResponse,
and pydantic-ai's agent with a tool. The OpenAI Agents SDK's loop: tests/test_agents_sdk.py.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import openai
from google import genai
from google.genai import types
from helpers import SCENARIOS

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
ASK = "What's the weather going to be?"


def test_chat_loop(serve) -> None:
    served = serve(SCENARIOS)
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    tools: Any = [{"type": "function", "function": {"name": "forecast", "parameters": SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": ASK}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools).choices[0]
    assert first.finish_reason == "tool_calls"
    (call,) = first.message.tool_calls or []
    jsonschema.validate(json.loads(call.function.arguments), SCHEMA)
    messages += [
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools).choices[0]
    assert second.finish_reason == "stop" and second.message.content and not second.message.tool_calls
    # tool_choice "none": text at once
    none = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": ASK}], tools=tools, tool_choice="none"
    )
    assert none.choices[0].finish_reason == "stop"


def test_responses_loop(serve) -> None:
    served = serve(SCENARIOS)
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    tools: Any = [{"type": "function", "name": "forecast", "parameters": SCHEMA, "strict": True}]
    first = client.responses.create(model="gpt-4o-mini", input=ASK, tools=tools)
    (call,) = [item for item in first.output if item.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), SCHEMA)
    follow: Any = [{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}]
    second = client.responses.create(model="gpt-4o-mini", input=follow, tools=tools, previous_response_id=first.id)
    assert second.output_text and not [item for item in second.output if item.type == "function_call"]


def test_anthropic_loop(serve) -> None:
    served = serve(SCENARIOS)
    client = anthropic.Anthropic(base_url=served.base_url.removesuffix("/v1"), api_key="test", max_retries=0)
    tools: Any = [{"name": "forecast", "description": "The forecast.", "input_schema": SCHEMA}]
    messages: list[Any] = [{"role": "user", "content": ASK}]
    first = client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=messages, tools=tools)
    assert first.stop_reason == "tool_use"
    (use,) = [block for block in first.content if block.type == "tool_use"]
    jsonschema.validate(use.input, SCHEMA)
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}]},
    ]
    second = client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=messages, tools=tools)
    assert second.stop_reason == "end_turn" and [b.type for b in second.content] == ["text"]


def test_gemini_loop(serve) -> None:
    served = serve(SCENARIOS)
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=served.base_url.removesuffix("/v1")))
    declaration = types.FunctionDeclaration(name="forecast", parameters_json_schema=SCHEMA)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    contents: list[Any] = [types.Content(role="user", parts=[types.Part(text=ASK)])]
    first = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    (call,) = first.function_calls or []
    assert call.name == "forecast"
    jsonschema.validate(call.args, SCHEMA)
    contents += [
        first.candidates[0].content,  # type: ignore[index]
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="forecast", response={"result": "Sunny"})]
        ),
    ]
    second = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    assert second.text and not second.function_calls


def test_pydantic_ai_agent_with_a_tool(serve) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    served = serve(SCENARIOS)
    model = OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=served.base_url, api_key="test"))
    agent: Agent[None, str] = Agent(model)
    seen: list[tuple[str, int]] = []

    @agent.tool_plain
    def forecast(city: str, days: int) -> str:
        """The forecast for a city."""
        seen.append((city, days))
        return "Sunny"

    result = agent.run_sync(ASK)
    assert len(seen) == 1 and isinstance(seen[0][0], str) and isinstance(seen[0][1], int)
    assert isinstance(result.output, str) and result.output
