"""Agent frameworks' tool loops scripted by scenario rules (tests/data/agents/), and, where
tests/test_agent_loops.py does not already run them, against the bundled catch-all alone: pydantic-ai
(each of its models: OpenAI chat and Responses, Anthropic, Google), the anthropic SDK (a hand-written
loop, and its tool runner), google-genai's automatic function calling, langchain-openai (a loop
over `bind_tools`), LiteLLM (a loop over `completion(tools=...)`), and two conversations of one loop
at once. The OpenAI Agents SDK: tests/test_agents_sdk_rules.py.

The rules tell the loop's steps apart by the conversation (`tool`, `tool_result`, `turn`,
`last_role`), answer with what the request holds (`{tool_result}`, `{tool_name}`, `{turn}`,
`{user}`), leave a call's arguments to the offered schema, and count `replies` per conversation.

Both environments run this file; a test whose framework is not installed skips (langchain-openai
and LiteLLM are in environment 1 only). Paths in comments are in each installed package.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import jsonschema
import netguard
import openai
import pytest
from helpers import ROOT, SCENARIOS, release

# LangSmith tracing would post runs to api.smith.langchain.com (langsmith/utils.py
# tracing_is_enabled reads these on every call); LiteLLM's cost map and telemetry stay local
# (tests/conftest.py sets LITELLM_LOCAL_MODEL_COST_MAP too).
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LANGCHAIN_TRACING_V2"] = "false"
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

AGENTS = ROOT / "tests" / "data" / "agents"
ASK = "What's the weather in Paris?"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
LOOKUP_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
    "additionalProperties": False,
}
# What weather.yaml answers once get_weather("Paris") has run (its `{tool_name}`, `{tool_result}`, `{turn}`)
SCRIPTED_ANSWER = "get_weather said: Sunny in Paris (turn 1)"
SCRIPTED_RULES = ["call-the-tool", "quote-the-result"]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No connection or name lookup beyond loopback, during any test here (tests/netguard.py)."""
    refused = netguard.guard(monkeypatch)
    yield
    assert refused == []


