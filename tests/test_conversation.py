"""Rules that tell the steps of an agent loop apart, in every API: `tool`, `tool_result`, `turn` and
`last_role` (mockllm/conversation.py reads them), replies that quote the request (`{tool_result}`,
mockllm/template.py), tool-call arguments made for the offered tool's schema, and `replies:` that
count per conversation (`sequence: conversation`).

Real clients against the real server: the openai SDK (chat and Responses), anthropic, google-genai.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest
from google import genai
from google.genai import types

from mockllm import Engine, ScenarioError, load_text

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]}, "days": {"type": "integer"}},
    "required": ["city", "days"],
    "additionalProperties": False,
}

# One loop, written once for every API: call the tool first, then answer from its result.
LOOP = {
    "version": 1,
    "rules": [
        {
            "name": "answer",
            "match": {"tool_result": {"name": "forecast", "contains": "un"}, "turn": 1, "last_role": "tool"},
            "reply": {"content": "It will be {tool_result} ({tool_name} said, turn {turn}, {model})."},
        },
        {
            "name": "stuck",
            "match": {"tool_result": {}},
            "reply": {"content": "The tool said {tool_result}, which I cannot use."},
        },
        {
            "name": "call",
            "match": {"tool": "fore*", "turn": 0, "last_role": "user"},
            "reply": {"tool_calls": [{"name": "forecast"}]},
        },
    ],
}
ASK = "Weather in the north?"


def _openai(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def _rule(served: Any) -> list[str | None]:
    return [entry.rule for entry in served.journal]


def test_chat_loop_by_rules(serve) -> None:
    served = serve(LOOP)
    client = _openai(served)
    tools: Any = [{"type": "function", "function": {"name": "forecast", "parameters": SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": ASK}]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools).choices[0]
    (call,) = first.message.tool_calls or []
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, SCHEMA)  # made for the offered tool's schema
    messages += [
        first.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
    ]
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert second.choices[0].message.content == "It will be Sunny (forecast said, turn 1, gpt-4o)."
    # The same, streamed: the text is made per call, the same bytes' worth of text.
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == second.choices[0].message.content
    # A result that does not say "un": the next rule down.
    messages[-1]["content"] = "Rain"
    third = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert third.choices[0].message.content == "The tool said Rain, which I cannot use."
    assert _rule(served) == ["call", "answer", "answer", "stuck"]


def test_chat_parallel_results_and_the_function_role(serve) -> None:
    served = serve(
        {
            "version": 1,
            "rules": [
                {
                    "match": {"tool_result": {"name": "b", "equals": "two"}},
                    "reply": {"content": "b said {tool_result}"},
                },
                {"match": {"tool_result": {"name": "legacy"}}, "reply": {"content": "legacy: {tool_result}"}},
            ],
        }
    )
    client = _openai(served)
    calls = [{"id": f"call_{n}", "type": "function", "function": {"name": n, "arguments": "{}"}} for n in ("a", "b")]
    messages: Any = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_a", "content": "one"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "two"}]},
    ]
    answer = client.chat.completions.create(model="m", messages=messages)
    # Any result of the last turn may match; {tool_result} quotes the last one.
    assert answer.choices[0].message.content == "b said two"
    legacy: Any = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "function_call": {"name": "legacy", "arguments": "{}"}},
        {"role": "function", "name": "legacy", "content": "old style"},
    ]
    assert client.chat.completions.create(model="m", messages=legacy).choices[0].message.content == "legacy: old style"


def test_responses_loop_by_rules_through_a_chain(serve) -> None:
    served = serve(LOOP)
    client = _openai(served)
    tools: Any = [{"type": "function", "name": "forecast", "parameters": SCHEMA, "strict": True}]
    first = client.responses.create(model="gpt-4.1", input=ASK, tools=tools)
    (call,) = [item for item in first.output if item.type == "function_call"]
    jsonschema.validate(json.loads(call.arguments), SCHEMA)
    # Only the tool's output is sent: the chain holds the call (its name) and the first turn.
    follow: Any = [{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}]
    second = client.responses.create(model="gpt-4.1", input=follow, tools=tools, previous_response_id=first.id)
    assert second.output_text == "It will be Sunny (forecast said, turn 1, gpt-4.1)."
    # The whole conversation as input items (no chain): the same facts.
    items: Any = [
        {"role": "user", "content": ASK},
        {"type": "function_call", "call_id": call.call_id, "name": "forecast", "arguments": call.arguments},
        *follow,
    ]
    third = client.responses.create(model="gpt-4.1", input=items, tools=tools, stream=True)
    text = "".join(event.delta for event in third if event.type == "response.output_text.delta")
    assert text == second.output_text
    assert _rule(served) == ["call", "answer", "answer"]


def test_anthropic_loop_by_rules(serve) -> None:
    served = serve(LOOP)
    client = anthropic.Anthropic(base_url=served.base_url.removesuffix("/v1"), api_key="test", max_retries=0)
    tools: Any = [{"name": "forecast", "description": "The forecast.", "input_schema": SCHEMA}]
    messages: list[Any] = [{"role": "user", "content": ASK}]
    first = client.messages.create(model="claude-sonnet-4-5", max_tokens=512, messages=messages, tools=tools)
    (use,) = [block for block in first.content if block.type == "tool_use"]
    jsonschema.validate(use.input, SCHEMA)
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": [{"type": "text", "text": "Sunny"}]}],
        },
    ]
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=512, messages=messages, tools=tools) as stream:
        text = "".join(stream.text_stream)
    assert text == "It will be Sunny (forecast said, turn 1, claude-sonnet-4-5)."
    assert _rule(served) == ["call", "answer"]


def test_gemini_loop_by_rules(serve) -> None:
    served = serve(LOOP)
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=served.base_url.removesuffix("/v1")))
    declaration = types.FunctionDeclaration(name="forecast", parameters_json_schema=SCHEMA)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    contents: list[Any] = [types.Content(role="user", parts=[types.Part(text=ASK)])]
    first = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    (call,) = first.function_calls or []
    jsonschema.validate(call.args, SCHEMA)
    contents += [
        first.candidates[0].content,  # type: ignore[index]
        # The SDK wraps a plain result as {"result": ...}: its one string is the result's text.
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="forecast", response={"result": "Sunny"})]
        ),
    ]
    second = client.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    assert second.text == "It will be Sunny (forecast said, turn 1, gemini-2.5-flash)."
    assert _rule(served) == ["call", "answer"]


def test_near_misses_say_why_each_condition_failed(serve) -> None:
    served = serve(LOOP)
    client = _openai(served)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": ASK}])
    message = caught.value.response.json()["error"]["message"]
    assert "tool_result: the last message is a user message, not a tool's result" in message
    assert "tool: no offered tool is named 'fore*' (offered: none)" in message
    tools: Any = [{"type": "function", "function": {"name": "forecast", "parameters": SCHEMA}}]
    calls = [{"id": "c1", "type": "function", "function": {"name": "other", "arguments": "{}"}}]
    asked: Any = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": "thinking"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "Sunny"},
    ]
    served.engine.router.clear()
    served.engine.use(load_text(json.dumps({**LOOP, "rules": [LOOP["rules"][0], LOOP["rules"][2]]}), "loop.yaml"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=asked, tools=tools)
    message = caught.value.response.json()["error"]["message"]
    assert "tool_result: the result is of 'other', not 'forecast'" in message
    assert "turn: wanted 1 model turn(s) before this request, the conversation has 2" in message
    assert "last_role: wanted user, the last message is tool" in message


def test_text_hints_when_a_text_nearly_matches(serve) -> None:
    served = serve({"version": 1, "rules": [{"match": {"user": {"equals": "Hello world"}}, "reply": {"content": "x"}}]})
    client = _openai(served)
    hints = {
        "hello World": "differs only in case",
        "Hello  world": "differs only in spacing",
        "Hello wrld": "first differs at character 8",
    }
    for text, hint in hints.items():
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        assert hint in caught.value.response.json()["error"]["message"]


# -- templates -------------------------------------------------------------------------------


def test_templates_quote_the_request_and_leave_other_braces(serve) -> None:
    served = serve(
        {
            "version": 1,
            "rules": [
                {
                    "match": {"user": {"contains": "chunks"}},
                    "reply": {"chunks": ["You said ", "{user}", ' {"json": true} {{user}}']},
                },
                {
                    "match": {"user": {"contains": "search"}},
                    "reply": {"tool_calls": [{"name": "search", "arguments": {"query": "{user}", "n": 3}}]},
                },
                {"match": {"user": {"contains": "no"}}, "reply": {"refusal": "I won't do {user}."}},
                {"reply": {"content": "{system}|{user}|{model}|{tool_result}|{tool_name}|{turn}"}},
            ],
        }
    )
    client = _openai(served)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "chunks"}], stream=True)
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content is not None]
    assert deltas == ["", "You said ", "chunks", ' {"json": true} {user}']  # the role delta's "", then one per chunk
    said = 'search "quotes" \\ and\nlines'
    call = client.chat.completions.create(model="m", messages=[{"role": "user", "content": said}])
    (tool,) = call.choices[0].message.tool_calls or []
    assert json.loads(tool.function.arguments) == {"query": said, "n": 3}  # escaped as JSON
    refused = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "no"}])
    assert refused.choices[0].message.refusal == "I won't do no."
    plain = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    )
    assert plain.choices[0].message.content == "S|U|gpt-x|||0"
    assert plain.usage is not None and plain.usage.completion_tokens > 0


def test_braces_that_are_no_placeholder_are_sent_as_written(serve) -> None:
    code = 'print(f"{x} {user_name}") and {{x}} {{}} {"json": {}} {{user}}'
    client = _openai(serve({"version": 1, "rules": [{"reply": {"content": code}}]}))
    answer = _say(client, "show me")
    assert answer == 'print(f"{x} {user_name}") and {{x}} {{}} {"json": {}} {user}'


@pytest.mark.parametrize(
    ("match", "says"),
    [
        ({"turn": -1}, "expected a number >= 0, got -1"),
        ({"turn": {"min": 3, "max": 1}}, "min (3) is above max (1)"),
        ({"tool_result": {"equals": "a", "contains": "b"}}, "at most one of equals, contains, regex"),
        ({"last_role": "bot"}, "'user', 'assistant', 'tool' or 'system'"),
        ({"tool": []}, "at least one tool name"),
    ],
)
def test_bad_conditions_are_refused_with_their_key(match: dict[str, Any], says: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Engine().add({"match": match, "reply": {"content": "x"}})
    assert says in str(caught.value) and f"match.{next(iter(match))}" in str(caught.value)


# -- tool-call arguments --------------------------------------------------------------------


def test_arguments_left_out_are_made_for_the_offered_schema(serve) -> None:
    rules: Any = {
        "version": 1,
        "rules": [
            {
                "match": {"user": {"contains": "given"}},
                "reply": {"tool_calls": [{"name": "forecast", "arguments": {}}]},
            },
            {"reply": {"tool_calls": [{"name": "forecast"}, {"name": "unoffered"}]}},
        ],
    }
    made = []
    for _ in range(2):  # a fresh server each time: the same arguments, run after run
        client = _openai(serve(rules))
        tools: Any = [{"type": "function", "function": {"name": "forecast", "parameters": SCHEMA}}]
        answer = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "go"}], tools=tools)
        calls = answer.choices[0].message.tool_calls or []
        jsonschema.validate(json.loads(calls[0].function.arguments), SCHEMA)
        assert calls[1].function.arguments == "{}"  # not offered: no schema to follow
        made.append(calls[0].function.arguments)
        given = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "given"}], tools=tools)
        assert (given.choices[0].message.tool_calls or [])[0].function.arguments == "{}"
    assert made[0] == made[1]


# -- sequences per conversation ------------------------------------------------------------

SEQUENCE = {
    "version": 1,
    "rules": [
        {
            "name": "steps",
            "sequence": "conversation",
            "match": {"user": {"contains": "plan"}},
            "replies": [{"content": "step 1"}, {"content": "step 2"}, {"content": "step 3"}],
        },
        {"name": "shared", "match": {"user": {"contains": "shared"}}, "replies": [{"content": "a"}, {"content": "b"}]},
    ],
}


def _say(client: openai.OpenAI, text: str, *, system: str | None = None, **extra: Any) -> str:
    messages: Any = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return client.chat.completions.create(model="m", messages=messages, **extra).choices[0].message.content or ""


def test_each_conversation_plays_the_sequence_from_its_start(serve) -> None:
    served = serve(SEQUENCE)
    client = _openai(served)
    assert [_say(client, "plan A"), _say(client, "plan B"), _say(client, "plan A")] == ["step 1", "step 1", "step 2"]
    # The system text is part of what tells conversations apart; the header, when sent, is all of it.
    assert _say(client, "plan A", system="other") == "step 1"
    header = {"x-mockllm-conversation": "run-2"}
    assert _say(client, "plan A", extra_headers=header) == "step 1"
    assert _say(client, "plan B", extra_headers=header) == "step 2"
    assert _say(client, "plan A") == "step 3"
    with pytest.raises(openai.APIStatusError) as caught:
        _say(client, "plan A")
    message = caught.value.response.json()["error"]["message"]
    assert "replies: already served 3 of 3 call(s) in this conversation" in message
    assert "sequence: conversation" in message  # the hint of a played-out closest rule
    # A per-server rule still plays once for everyone.
    assert [_say(client, "shared 1"), _say(client, "shared 2")] == ["a", "b"]
    served.engine.reset()
    assert _say(client, "plan A") == "step 1"


def test_two_conversations_in_parallel_each_get_their_sequence(serve) -> None:
    served = serve(SEQUENCE)
    client = _openai(served)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def run(name: str) -> None:
        barrier.wait()
        got[name] = [_say(client, f"plan {name}") for _ in range(3)]

    threads = [threading.Thread(target=run, args=(name,)) for name in ("X", "Y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert got == {"X": ["step 1", "step 2", "step 3"], "Y": ["step 1", "step 2", "step 3"]}
    ids = [entry.json for entry in served.journal]
    assert len(ids) == 6


def test_a_responses_chain_is_one_conversation(serve) -> None:
    steps = {**SEQUENCE["rules"][0], "match": {}}  # type: ignore[dict-item]
    client = _openai(serve({"version": 1, "rules": [steps]}))
    first = client.responses.create(model="m", input="plan the trip")
    again = client.responses.create(model="m", input="go on", previous_response_id=first.id)
    other = client.responses.create(model="m", input="plan a party")
    same = client.responses.create(model="m", input="plan the trip")  # the same start: the same conversation
    assert [first.output_text, again.output_text, other.output_text, same.output_text] == [
        "step 1",
        "step 2",
        "step 1",
        "step 3",
    ]
    assert len({first.id, again.id, other.id, same.id}) == 4  # ids count every call of the rule


def test_file_level_sequence_and_memory_bound() -> None:
    scenario = load_text(
        "version: 1\nsequence: conversation\nrules:\n"
        "  - replies: [{content: one}, {content: two}]\n"
        "  - sequence: server\n    match: {user: {contains: never}}\n    reply: {content: x}\n",
        "file.yaml",
    )
    assert [rule.per_conversation for rule in scenario.rules] == [True, False]
    engine = Engine([scenario])
    engine.router.CONVERSATIONS = 3  # type: ignore[misc]
    client = openai.OpenAI(
        base_url="http://mockllm.test/v1",
        api_key="test",
        http_client=httpx.Client(transport=_transport(engine)),
    )
    for n in range(10):
        assert _say(client, f"conversation {n}") == "one"
    talks = engine.router._talks[id(engine.router.rules[0])]
    assert len(talks) == 3  # the least recent conversations are forgotten
    assert _say(client, "conversation 9") == "two"
    assert _say(client, "conversation 0") == "one"  # forgotten: it starts over


def _transport(engine: Engine) -> Any:
    from mockllm.transport import transport

    return transport(engine, library="httpx")


# -- Python code in rules (the plugin's callables, at the Engine) ----------------------------


def test_engine_rules_with_python_predicates_and_replies() -> None:
    engine = Engine(journal_limit=None)

    async def echo(request: Any) -> dict[str, Any]:
        return {"content": f"async {request.model} {request.user_text}"}

    engine.add({"match": {"user": {"contains": "async"}}}, respond=echo)
    engine.add({"reply": {"content": "picked"}}, when=lambda request: "pick" in (request.user_text or ""))
    engine.add({"match": {"user": {"contains": "boom"}}}, respond=lambda request: {"content": 1 / 0})
    engine.add({"match": {"user": {"contains": "bad keys"}}}, respond=lambda request: {"contnet": "x"})
    client = openai.OpenAI(
        base_url="http://mockllm.test/v1",
        api_key="t",
        max_retries=0,
        http_client=httpx.Client(transport=_transport(engine)),
    )
    assert _say(client, "async please") == "async m async please"
    assert _say(client, "pick me") == "picked"
    for text, says in (("boom", "ZeroDivisionError: division by zero"), ("bad keys", "contnet")):
        with pytest.raises(openai.InternalServerError) as caught:
            _say(client, text)
        assert says in caught.value.response.json()["error"]["message"]
        assert says in (engine.journal.last.error or "")
    with pytest.raises(openai.APIStatusError) as missed:
        _say(client, "nothing")
    assert "match: the test's predicate" in missed.value.response.json()["error"]["message"]
