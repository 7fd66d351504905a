"""`mockllm.add(match=..., reply=...)` and `mockllm.reply(...)`: rules as keywords, and Python code in them.

A callable `match` or `reply` takes the `mockllm.Request` (sync or async). Real SDK clients, in both
modes: the callables run inside the server's engine either way. What a failing callable makes the
test say is in test_reports.py (through pytester: it fails the test on purpose).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import openai
import pytest
from mockllm_pytest import MockLLM
from plugin_helpers import in_both_modes, user

from mockllm import Request, Rule, Scenario

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def ask(mockllm: MockLLM, text: str, model: str = "gpt-4o-mini", **kwargs: Any) -> str | None:
    answer = mockllm.client().chat.completions.create(model=model, messages=user(text), **kwargs)
    return answer.choices[0].message.content


# -- add() with keywords ----------------------------------------------------------------------------


@in_both_modes()
def test_add_with_a_dict_match_and_a_str_or_dict_reply(mockllm: MockLLM, mode: str) -> None:
    rule = mockllm.add(match={"user": {"contains": "hello"}, "model": "gpt-4o*"}, reply="Hi!", name="greet")
    mockllm.add(match={"model": "o3"}, reply={"content": "thinking", "model": "o3-2025-04-16"})
    assert isinstance(rule, Rule) and rule.name == "greet" and rule.origin.startswith("test_callables.py:")
    assert ask(mockllm, "hello there") == "Hi!"
    answer = mockllm.client().chat.completions.create(model="o3", messages=user("hello"))
    assert (answer.choices[0].message.content, answer.model) == ("thinking", "o3-2025-04-16")
    assert [e.rule for e in mockllm.requests] == ["greet", mockllm.engine.router.rules[1].name]


@in_both_modes()
def test_add_replies_times_priority_and_optional(mockllm: MockLLM, mode: str) -> None:
    mockllm.add(reply="fallback", priority=-1, name="fallback", optional=True)
    steps = mockllm.add(match={"user": {"contains": "step"}}, replies=["one", {"content": "two"}], name="steps")
    mockllm.add(match={"user": {"contains": "once"}}, reply="only once", times=1)
    assert (steps.replies[0].content, len(steps.replies), steps.cycle) == ("one", 2, False)
    assert [ask(mockllm, t) for t in ("step", "step", "step")] == ["one", "two", "fallback"]
    assert [ask(mockllm, t) for t in ("once", "once")] == ["only once", "fallback"]
    assert [r.optional for r in mockllm.engine.router.rules] == [False, False, True]  # by priority


@in_both_modes()
def test_add_sequence_per_conversation(mockllm: MockLLM, mode: str) -> None:
    mockllm.add(replies=["first", "second"], sequence="conversation", name="talk")
    client = mockllm.client()

    def say(conversation: str) -> str | None:
        answer = client.chat.completions.create(
            model="m", messages=user("hi"), extra_headers={"x-mockllm-conversation": conversation}
        )
        return answer.choices[0].message.content

    assert [say("a"), say("b"), say("a"), say("b")] == ["first", "first", "second", "second"]


@in_both_modes()
def test_the_mapping_form_still_works(mockllm: MockLLM, mode: str) -> None:
    rule = mockllm.add({"name": "one", "match": {"user": {"equals": "ping"}}, "reply": {"content": "pong"}})
    scenario = mockllm.add({"rules": [{"name": "two", "reply": {"content": "anything"}}]})
    assert isinstance(rule, Rule) and rule.name == "one"
    assert isinstance(scenario, Scenario) and [r.name for r in scenario.rules] == ["two"]
    assert (ask(mockllm, "ping"), ask(mockllm, "pong")) == ("pong", "anything")


# -- callables ----------------------------------------------------------------------------------------


@in_both_modes()
def test_a_callable_match_sees_the_request(mockllm: MockLLM, mode: str) -> None:
    seen: list[Request] = []

    def asks_for_weather(request: Request) -> bool:
        seen.append(request)
        return "get_weather" in request.tools and request.model.startswith("gpt-")

    mockllm.add(match=asks_for_weather, reply="sunny", name="weather")
    mockllm.add(reply="no tools", name="rest")
    assert ask(mockllm, "weather in Paris?", tools=[WEATHER]) == "sunny"
    assert ask(mockllm, "weather in Paris?") == "no tools"  # offers no tool
    assert ask(mockllm, "weather in Paris?", model="o3", tools=[WEATHER]) == "no tools"
    assert [e.rule for e in mockllm.requests] == ["weather", "rest", "rest"]
    first = seen[0]
    assert (first.endpoint, first.model, first.stream, first.user_text) == (
        "chat",
        "gpt-4o-mini",
        False,
        "weather in Paris?",
    )
    assert first.tools == ("get_weather",) and first.body["tools"][0]["function"]["name"] == "get_weather"
    assert first.headers["authorization"].startswith("Bearer ")


@in_both_modes()
def test_a_callable_match_is_tried_in_order_with_declarative_rules(mockllm: MockLLM, mode: str) -> None:
    mockllm.add(match={"user": {"contains": "urgent"}}, reply="declarative first", name="declared")
    mockllm.add(match=lambda request: len(request.user_text or "") > 20, reply="a long one", name="long")
    mockllm.add(match={"model": "gpt-*"}, reply="any gpt", name="gpt")
    assert ask(mockllm, "urgent, and a long message at that") == "declarative first"
    assert ask(mockllm, "a message of more than twenty characters") == "a long one"
    assert ask(mockllm, "short") == "any gpt"


@in_both_modes()
def test_a_callable_reply_is_made_for_each_call(mockllm: MockLLM, mode: str) -> None:
    calls: list[str | None] = []

    def echo(request: Request) -> dict[str, Any]:
        calls.append(request.user_text)
        return {"content": f"you said {request.user_text!r} to {request.model}", "usage": {"completion_tokens": 7}}

    mockllm.add(match={"user": {"contains": "echo"}}, reply=echo, name="echo")
    mockllm.add(match={"user": {"contains": "str"}}, reply=lambda request: f"a str for {request.endpoint}")
    first = mockllm.client().chat.completions.create(model="gpt-4o", messages=user("echo one"))
    assert first.choices[0].message.content == "you said 'echo one' to gpt-4o"
    assert first.usage is not None and first.usage.completion_tokens == 7
    assert ask(mockllm, "echo two", model="gpt-5") == "you said 'echo two' to gpt-5"
    assert ask(mockllm, "a str please") == "a str for chat"
    assert calls == ["echo one", "echo two"]
    # streamed, its reply is made once and sent chunk by chunk
    with mockllm.client().chat.completions.create(model="m", messages=user("echo streamed"), stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "you said 'echo streamed' to m" and len(mockllm.requests.last.sent) > 3


@in_both_modes()
def test_a_callable_reply_can_call_the_offered_tool(mockllm: MockLLM, mode: str) -> None:
    def agent_step(request: Request) -> dict[str, Any]:
        if request.body["messages"][-1]["role"] == "tool":
            return {"content": f"It is {request.body['messages'][-1]['content']}."}
        city = (request.user_text or "").rsplit(" ", 1)[-1].rstrip("?")
        return {"tool_calls": [{"name": request.tools[0], "arguments": {"city": city}}]}

    mockllm.add(match={"tool": "get_weather"}, reply=agent_step)
    client = mockllm.client()
    messages: list[Any] = user("weather in Paris?")
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])
    call: Any = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "It is sunny."


@in_both_modes()
def test_async_callables_with_the_async_client(mockllm: MockLLM, mode: str) -> None:
    async def is_question(request: Request) -> bool:
        await asyncio.sleep(0)
        return (request.user_text or "").endswith("?")

    async def answer(request: Request) -> str:
        await asyncio.sleep(0)
        return f"async answer to {request.user_text}"

    mockllm.add(match=is_question, reply=answer, name="question")
    mockllm.add(reply="not a question", name="statement")

    async def main() -> list[str | None]:
        async with mockllm.async_client() as client:
            texts = []
            for text in ("why?", "because", "how?"):
                got = await client.chat.completions.create(model="m", messages=user(text))
                texts.append(got.choices[0].message.content)
            stream = await client.chat.completions.create(model="m", messages=user("streamed?"), stream=True)
            texts.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
            return texts

    assert asyncio.run(main()) == [
        "async answer to why?",
        "not a question",
        "async answer to how?",
        "async answer to streamed?",
    ]
    assert [e.rule for e in mockllm.requests] == ["question", "statement", "question", "question"]


@in_both_modes()
def test_callables_answer_anthropic_and_the_responses_api(mockllm: MockLLM, mode: str) -> None:
    mockllm.add(
        match=lambda request: request.endpoint in ("anthropic", "responses"),
        reply=lambda request: f"{request.endpoint}: {request.user_text}",
    )
    message = mockllm.anthropic_client().messages.create(
        model="claude-x", max_tokens=32, messages=[{"role": "user", "content": "hi Claude"}]
    )
    assert message.content[0].text == "anthropic: hi Claude"  # type: ignore[union-attr]
    assert mockllm.client().responses.create(model="gpt-4o", input="hi there").output_text == "responses: hi there"

    async def streamed() -> str:
        async with (
            mockllm.async_anthropic_client() as client,
            client.messages.stream(
                model="claude-x", max_tokens=32, messages=[{"role": "user", "content": "stream it"}]
            ) as stream,
        ):
            return "".join([text async for text in stream.text_stream])

    assert asyncio.run(streamed()) == "anthropic: stream it"


@in_both_modes(allow_unmatched=True)
def test_a_callable_match_that_says_no_is_named_in_the_near_miss(mockllm: MockLLM, mode: str) -> None:
    def only_on_mondays(request: Request) -> bool:
        return False

    mockllm.add(match=only_on_mondays, reply="monday", name="monday")
    with pytest.raises(openai.APIStatusError) as raised:
        ask(mockllm, "hello")
    assert raised.value.status_code == 418
    assert "    - monday (test_callables.py:" in (mockllm.last_request.error or "")
    # The predicate by its name and where it is defined.
    assert "the test's predicate only_on_mondays (test_callables.py:" in (mockllm.last_request.error or "")
    assert ") returned false" in (mockllm.last_request.error or "")


@in_both_modes()
def test_a_callable_reply_is_sent_as_written(mockllm: MockLLM, mode: str) -> None:
    # The callable has the request: its text is final, as the user wrote it ({user} included).
    mockllm.add(reply=lambda request: f"You asked: {request.user_text}")
    assert ask(mockllm, "what do {user} and {{user}} mean?") == "You asked: what do {user} and {{user}} mean?"


# -- reply() --------------------------------------------------------------------------------------------


@in_both_modes()
def test_reply_when_model_is_the_condition_and_model_the_reported_model(mockllm: MockLLM, mode: str) -> None:
    mockllm.reply("five", when_model="gpt-5*", model="gpt-5-2025-08-07", name="five")
    mockllm.reply("pinned", model="gpt-4o-2024-08-06", name="any")
    client = mockllm.client()
    five = client.chat.completions.create(model="gpt-5-mini", messages=user("hi"))
    other = client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert (five.choices[0].message.content, five.model) == ("five", "gpt-5-2025-08-07")
    assert (other.choices[0].message.content, other.model) == ("pinned", "gpt-4o-2024-08-06")


@in_both_modes()
def test_reply_replies_play_in_order(mockllm: MockLLM, mode: str) -> None:
    rule = mockllm.reply(replies=["first", {"content": "second"}, {"error": {"status": 429}}], when_user_contains="go")
    mockllm.reply("after", name="after")
    client = mockllm.client(max_retries=0)
    assert [ask(mockllm, "go"), ask(mockllm, "go")] == ["first", "second"]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=user("go"))
    assert ask(mockllm, "go") == "after"
    assert len(rule.replies) == 3 and not rule.cycle


# -- wrong combinations: TypeError, at the line that added the rule ------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m.add({"reply": {"content": "x"}}, name="n"),
            "mockllm.add() takes one rule as a mapping or as keywords, not both; got a mapping and name=",
        ),
        (lambda m: m.add(reply="a", replies=["b"]), "mockllm.add() takes reply= * or replies= *, not both"),
        (lambda m: m.add(match={"model": "m"}), "mockllm.add() needs reply= * or replies= *"),
        (
            lambda m: m.add(match="hello", reply="x"),
            "mockllm.add(match=...) takes a dict of conditions or a callable; got str",
        ),
        (lambda m: m.add(replies="one", reply=None), "mockllm.add(replies=...) takes a list of dicts or strs; got str"),
        (
            lambda m: m.add(replies=[lambda r: "x"]),
            "mockllm: replies[0] must be a dict of reply keys or a str (a callable goes in reply=); got function",
        ),
        (lambda m: m.add(reply=3), "mockllm: reply must be a dict of reply keys or a str; got int"),
        (lambda m: m.add(["a list"]), "mockllm.add() takes a rule mapping *; got list"),
        (
            lambda m: m.reply("x", replies=["y"]),
            "mockllm.reply() takes content and reply keys, or replies=, not both; got content and replies=",
        ),
        (
            lambda m: m.reply("x", model="gpt-5*"),
            "mockllm.reply(model='gpt-5*'): model= is the model the answer reports;"
            " to match the request's model, write when_model='gpt-5*'",
        ),
    ],
    ids=[
        "mapping-and-keywords",
        "reply-and-replies",
        "no-reply",
        "match-str",
        "replies-str",
        "callable-in-replies",
        "reply-int",
        "not-a-mapping",
        "reply-content-and-replies",
        "reply-model-glob",
    ],
)
def test_wrong_combinations_raise_type_errors(mockllm: MockLLM, call: Any, message: str) -> None:
    with pytest.raises(TypeError) as raised:
        call(mockllm)
    pattern = ".*".join(re.escape(part) for part in message.split("*"))  # `*`: any text
    assert re.fullmatch(pattern, str(raised.value)), str(raised.value)
    assert mockllm.engine.router.rules == []  # nothing was added


def test_bad_rule_keys_are_refused_with_the_line_that_added_them(mockllm: MockLLM) -> None:
    from mockllm import ScenarioError

    with pytest.raises(ScenarioError, match=r"test_callables.py:\d+: .*sequence"):
        mockllm.add(reply="x", sequence="per-test")  # type: ignore[call-overload]
    with pytest.raises(ScenarioError, match=r"test_callables.py:\d+: .*contnet"):
        mockllm.add(reply={"contnet": "typo"})