class Tools:
    """The tools' Python side: what they were called with, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_weather(self, city: str) -> str:
        """Get the weather for a city."""
        self.calls.append(("get_weather", {"city": city}))
        return f"Sunny in {city}"

    def lookup(self, query: str) -> str:
        """Look something up in the notes."""
        self.calls.append(("lookup", {"query": query}))
        return f"notes on {query}"

    def run(self, name: str, arguments: dict[str, Any]) -> str:
        tool: Callable[..., str] = getattr(self, name)
        return tool(**arguments)


def rules_of(served: Any) -> list[str | None]:
    return [entry.rule for entry in served.journal]


# -- pydantic-ai: an Agent with a tool, on each of its models -----------------------------------

PYDANTIC_AI_MODELS = ["chat", "responses", "anthropic", "google"]
PYDANTIC_AI_ENDPOINT = {"chat": "chat", "responses": "responses", "anthropic": "anthropic", "google": "gemini"}
PYDANTIC_AI_MODEL_NAME = {
    "chat": "gpt-4o-mini",
    "responses": "gpt-4o-mini",
    "anthropic": "claude-sonnet-4-5",
    "google": "gemini-2.5-flash",  # the one in the URL's path (…/models/gemini-2.5-flash:generateContent)
}


def pydantic_ai_model(kind: str, served: Any, headers: dict[str, str] | None = None) -> Any:
    """A pydantic-ai model of `kind` whose SDK client is pointed at the served namespace."""
    if kind == "anthropic" and release("pydantic-ai-slim") < (2, 68):
        # pydantic_ai/models/anthropic.py _map_message calls BetaMessageParam(...), which anthropic
        # 2.15 made a Union ("Cannot instantiate typing.Union"); pydantic-ai 2.68 works with it
        pytest.skip("this pydantic-ai's AnthropicModel cannot build a request with anthropic >= 2.15")
    if kind in ("chat", "responses"):
        from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
        from pydantic_ai.providers.openai import OpenAIProvider

        client = openai.AsyncOpenAI(base_url=served.base_url, api_key="test", max_retries=0, default_headers=headers)
        model_class: Any = OpenAIChatModel if kind == "chat" else OpenAIResponsesModel
        return model_class(PYDANTIC_AI_MODEL_NAME[kind], provider=OpenAIProvider(openai_client=client))
    root = served.base_url.removesuffix("/v1")
    if kind == "anthropic":
        from pydantic_ai.models.anthropic import AnthropicModel
        from pydantic_ai.providers.anthropic import AnthropicProvider

        claude = anthropic.AsyncAnthropic(base_url=root, api_key="test", max_retries=0, default_headers=headers)
        return AnthropicModel(PYDANTIC_AI_MODEL_NAME[kind], provider=AnthropicProvider(anthropic_client=claude))
    from google import genai
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.providers.google import GoogleProvider

    options: dict[str, Any] = {"base_url": root, "headers": headers or {}}
    return GoogleModel(
        PYDANTIC_AI_MODEL_NAME[kind], provider=GoogleProvider(client=genai.Client(api_key="test", http_options=options))
    )


def pydantic_ai_agent(kind: str, served: Any, tools: Tools, *names: str, headers: dict[str, str] | None = None) -> Any:
    from pydantic_ai import Agent

    return Agent(pydantic_ai_model(kind, served, headers), tools=[getattr(tools, name) for name in names])


@pytest.mark.parametrize("kind", PYDANTIC_AI_MODELS)
def test_pydantic_ai_agent_against_scripted_rules(serve, kind: str) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    result = pydantic_ai_agent(kind, served, tools, "get_weather").run_sync(ASK)
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    # Gemini's functionResponse is {"return_value": "Sunny in Paris"} (pydantic_ai/models/google.py):
    # its one string is the result's text, as the other APIs' plain strings
    assert result.output == SCRIPTED_ANSWER
    assert rules_of(served) == SCRIPTED_RULES
    assert {entry.endpoint for entry in served.journal} == {PYDANTIC_AI_ENDPOINT[kind]}


@pytest.mark.parametrize("kind", PYDANTIC_AI_MODELS)
def test_pydantic_ai_arguments_generated_from_its_schema(serve, kind: str) -> None:
    served = serve(AGENTS / "seeded.yaml")
    tools = Tools()
    result = pydantic_ai_agent(kind, served, tools, "get_weather").run_sync(ASK)
    # pydantic-ai validates the arguments with the tool's own schema before it runs it (a bad call
    # would go back to the model as a retry prompt, not reach get_weather)
    ((name, arguments),) = tools.calls
    assert name == "get_weather" and isinstance(arguments["city"], str)
    assert result.output == f"Result: Sunny in {arguments['city']} ({PYDANTIC_AI_MODEL_NAME[kind]})"
    assert rules_of(served) == ["call-with-generated-arguments", "answer"]


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_pydantic_ai_streamed_run_against_scripted_rules(serve, kind: str) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()

    async def go() -> list[str]:
        agent = pydantic_ai_agent(kind, served, tools, "get_weather")
        async with agent.run_stream(ASK) as result:
            return [text async for text in result.stream_text(delta=True)]

    deltas = asyncio.run(go())
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert "".join(deltas) == SCRIPTED_ANSWER
    assert [(e.rule, e.stream) for e in served.journal] == [(rule, True) for rule in SCRIPTED_RULES]


def test_pydantic_ai_turns_count_through_the_previous_response_id_chain(serve) -> None:
    # openai_previous_response_id="auto": the second request sends what came after the last
    # response, chained to it (OpenAIResponsesModelSettings); the rule for turn 1 must count the
    # stored call in that chain
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    agent = pydantic_ai_agent("responses", served, tools, "get_weather")
    result = agent.run_sync(ASK, model_settings={"openai_previous_response_id": "auto"})
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert result.output == SCRIPTED_ANSWER
    first, second = list(served.journal)
    assert "previous_response_id" not in first.json and second.json["previous_response_id"].startswith("resp_")
    assert [item.get("type") for item in second.json["input"]] == ["function_call_output"]
    assert rules_of(served) == SCRIPTED_RULES


@pytest.mark.parametrize("kind", PYDANTIC_AI_MODELS)
def test_pydantic_ai_streamed_chunks_quote_the_result(serve, kind: str) -> None:
    # each of `chunks` is a template of its own, and stays one delta
    served = serve(
        {
            "rules": [
                {
                    "name": "answer",
                    "match": {"last_role": "tool"},
                    "reply": {"chunks": ["{tool_name}", " said: ", "{tool_result}", " on turn {turn}"]},
                },
                {"name": "call", "match": {"tool": "get_weather"}, "reply": {"tool_calls": [{"name": "get_weather"}]}},
            ]
        }
    )
    tools = Tools()

    async def go() -> list[str]:
        agent = pydantic_ai_agent(kind, served, tools, "get_weather")
        async with agent.run_stream(ASK) as result:
            # debounce_by=None: every delta as it came (pydantic_ai/result.py stream_text)
            return [text async for text in result.stream_text(delta=True, debounce_by=None)]

    deltas = asyncio.run(go())
    ((_, arguments),) = tools.calls
    assert deltas == ["get_weather", " said: ", f"Sunny in {arguments['city']}", " on turn 1"]
    assert [(e.rule, e.stream) for e in served.journal] == [("call", True), ("answer", True)]


@pytest.mark.parametrize("kind", ["responses", "anthropic", "google"])
def test_pydantic_ai_agent_against_the_catch_all(serve, kind: str) -> None:
    # the chat model's run: tests/test_agent_loops.py
    served = serve(SCENARIOS)
    tools = Tools()
    result = pydantic_ai_agent(kind, served, tools, "get_weather").run_sync(ASK)
    ((name, arguments),) = tools.calls
    assert name == "get_weather" and isinstance(arguments["city"], str)
    assert isinstance(result.output, str) and result.output
    assert rules_of(served) == ["generated-text", "generated-text"]


# -- the anthropic SDK: tool_use -> tool_result -> text, by hand and with its tool runner ---------


def claude(served: Any, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served.base_url.removesuffix("/v1"), api_key="test", max_retries=0, **options)


def anthropic_loop(client: anthropic.Anthropic, question: str, tools: Tools, streamed: bool = False) -> Any:
    """A hand-written loop: run every tool_use block, send the results back, until a text answer."""
    offered: Any = [
        {"name": "get_weather", "description": "Get the weather.", "input_schema": WEATHER_SCHEMA},
        {"name": "lookup", "description": "Look something up.", "input_schema": LOOKUP_SCHEMA},
    ]
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(4):
        asked: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 256, "tools": offered}
        if streamed:
            with client.messages.stream(messages=messages, **asked) as stream:
                message = stream.get_final_message()
        else:
            message = client.messages.create(messages=messages, **asked)
        if message.stop_reason != "tool_use":
            return message
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": tools.run(block.name, dict(block.input))}
            for block in message.content
            if block.type == "tool_use"
        ]
        messages += [{"role": "assistant", "content": message.content}, {"role": "user", "content": results}]
    raise AssertionError("the loop did not end")


@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_anthropic_loop_against_scripted_rules(serve, streamed: bool) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    final = anthropic_loop(claude(served), ASK, tools, streamed)
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert final.stop_reason == "end_turn"
    assert [(block.type, block.text) for block in final.content] == [("text", SCRIPTED_ANSWER)]
    assert rules_of(served) == SCRIPTED_RULES


def beta_weather(tools: Tools) -> Any:
    """get_weather as a @beta_tool: its input_schema is made from the signature and the docstring
    (anthropic/lib/tools/_beta_functions.py)."""
    from anthropic import beta_tool

    @beta_tool
    def get_weather(city: str) -> str:
        """Get the weather for a city.

        Args:
            city: The city.
        """
        return tools.get_weather(city)

    return get_weather


def tool_runner_messages(served: Any, tools: Tools, *, threaded: bool, streamed: bool) -> list[Any]:
    """The messages client.beta.messages.tool_runner yields (one per model call) while it runs the
    tools. By default it runs over a message thread (anthropic/lib/threads/_thread_state.py): the
    first request says `thread: {"type": "create"}`, each later one `{"type": "continue",
    "previous_message_id": ...}` with only the new messages and neither `tools` nor `system`; with
    `thread=False` every request sends the whole history."""
    options: dict[str, Any] = {} if threaded else {"thread": False}
    runner = claude(served).beta.messages.tool_runner(
        model="claude-sonnet-4-5",
        max_tokens=256,
        tools=[beta_weather(tools)],
        messages=[{"role": "user", "content": ASK}],
        stream=streamed,
        **options,
    )
    if not streamed:
        return list(runner)
    return [stream.get_final_message() for stream in runner]


TOOL_RUNNER_CASES = [(False, False), (False, True), (True, False)]
TOOL_RUNNER_IDS = ["whole-history", "whole-history-streamed", "threaded"]


@pytest.mark.parametrize(("threaded", "streamed"), TOOL_RUNNER_CASES, ids=TOOL_RUNNER_IDS)
def test_anthropic_tool_runner_against_the_catch_all(serve, threaded: bool, streamed: bool) -> None:
    served = serve(SCENARIOS)
    tools = Tools()
    messages = tool_runner_messages(served, tools, threaded=threaded, streamed=streamed)
    assert [m.stop_reason for m in messages] == ["tool_use", "end_turn"]
    ((_, arguments),) = tools.calls
    (offered,) = served.journal[0].json["tools"]
    jsonschema.validate(arguments, offered["input_schema"])
    assert [block.type for block in messages[-1].content] == ["text"]
    assert rules_of(served) == ["generated-text", "generated-text"]
    first, second = (entry.json for entry in served.journal)
    assert ("thread" in first, "thread" in second) == (threaded, threaded)


@pytest.mark.parametrize(("threaded", "streamed"), TOOL_RUNNER_CASES[:2], ids=TOOL_RUNNER_IDS[:2])
def test_anthropic_tool_runner_against_scripted_rules(serve, threaded: bool, streamed: bool) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    messages = tool_runner_messages(served, tools, threaded=threaded, streamed=streamed)
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert [(block.type, block.text) for block in messages[-1].content] == [("text", SCRIPTED_ANSWER)]
    assert rules_of(served) == SCRIPTED_RULES


def test_anthropic_async_tool_runner_against_scripted_rules(serve) -> None:
    from anthropic import beta_async_tool

    served = serve(AGENTS / "weather.yaml")
    tools = Tools()

    @beta_async_tool
    async def get_weather(city: str) -> str:
        """Get the weather for a city.

        Args:
            city: The city.
        """
        return tools.get_weather(city)

    async def go() -> list[Any]:
        root = served.base_url.removesuffix("/v1")
        async with anthropic.AsyncAnthropic(base_url=root, api_key="test", max_retries=0) as client:
            runner = client.beta.messages.tool_runner(
                model="claude-sonnet-4-5",
                max_tokens=256,
                tools=[get_weather],
                messages=[{"role": "user", "content": ASK}],
                thread=False,
            )
            return [message async for message in runner]

    messages = asyncio.run(go())
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert [(block.type, block.text) for block in messages[-1].content] == [("text", SCRIPTED_ANSWER)]
    assert rules_of(served) == SCRIPTED_RULES


def test_anthropic_threaded_tool_runner_against_rules_on_the_last_message(serve) -> None:
    # A threaded `continue` holds only the tool's result: rules that read the last message alone
    # still tell the step, as the first request offers the tool and the second ends in its result.
    served = serve(
        {
            "rules": [
                {
                    "name": "answer",
                    "match": {"tool_result": {"regex": "^Sunny in \\w+$"}, "last_role": "tool"},
                    "reply": {"content": "Quoted: {tool_result}"},
                },
                {"name": "call", "match": {"tool": "get_weather"}, "reply": {"tool_calls": [{"name": "get_weather"}]}},
            ]
        }
    )
    tools = Tools()
    messages = tool_runner_messages(served, tools, threaded=True, streamed=False)
    ((_, arguments),) = tools.calls
    assert [(block.type, block.text) for block in messages[-1].content] == [
        ("text", f"Quoted: Sunny in {arguments['city']}")
    ]
    assert rules_of(served) == ["call", "answer"]
    assert served.journal[1].json["thread"]["type"] == "continue"


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_anthropic_threaded_tool_runner_against_scripted_rules(serve, streamed: bool) -> None:
    # The fake keeps each threaded reply with its conversation (mockllm/dialects/message_threads.py):
    # a `continue` reaches the rules as the whole request it stands for, its tools and turns included.
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    messages = tool_runner_messages(served, tools, threaded=True, streamed=streamed)
    assert [(block.type, block.text) for block in messages[-1].content] == [("text", SCRIPTED_ANSWER)]
    assert rules_of(served) == SCRIPTED_RULES
    second = served.journal[1].json
    assert second["thread"]["type"] == "continue" and "tools" not in second and len(second["messages"]) == 1


def test_anthropic_tool_runner_replays_a_lost_thread(serve) -> None:
    # A `continue` from a reply the fake no longer holds (here: the engine reset between the turns) gets
    # `thread_not_found` in error.details, and the SDK sends the whole history again under a new thread.
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    runner = claude(served).beta.messages.tool_runner(
        model="claude-sonnet-4-5",
        max_tokens=256,
        tools=[beta_weather(tools)],
        messages=[{"role": "user", "content": ASK}],
    )
    replies = []
    for message in runner:
        replies.append(message)
        if len(replies) == 1:
            served.engine.states["anthropic"] = type(served.engine.states["anthropic"])()
    assert [(block.type, block.text) for block in replies[-1].content] == [("text", SCRIPTED_ANSWER)]
    lost = served.journal[1]
    assert lost.status == 404 and lost.json["thread"]["type"] == "continue"
    replayed = served.journal[2].json
    assert replayed["thread"] == {"type": "create"} and len(replayed["messages"]) == 3


# -- google-genai: its automatic function calling ---------------------------------------------------


def gemini_afc(served: Any, tools: Tools) -> Any:
    """generate_content with a Python function as the tool: the SDK declares it from its signature,
    calls it, and sends its result back as a functionResponse {"result": ...}, until a text answer
    (google/genai/models.py generate_content, _extra_utils.py)."""
    from google import genai
    from google.genai import types

    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return tools.get_weather(city)

    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=served.base_url.removesuffix("/v1")))
    config = types.GenerateContentConfig(tools=[get_weather])
    return client.models.generate_content(model="gemini-2.5-flash", contents=ASK, config=config)


def test_gemini_automatic_function_calling_against_scripted_rules(serve) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    answer = gemini_afc(served, tools)
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert answer.text == SCRIPTED_ANSWER
    assert rules_of(served) == SCRIPTED_RULES
    (_, second) = list(served.journal)
    (part,) = second.json["contents"][-1]["parts"]
    assert part["functionResponse"]["response"] == {"result": "Sunny in Paris"}


def test_gemini_automatic_function_calling_against_the_catch_all(serve) -> None:
    served = serve(SCENARIOS)
    tools = Tools()
    answer = gemini_afc(served, tools)
    ((name, arguments),) = tools.calls
    assert name == "get_weather" and isinstance(arguments["city"], str)
    assert answer.text and not answer.function_calls
    assert rules_of(served) == ["generated-text", "generated-text"]


# -- langchain-openai: a loop over ChatOpenAI(...).bind_tools -----------------------------------
# No agent helper is installed (neither `langchain` nor `langgraph`, only langchain-core and
# langchain-openai), so the loop is written out, as langchain's docs do it with bind_tools.


def langchain_loop(
    served: Any, question: str, tools: Tools, *, responses: bool, streamed: bool = False, **options: Any
) -> Any:
    """Run the bound tools until the model answers in text; returns the final AIMessage."""
    pytest.importorskip("langchain_openai", reason="langchain-openai is not installed in this environment")
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import StructuredTool
    from langchain_openai import ChatOpenAI

    bound = [StructuredTool.from_function(tools.get_weather), StructuredTool.from_function(tools.lookup)]
    model = ChatOpenAI(
        base_url=served.base_url,
        api_key="test",  # type: ignore[arg-type]
        model="gpt-4o-mini",
        use_responses_api=responses,
        max_retries=0,
        **options,
    ).bind_tools(bound)
    history: list[Any] = [HumanMessage(question)]
    for _ in range(4):
        if streamed:
            chunks = list(model.stream(history))
            message = chunks[0]
            for chunk in chunks[1:]:
                message = message + chunk
        else:
            message = model.invoke(history)
        history.append(message)
        if not message.tool_calls:
            return message
        # langchain_openai/chat_models/base.py: the call's id goes back as tool_call_id (chat) or
        # call_id (Responses, _construct_responses_api_input)
        history += [
            ToolMessage(tools.run(call["name"], call["args"]), tool_call_id=call["id"]) for call in message.tool_calls
        ]
    raise AssertionError("the loop did not end")


@pytest.mark.parametrize("streamed", [False, True], ids=["invoke", "stream"])
@pytest.mark.parametrize("responses", [False, True], ids=["chat", "responses"])
def test_langchain_loop_against_scripted_rules(serve, responses: bool, streamed: bool) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    final = langchain_loop(served, ASK, tools, responses=responses, streamed=streamed)
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert final.text == SCRIPTED_ANSWER
    assert rules_of(served) == SCRIPTED_RULES
    assert {entry.endpoint for entry in served.journal} == {"responses" if responses else "chat"}


def test_langchain_turns_count_through_the_previous_response_id_chain(serve) -> None:
    # use_previous_response_id: each request sends what follows the last AIMessage, chained to its
    # response (langchain_openai/chat_models/base.py _get_last_messages)
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    final = langchain_loop(served, ASK, tools, responses=True, use_previous_response_id=True)
    assert final.text == SCRIPTED_ANSWER
    first, second = list(served.journal)
    assert "previous_response_id" not in first.json and second.json["previous_response_id"].startswith("resp_")
    assert [item.get("type") for item in second.json["input"]] == ["function_call_output"]
    assert rules_of(served) == SCRIPTED_RULES


@pytest.mark.parametrize("responses", [False, True], ids=["chat", "responses"])
def test_langchain_loop_against_the_catch_all(serve, responses: bool) -> None:
    served = serve(SCENARIOS)
    tools = Tools()
    final = langchain_loop(served, ASK, tools, responses=responses)
    ((name, arguments),) = tools.calls  # the first offered tool, with arguments valid for its schema
    assert name == "get_weather" and isinstance(arguments["city"], str)
    assert isinstance(final.text, str) and final.text
    assert rules_of(served) == ["generated-text", "generated-text"]


# -- LiteLLM: a loop over completion(tools=...) --------------------------------------------------

LITELLM_TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "The weather.", "parameters": WEATHER_SCHEMA},
    },
    {"type": "function", "function": {"name": "lookup", "description": "The notes.", "parameters": LOOKUP_SCHEMA}},
]


def litellm_loop(served: Any, question: str, tools: Tools, *, streamed: bool = False) -> Any:
    """Run the tools LiteLLM's answers call until one answers in text; returns that message."""
    litellm = pytest.importorskip("litellm", reason="LiteLLM is not installed in this environment")
    litellm.telemetry = False
    messages: list[Any] = [{"role": "user", "content": question}]
    for _ in range(4):
        asked: dict[str, Any] = {"model": "openai/gpt-4o-mini", "api_base": served.base_url, "api_key": "test"}
        if streamed:
            chunks = list(litellm.completion(messages=messages, tools=LITELLM_TOOLS, stream=True, **asked))
            response = litellm.stream_chunk_builder(chunks, messages=messages)
        else:
            response = litellm.completion(messages=messages, tools=LITELLM_TOOLS, **asked)
        message = response.choices[0].message
        if not message.tool_calls:
            return message
        messages.append(message.model_dump(exclude_none=True))
        messages += [
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": tools.run(call.function.name, json.loads(call.function.arguments)),
            }
            for call in message.tool_calls
        ]
    raise AssertionError("the loop did not end")


