"""README.md's "Testing an agent" blocks, run as written: the scenario and the test through
pytester, in both modes; the per-conversation sequence with the openai SDK, two runs at once.
`test_the_readme_shows_these_blocks` fails when the README and these copies drift apart.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import openai
import pytest
from helpers import readme_blocks

from mockllm import load_text

pytest_plugins = ["pytester"]

AGENT_YAML = """\
# tests/scenarios/weather_agent.yaml
version: 1
rules:
  - name: answer from the forecast
    match:
      tool_result: {name: get_forecast}   # the conversation ends in that tool's result
    reply:
      content: "Here is the forecast: {tool_result}"
  - name: ask the tool
    match:
      tool: get_forecast                  # the request offers that tool
      turn: 0                             # the model's first turn
    reply:
      tool_calls: [{name: get_forecast}]  # arguments made for the tool's schema
"""

AGENT_TEST = '''\
import json

import pytest

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_forecast",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}]


def run_agent(client, question: str) -> str:
    """Application code: a tool loop."""
    messages = [{"role": "user", "content": question}]
    while True:
        message = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=TOOLS
        ).choices[0].message
        if not message.tool_calls:
            return message.content
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            city = json.loads(call.function.arguments)["city"]
            messages.append({"role": "tool", "tool_call_id": call.id, "content": f"Sunny in {city}"})


@pytest.mark.mockllm("scenarios/weather_agent.yaml")
def test_the_agent_answers_from_the_tool(mockllm):
    answer = run_agent(mockllm.client(), "Weather in Oslo?")

    assert answer.startswith("Here is the forecast: Sunny in ")
    assert [entry.rule for entry in mockllm.requests] == ["ask the tool", "answer from the forecast"]
'''

AGENT_IN_PYTHON = """\
def test_the_agent_with_rules_in_python(mockllm):
    mockllm.add(
        match={"tool_result": {"name": "get_forecast"}},
        reply=lambda request: f"Forecast: {request.body['messages'][-1]['content']}",
    )
    mockllm.add(
        match={"tool": "get_forecast", "turn": 0},
        reply={"tool_calls": [{"name": "get_forecast", "arguments": {"city": "Oslo"}}]},
    )

    assert run_agent(mockllm.client(), "Weather in Oslo?") == "Forecast: Sunny in Oslo"
"""

TRIP_YAML = """\
version: 1
sequence: conversation
rules:
  - name: plan a trip
    match: {user: {contains: "trip"}}
    replies:
      - tool_calls: [{name: search_flights}]
      - tool_calls: [{name: book_flight}]
      - content: "Booked: {tool_result}"
"""


def test_the_readme_shows_these_blocks() -> None:
    blocks = readme_blocks("Testing an agent")
    assert blocks == [AGENT_YAML, AGENT_TEST, AGENT_IN_PYTHON, TRIP_YAML]


@pytest.mark.parametrize("mode", ["server", "inprocess"])
def test_the_agent_example_passes(pytester: pytest.Pytester, mode: str) -> None:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "weather_agent.yaml").write_text(AGENT_YAML)
    pytester.makepyfile(test_agent=AGENT_TEST + "\n\n" + AGENT_IN_PYTHON)
    result = pytester.runpytest_subprocess(f"--mockllm-mode={mode}", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_the_trip_sequence_plays_per_conversation(serve) -> None:
    served = serve()
    served.engine.use(load_text(TRIP_YAML, "trip.yaml"))
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    tools: Any = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
        for name in ("search_flights", "book_flight")
    ]
    said: dict[str, list[str]] = {}
    start = threading.Barrier(2)

    def trip(who: str) -> None:
        messages: list[Any] = [{"role": "user", "content": f"Plan a trip for {who}"}]
        steps = []
        start.wait()
        while True:
            message = client.chat.completions.create(model="m", messages=messages, tools=tools).choices[0].message
            if not message.tool_calls:
                steps.append(message.content or "")
                break
            (call,) = message.tool_calls
            steps.append(call.function.name)
            messages += [
                message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"ok": who})},
            ]
        said[who] = steps

    runs = [threading.Thread(target=trip, args=(who,)) for who in ("Ann", "Bo")]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert said == {
        "Ann": ["search_flights", "book_flight", 'Booked: {"ok": "Ann"}'],
        "Bo": ["search_flights", "book_flight", 'Booked: {"ok": "Bo"}'],
    }