@pytest.mark.parametrize("streamed", [False, True], ids=["completion", "stream"])
def test_litellm_loop_against_scripted_rules(serve, streamed: bool) -> None:
    served = serve(AGENTS / "weather.yaml")
    tools = Tools()
    final = litellm_loop(served, ASK, tools, streamed=streamed)
    assert tools.calls == [("get_weather", {"city": "Paris"})]
    assert final.content == SCRIPTED_ANSWER
    assert rules_of(served) == SCRIPTED_RULES


def test_litellm_loop_against_the_catch_all(serve) -> None:
    served = serve(SCENARIOS)
    tools = Tools()
    final = litellm_loop(served, ASK, tools)
    ((name, arguments),) = tools.calls
    assert name == "get_weather"
    jsonschema.validate(arguments, WEATHER_SCHEMA)
    assert isinstance(final.content, str) and final.content
    assert rules_of(served) == ["generated-text", "generated-text"]


# -- two conversations of one loop at once, against `sequence: conversation` ---------------------
# conversation.yaml: one rule's `replies` (call lookup with the user's words, then quote the result),
# counted per conversation. Counted per server, the second conversation would get the answer first,
# and the third request of all no reply: whichever way the requests interleave, a test fails.


@pytest.mark.parametrize("kind", [*PYDANTIC_AI_MODELS, "responses-chained"])
def test_pydantic_ai_two_conversations_at_once(serve, kind: str) -> None:
    # responses-chained: each second request holds only the tool's result and the previous
    # response's id; its conversation is told by the first user message of that chain
    served = serve(AGENTS / "conversation.yaml")
    tools = Tools()
    settings: Any = {"openai_previous_response_id": "auto"} if kind == "responses-chained" else None

    async def both() -> list[Any]:
        agent = pydantic_ai_agent(kind.removesuffix("-chained"), served, tools, "lookup")
        runs = [agent.run(question, model_settings=settings) for question in ("Look up apples", "Look up pears")]
        return await asyncio.gather(*runs)

    apples, pears = asyncio.run(both())
    assert sorted(tools.calls, key=repr) == [
        ("lookup", {"query": "Look up apples"}),
        ("lookup", {"query": "Look up pears"}),
    ]
    assert (apples.output, pears.output) == ("Found: notes on Look up apples", "Found: notes on Look up pears")
    assert [(e.status, e.rule) for e in served.journal] == [(200, "lookup-loop")] * 4
    if settings is not None:
        assert sum("previous_response_id" in e.json for e in served.journal) == 2


def test_langchain_two_conversations_in_threads(serve) -> None:
    served = serve(AGENTS / "conversation.yaml")
    tools = Tools()
    questions = ["Look up apples", "Look up pears", "Look up plums"]
    with ThreadPoolExecutor(len(questions)) as pool:
        finals = list(pool.map(lambda q: langchain_loop(served, q, tools, responses=False), questions))
    assert [final.text for final in finals] == [f"Found: notes on {q}" for q in questions]
    assert sorted(tools.calls, key=repr) == [("lookup", {"query": q}) for q in questions]
    assert [(e.status, e.rule) for e in served.journal] == [(200, "lookup-loop")] * 6


def test_litellm_two_conversations_in_threads(serve) -> None:
    served = serve(AGENTS / "conversation.yaml")
    tools = Tools()
    with ThreadPoolExecutor(2) as pool:
        finals = list(pool.map(lambda q: litellm_loop(served, q, tools), ["Look up apples", "Look up pears"]))
    assert [final.content for final in finals] == ["Found: notes on Look up apples", "Found: notes on Look up pears"]
    assert [(e.status, e.rule) for e in served.journal] == [(200, "lookup-loop")] * 4


@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_anthropic_the_conversation_header_tells_apart_the_same_question(serve, streamed: bool) -> None:
    # The same first message makes one conversation (its second run would start at the answer);
    # x-mockllm-conversation makes two.
    served = serve(AGENTS / "conversation.yaml")
    tools = Tools()

    def one(name: str) -> Any:
        client = claude(served, default_headers={"x-mockllm-conversation": name})
        return anthropic_loop(client, "Look up apples", tools, streamed)

    with ThreadPoolExecutor(2) as pool:
        finals = list(pool.map(one, ["first", "second"]))
    assert [[block.text for block in final.content] for final in finals] == [["Found: notes on Look up apples"]] * 2
    assert tools.calls == [("lookup", {"query": "Look up apples"})] * 2
    assert sorted(e.headers["x-mockllm-conversation"] for e in served.journal) == ["first", "first", "second", "second"]
    assert [(e.status, e.rule) for e in served.journal] == [(200, "lookup-loop")] * 4


@pytest.mark.parametrize("kind", ["chat", "google"])
def test_pydantic_ai_times_count_per_conversation(serve, kind: str) -> None:
    # `times: 1` per conversation: each conversation's first call gets the tool call once (counted
    # per server, the second conversation's first call would find the rule used up, and no other)
    served = serve(
        {
            "rules": [
                {
                    "name": "call-once",
                    "sequence": "conversation",
                    "times": 1,
                    "match": {"tool": "lookup"},
                    "reply": {"tool_calls": [{"name": "lookup", "arguments": {"query": "{user}"}}]},
                },
                {"name": "answer", "match": {"tool_result": {}}, "reply": {"content": "Found: {tool_result}"}},
            ]
        }
    )
    tools = Tools()

    async def both() -> list[Any]:
        agent = pydantic_ai_agent(kind, served, tools, "lookup")
        return await asyncio.gather(agent.run("Look up apples"), agent.run("Look up pears"))

    results = asyncio.run(both())
    assert [r.output for r in results] == ["Found: notes on Look up apples", "Found: notes on Look up pears"]
    assert sorted(e.rule or "" for e in served.journal) == ["answer", "answer", "call-once", "call-once"]


@pytest.mark.parametrize("kind", ["chat", "google"])
def test_pydantic_ai_the_conversation_header_tells_apart_the_same_question(serve, kind: str) -> None:
    # the rule's own `sequence: conversation` (conversation.yaml says it for the whole file)
    served = serve(
        {
            "name": "lookup-loop",
            "sequence": "conversation",
            "match": {"tool": "lookup"},
            "replies": [
                {"tool_calls": [{"name": "lookup", "arguments": {"query": "{user}"}}]},
                {"content": "Found: {tool_result}"},
            ],
        }
    )
    tools = Tools()

    async def both() -> list[Any]:
        runs = [
            pydantic_ai_agent(kind, served, tools, "lookup", headers={"x-mockllm-conversation": name}).run(
                "Look up apples"
            )
            for name in ("first", "second")
        ]
        return await asyncio.gather(*runs)

    results = asyncio.run(both())
    assert [r.output for r in results] == ["Found: notes on Look up apples"] * 2
    assert sorted(e.headers["x-mockllm-conversation"] for e in served.journal) == ["first", "first", "second", "second"]
    assert [(e.status, e.rule) for e in served.journal] == [(200, "lookup-loop")] * 4
