"""mockllm/structured.py: seeded JSON valid against the schemas SDK helpers send, and what each API's
request asks for, read from the bodies the real SDKs send to the real server.

Wire facts: openai's chat `response_format` / Responses `text.format` and pydantic_function_tool come
from openai/lib/_parsing/_completions.py and openai/lib/_pydantic.py (to_strict_json_schema); the
anthropic SDK's `output_config.format` from anthropic/resources/messages/messages.py (parse) and
`tool_choice` from types/tool_choice_param.py; google-genai's camelCase `generationConfig`, its
OpenAPI-subset `responseSchema` (upper-case types, `nullable`, `property_ordering`) and
`parameters_json_schema` from google/genai/models.py (_GenerateContentConfig_to_mldev) and _transformers.py.
Each SDK test checks the body's shape itself before asking `asked()`, so an SDK that changes what it
sends fails here.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import enum
import ipaddress
import json
import pathlib
import subprocess
import sys
import time
import uuid
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.lib._pydantic import to_strict_json_schema
from pydantic import AnyUrl, BaseModel, Field, HttpUrl, IPvAnyAddress

from mockllm.fakejson import MAX_NODES
from mockllm.structured import Asked, asked, instance, json_text, tool_arguments

SEEDS = range(40)
VALIDATOR = jsonschema.Draft202012Validator


# -- the models SDK helpers turn into schemas ---------------------------------------------------


class Color(enum.StrEnum):
    red = "red"
    green = "green"


class Address(BaseModel):
    street: str
    city: str
    zip: str = Field(pattern=r"^[0-9]{5}$")


class Person(BaseModel):
    name: str = Field(min_length=2, max_length=40)
    age: int = Field(ge=0, le=130)
    email: str
    height: float = Field(gt=0, lt=3)
    favourite: Color
    address: Address
    nick: str | None = None
    tags: list[str] = Field(min_length=1, max_length=4)
    kind: Literal["human", "robot"]
    born: datetime.datetime
    day: datetime.date
    id: uuid.UUID
    code: str = Field(pattern=r"^[A-Z]{2}-\d{3,4}$")


class Node(BaseModel):
    value: int
    children: list[Node]


class Step(BaseModel):
    explanation: str
    output: str


class Math(BaseModel):
    steps: list[Step]
    final_answer: str


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Cat | Dog
    other: Cat | Dog | None
    scores: dict[str, float] = {}
    weights: list[float] = Field(default_factory=list, max_length=2)


class Tree(BaseModel):
    name: str
    left: Tree | None = None
    right: Tree | None = None


class Kinds(BaseModel):
    """pydantic's other formats, and a union its validator reads more strictly than the schema says."""

    at: datetime.time
    lasting: datetime.timedelta
    link: AnyUrl
    page: HttpUrl
    host: IPvAnyAddress
    v4: ipaddress.IPv4Address
    net: ipaddress.IPv4Network
    price: decimal.Decimal
    where: pathlib.Path
    raw: bytes
    big: int = Field(gt=10**20)
    quarter: float = Field(multiple_of=0.25)


MODELS: list[type[BaseModel]] = [Person, Node, Math, Pet, Address, Tree, Kinds]


def _valid(schema: Any, value: Any) -> None:
    errors = list(VALIDATOR(schema, format_checker=VALIDATOR.FORMAT_CHECKER).iter_errors(value))
    assert not errors, f"{value!r} is not valid: {errors[0].message} (at {list(errors[0].absolute_path)})"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "plain"])
def test_pydantic_schemas(model: type[BaseModel], strict: bool) -> None:
    # strict: what chat.completions.parse / responses.parse / pydantic_function_tool send
    schema = to_strict_json_schema(model) if strict else model.model_json_schema()
    values = [instance(schema, seed) for seed in SEEDS]
    for value in values:
        _valid(schema, value)
        model.model_validate(value)  # what the SDK's parse does with the answer
    assert len({json.dumps(v, sort_keys=True) for v in values}) > len(values) // 2, "seeds should vary the value"


def test_same_seed_same_value_and_text_looks_plausible() -> None:
    schema = to_strict_json_schema(Person)
    assert instance(schema, 7) == instance(schema, 7)
    person = instance(schema, 7)
    assert "@" in person["email"] and " " in person["name"]  # faker's, by property name
    assert person["born"].endswith("Z") and len(person["day"]) == 10


# Gemini's OpenAPI subset (ai.google.dev Schema): upper-case types, `nullable`, int64 counts as strings.
def _openapi_to_json_schema(schema: Any) -> Any:
    """The JSON Schema a Gemini schema means, to check values with jsonschema."""
    if isinstance(schema, list):
        return [_openapi_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("property_ordering", "propertyOrdering", "nullable") or (key == "format" and value == "enum"):
            continue
        if key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
            out[key] = int(value)
        elif key == "type":
            out[key] = value.lower()
        elif key == "properties":
            out[key] = {name: _openapi_to_json_schema(sub) for name, sub in value.items()}
        else:
            out[key] = _openapi_to_json_schema(value)
    if schema.get("nullable") is True:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


GEMINI_SCHEMAS = [
    {
        "type": "OBJECT",
        "properties": {
            "recipe_name": {"type": "STRING"},
            "ingredients": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2", "maxItems": "4"},
            "rating": {"type": "INTEGER", "minimum": 1, "maximum": 5, "nullable": True},
            "course": {"type": "STRING", "format": "enum", "enum": ["starter", "main", "dessert"]},
            "when": {"type": "STRING", "format": "date-time"},
            "vegan": {"type": "BOOLEAN"},
            "price": {"type": "NUMBER", "minimum": 0.5},
        },
        "required": ["recipe_name", "ingredients", "course", "vegan"],
        "propertyOrdering": ["recipe_name", "ingredients", "rating", "course", "when", "vegan", "price"],
    },
    {
        "type": "ARRAY",
        "items": {
            "type": "OBJECT",
            "properties": {"city": {"type": "STRING"}, "temps": {"type": "ARRAY", "items": {"type": "NUMBER"}}},
            "required": ["city", "temps"],
        },
    },
    {"type": "OBJECT", "properties": {"answer": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}}},
]


@pytest.mark.parametrize("schema", GEMINI_SCHEMAS, ids=["recipe", "cities", "anyof"])
def test_gemini_openapi_schemas(schema: dict[str, Any]) -> None:
    meant = _openapi_to_json_schema(schema)
    for seed in SEEDS:
        _valid(meant, instance(schema, seed))


ANTHROPIC_TOOLS = [
    {  # docs.anthropic.com "Tool use": get_weather
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
    {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 3, "maxLength": 12},
            "filters": {
                "type": "object",
                "properties": {"since": {"type": "string", "format": "date"}, "limit": {"type": "integer"}},
                "additionalProperties": False,
            },
            "ids": {"type": "array", "items": {"type": "string", "format": "uuid"}, "uniqueItems": True},
        },
        "required": ["query", "filters"],
        "additionalProperties": False,
    },
]


@pytest.mark.parametrize("schema", ANTHROPIC_TOOLS, ids=["weather", "search"])
def test_anthropic_tool_schemas(schema: dict[str, Any]) -> None:
    for seed in SEEDS:
        arguments = tool_arguments(schema, seed)
        _valid(schema, json.loads(arguments))


KEYWORDS = [
    {"const": {"a": [1, 2]}},
    {"enum": ["x", 3, None]},
    {"type": ["string", "null"]},
    {"oneOf": [{"type": "integer", "minimum": 10}, {"type": "string", "maxLength": 3}]},
    {"type": "integer", "exclusiveMinimum": 5, "exclusiveMaximum": 7},
    {"type": "integer", "minimum": -1000, "maximum": 1000, "multipleOf": 7},
    {"type": "number", "minimum": 0, "maximum": 1, "multipleOf": 0.1},
    {"type": "number", "exclusiveMinimum": 0.001, "exclusiveMaximum": 0.002},
    {"type": "number", "maximum": -5},
    {"type": "integer", "minimum": 10**30},
    {"type": "string", "minLength": 300},
    {"type": "string", "maxLength": 0},
    {"type": "string", "minLength": 5, "maxLength": 5},
    {"type": "string", "pattern": r"^\+?[1-9]\d{1,14}$"},
    {"type": "string", "pattern": r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"},
    {"type": "string", "pattern": r"^(foo|bar)-(\d+)-\2$"},
    {"type": "string", "pattern": r"^[^aeiou\s]{3}$"},
    {"type": "string", "pattern": r"^\w+$", "maxLength": 4},
    {"type": "string", "pattern": "^(?:[01]\\d|2[0-3]):[0-5]\\d$"},
    *({"type": "string", "format": f} for f in ("date-time", "date", "time", "email", "uuid", "uri", "ipv4", "ipv6")),
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3}, "uniqueItems": True, "minItems": 4},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3},
    {"type": "array", "contains": {"const": 42}, "items": {"type": "integer"}},
    {
        "allOf": [{"$ref": "#/$defs/A"}, {"properties": {"b": {"type": "integer"}}, "required": ["b"]}],
        "$defs": {"A": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}},
    },
    {"$ref": "#/$defs/x~1y", "$defs": {"x/y": {"type": "boolean"}}},
    {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 3},
    {"type": "object", "properties": {"a": {"type": "integer"}}, "maxProperties": 0},
    {"type": "object", "required": ["a", "b"], "additionalProperties": {"type": "integer"}},
    {"type": "object", "properties": {"a": {"type": "integer"}, "b": {}, "c": {}}, "minProperties": 3},
    {"anyOf": [{"type": "string"}, {"type": "number"}]},
    {},
    {"type": "object"},
]


@pytest.mark.parametrize("schema", KEYWORDS, ids=[json.dumps(k)[:60] for k in KEYWORDS])
def test_keywords(schema: dict[str, Any]) -> None:
    for seed in SEEDS:
        _valid(schema, instance(schema, seed))


# -- bounds ---------------------------------------------------------------------------------------


def _nested(depth: int, key: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = (
            {"type": "object", "properties": {"a": schema}, "required": ["a"]}
            if key == "object"
            else {key: [schema, {"type": "null"}]}
        )
    return schema


HOSTILE = {
    "deep objects": _nested(5000, "object"),
    "deep anyOf": _nested(5000, "anyOf"),
    "self-required $ref": {
        "$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "required": ["a"]}},
        "$ref": "#/$defs/A",
    },
    "branching $ref": {
        "$defs": {
            "A": {
                "type": "object",
                "properties": {"l": {"$ref": "#/$defs/A"}, "r": {"$ref": "#/$defs/A"}},
                "required": ["l", "r"],
            }
        },
        "$ref": "#/$defs/A",
    },
    "ref loop": {"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"},
    "huge minItems": {
        "type": "array",
        "items": {"type": "array", "items": {"type": "string", "minLength": 10**9}, "minItems": 10**9},
        "minItems": 10**9,
    },
    "10 MB enum": {"type": "string", "enum": [f"value-{i:08}" for i in range(700_000)]},
    "100k required properties": {
        "type": "object",
        "properties": {f"p{i}": {"type": "string"} for i in range(100_000)},
        "required": [f"p{i}" for i in range(100_000)],
    },
    "huge repeat": {"type": "string", "pattern": "(a{1000}){1000}"},
    "nested stars": {"type": "string", "pattern": "(((((((a*)*b*)*)*c*)*)*)*)*$"},
    "deep groups": {"type": "string", "pattern": "(" * 400 + "a" + ")" * 400},
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_schemas_are_bounded(name: str) -> None:
    schema = HOSTILE[name]
    started = time.perf_counter()
    text = json_text(schema, 1)
    elapsed = time.perf_counter() - started
    print(f"{name}: {elapsed * 1000:.1f} ms, {len(text)} characters")
    assert elapsed < 0.5, f"{name} took {elapsed * 1000:.0f} ms"
    assert len(text) < 1_000_000
    if name in ("10 MB enum", "nested stars"):  # the others have no finite instance, or defeat jsonschema itself
        _valid(schema, json.loads(text))


def test_typical_schema_costs_well_under_a_millisecond_or_two() -> None:
    schema = to_strict_json_schema(Person)
    instance(schema, 0)
    started = time.perf_counter()
    for seed in range(200):
        instance(schema, seed)
    each = (time.perf_counter() - started) / 200
    print(f"Person (13 fields, nested, formats, patterns): {each * 1000:.3f} ms per value")
    assert each < 0.005
    assert MAX_NODES >= 1000  # a model of a few hundred fields still fits the budget


# -- the same in every process ---------------------------------------------------------------------

_CHILD = """
import json, sys
from mockllm.structured import instance
schemas = json.load(sys.stdin)
print(json.dumps([instance(s, seed) for s in schemas for seed in range(5)]))
"""


def test_the_same_value_in_every_process() -> None:
    schemas = [to_strict_json_schema(m) for m in MODELS] + GEMINI_SCHEMAS + ANTHROPIC_TOOLS
    here = [instance(s, seed) for s in schemas for seed in range(5)]
    for hash_seed in ("1", "4242"):
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(schemas),
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
            check=True,
            timeout=60,
        )
        assert json.loads(done.stdout) == json.loads(json.dumps(here)), f"PYTHONHASHSEED={hash_seed} differs"


def test_tool_arguments() -> None:
    assert tool_arguments(None, 1) == "{}"
    assert tool_arguments({}, 1) == "{}"
    assert tool_arguments({"type": "object", "properties": {}}, 1) == "{}"
    text = tool_arguments(ANTHROPIC_TOOLS[0], 3)
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)  # compact, as the APIs send
    anything = json.loads(json_text(None, 1))  # json_object: some object, not an empty one
    assert isinstance(anything, dict) and anything and all(isinstance(v, str) for v in anything.values())


# -- asked(): the bodies the real SDKs send, to the real server --------------------------------------

ANY_TEXT = {"rules": [{"name": "text", "reply": {"content": "not json"}}]}


def _sent(served: Any, call: Any) -> tuple[str, dict[str, Any]]:
    """Run the SDK call (its parse of the text answer may fail: only the request matters here)."""
    with contextlib.suppress(Exception):  # each SDK raises its own error on a text that is not JSON
        call()
    entry = served.journal.last
    return entry.endpoint, entry.json


def _answered(serve: Any, reply: dict[str, Any]) -> Any:
    return serve({"rules": [{"name": "answer", "reply": reply}]})


def _openai(served: Any) -> Any:
    import openai

    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def test_chat_parse(serve: Any) -> None:
    served = serve(ANY_TEXT)
    messages = [{"role": "user", "content": "solve 8x + 7 = -23"}]
    endpoint, body = _sent(
        served, lambda: _openai(served).chat.completions.parse(model="gpt-4o", messages=messages, response_format=Math)
    )
    assert body["response_format"]["type"] == "json_schema" and body["response_format"]["json_schema"]["name"] == "Math"
    found = asked(endpoint, body)
    assert found == Asked("json", to_strict_json_schema(Math), "Math", True)
    assert found is not None and found.schema is not None
    # the JSON made for it passes the SDK's own parse into the model
    answering = _answered(serve, {"content": json_text(found.schema, 5)})
    parsed = _openai(answering).chat.completions.parse(model="gpt-4o", messages=messages, response_format=Math)
    assert parsed.choices[0].message.parsed == Math.model_validate(instance(found.schema, 5))


def test_chat_parse_with_a_required_tool(serve: Any) -> None:
    import openai

    served = serve(ANY_TEXT)
    tools = [openai.pydantic_function_tool(Math), openai.pydantic_function_tool(Address)]
    messages = [{"role": "user", "content": "x"}]
    for choice, name in (("required", "Math"), ({"type": "function", "function": {"name": "Address"}}, "Address")):
        endpoint, body = _sent(
            served,
            lambda c=choice: _openai(served).chat.completions.parse(
                model="gpt-4o", messages=messages, tools=tools, tool_choice=c
            ),
        )
        assert body["tool_choice"] == choice and body["tools"][0]["function"]["strict"] is True
        found = asked(endpoint, body)
        assert found is not None and (found.kind, found.name, found.strict) == ("tool", name, True)
        arguments = tool_arguments(found.schema, 2)
        answering = _answered(serve, {"tool_calls": [{"name": name, "arguments": arguments}]})
        parsed = _openai(answering).chat.completions.parse(
            model="gpt-4o", messages=messages, tools=tools, tool_choice=choice
        )
        call_made = parsed.choices[0].message.tool_calls[0]
        assert call_made.function.name == name and call_made.function.parsed_arguments is not None  # type: ignore[union-attr]


def test_chat_json_object_and_text(serve: Any) -> None:
    served = serve(ANY_TEXT)
    client = _openai(served)
    endpoint, body = _sent(
        served,
        lambda: client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], response_format={"type": "json_object"}
        ),
    )
    assert asked(endpoint, body) == Asked("json")
    endpoint, body = _sent(
        served,
        lambda: client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "text"},
            tools=[{"type": "function", "function": {"name": "f"}}],
        ),
    )
    assert asked(endpoint, body) is None  # tool_choice left to the model: nothing is forced


def test_responses_parse_and_forced_tool(serve: Any) -> None:
    served = serve(ANY_TEXT)
    client = _openai(served)
    endpoint, body = _sent(served, lambda: client.responses.parse(model="gpt-4o", input="x", text_format=Person))
    assert body["text"]["format"]["type"] == "json_schema"
    found = asked(endpoint, body)
    assert found == Asked("json", to_strict_json_schema(Person), "Person", True)
    answering = _answered(serve, {"content": json_text(found.schema, 9)})
    assert _openai(answering).responses.parse(
        model="gpt-4o", input="x", text_format=Person
    ).output_parsed == Person.model_validate(instance(to_strict_json_schema(Person), 9))

    tool = {"type": "function", "name": "lookup", "parameters": ANTHROPIC_TOOLS[1], "strict": False}
    for choice in ("required", {"type": "function", "name": "lookup"}):
        endpoint, body = _sent(
            served, lambda c=choice: client.responses.create(model="m", input="x", tools=[tool], tool_choice=c)
        )
        assert asked(endpoint, body) == Asked("tool", ANTHROPIC_TOOLS[1], "lookup")
    endpoint, body = _sent(
        served, lambda: client.responses.create(model="m", input="x", text={"format": {"type": "json_object"}})
    )
    assert asked(endpoint, body) == Asked("json")


def _anthropic(served: Any) -> Any:
    import anthropic

    return anthropic.Anthropic(base_url=served.base_url[: -len("/v1")], api_key="test", max_retries=0)


def test_anthropic_tool_choice_and_parse(serve: Any) -> None:
    served = serve(ANY_TEXT)
    client = _anthropic(served)
    tools = [
        {"name": "get_weather", "description": "w", "input_schema": ANTHROPIC_TOOLS[0]},
        {"name": "search", "description": "s", "input_schema": ANTHROPIC_TOOLS[1]},
    ]
    messages = [{"role": "user", "content": "x"}]
    for choice, name in (({"type": "tool", "name": "search"}, "search"), ({"type": "any"}, "get_weather")):
        endpoint, body = _sent(
            served,
            lambda c=choice: client.messages.create(
                model="claude", max_tokens=1024, messages=messages, tools=tools, tool_choice=c
            ),
        )
        assert body["tool_choice"] == choice
        found = asked(endpoint, body)
        assert found is not None and (found.kind, found.name) == ("tool", name)
        answering = _answered(serve, {"tool_calls": [{"name": name, "arguments": tool_arguments(found.schema, 4)}]})
        block = (
            _anthropic(answering)
            .messages.create(model="claude", max_tokens=1024, messages=messages, tools=tools, tool_choice=choice)
            .content[-1]
        )
        assert block.type == "tool_use" and block.name == name
        _valid(found.schema, block.input)
    endpoint, body = _sent(
        served, lambda: client.messages.parse(model="claude", max_tokens=1024, messages=messages, output_format=Math)
    )
    assert body["output_config"]["format"]["type"] == "json_schema"
    found = asked(endpoint, body)
    assert found is not None and found.kind == "json" and found.schema == body["output_config"]["format"]["schema"]
    answering = _answered(serve, {"content": json_text(found.schema, 3)})
    parsed = _anthropic(answering).messages.parse(
        model="claude", max_tokens=1024, messages=messages, output_format=Math
    )
    assert parsed.parsed_output == Math.model_validate(instance(found.schema, 3))


def _gemini(served: Any) -> Any:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=served.base_url[: -len("/v1")], api_version="v1beta")
    made = genai.Client(api_key="test", http_options=options)
    served.__dict__.setdefault("clients", []).append(made)  # a collected Client closes its HTTP client
    return made


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
@pytest.mark.parametrize("field", ["response_schema", "response_json_schema"])
def test_gemini_response_schema(serve: Any, field: str) -> None:
    from google.genai import types

    served = serve(ANY_TEXT)
    given_schema: Any = Math if field == "response_schema" else Math.model_json_schema()
    config = types.GenerateContentConfig(response_mime_type="application/json", **{field: given_schema})
    endpoint, body = _sent(
        served, lambda: _gemini(served).models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
    )
    sent = body["generationConfig"]
    assert sent["responseMimeType"] == "application/json"
    found = asked(endpoint, body)
    assert found is not None and found.kind == "json"
    if field == "response_schema":  # the SDK's OpenAPI subset: upper-case types, nested models inlined
        assert found.schema == sent["responseSchema"] and found.schema["type"] == "OBJECT"
    else:
        assert found.schema == sent["responseJsonSchema"] == Math.model_json_schema()
    answering = _answered(serve, {"content": json_text(found.schema, 8)})
    answer = _gemini(answering).models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
    assert Math.model_validate(json.loads(answer.text)) == Math.model_validate(instance(found.schema, 8))


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
def test_gemini_mode_any(serve: Any) -> None:
    from google.genai import types

    def weather(city: str, days: int = 1) -> str:
        """The weather in a city."""
        return city

    def news(topic: str) -> str:
        """The news."""
        return topic

    served = serve(ANY_TEXT)
    calling = types.FunctionCallingConfig(mode="ANY", allowed_function_names=["news"])
    config = types.GenerateContentConfig(
        tools=[weather, news],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        tool_config=types.ToolConfig(function_calling_config=calling),
    )
    endpoint, body = _sent(
        served, lambda: _gemini(served).models.generate_content(model="gemini-2.5-flash", contents="x", config=config)
    )
    declarations = body["tools"][0]["functionDeclarations"]
    assert body["toolConfig"]["functionCallingConfig"] == {"allowedFunctionNames": ["news"], "mode": "ANY"}
    found = asked(endpoint, body)
    assert found == Asked("tool", declarations[1]["parameters_json_schema"], "news")
    arguments = json.loads(tool_arguments(found.schema, 1))
    assert isinstance(arguments["topic"], str)


ODD = [
    {},
    {"tool_choice": "required"},
    {"tool_choice": "required", "tools": "x"},
    {
        "tool_choice": {"type": "function", "function": {"name": "missing"}},
        "tools": [{"type": "function", "function": {"name": "f"}}],
    },
    {"tool_choice": {"type": "function"}, "tools": [{"function": None}]},
    {"response_format": {"type": "json_schema", "json_schema": "x"}},
    {"response_format": {"type": "json_schema", "json_schema": {"schema": [1]}}},
    {"response_format": "json"},
    {"text": {"format": {"type": "json_schema", "schema": 3}}},
    {"tool_choice": {"type": "tool", "name": 1}, "tools": [{"name": "f", "input_schema": {}}]},
    {
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}},
        "tools": [{"functionDeclarations": [{"name": "f"}]}],
    },
    {"generationConfig": {"responseMimeType": "text/plain", "responseSchema": {"type": "STRING"}}},
    {"generationConfig": "x", "toolConfig": [1]},
]


@pytest.mark.parametrize("endpoint", ["chat", "responses", "anthropic", "gemini", "completions", "embeddings", "nope"])
def test_odd_bodies_ask_for_nothing(endpoint: str) -> None:
    for body in ODD:
        assert asked(endpoint, body) is None, body


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(
        ["required", "any", "function", "tool", "ANY", "json_schema", "json_object", "application/json", "f"]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "name",
                    "function",
                    "tools",
                    "tool_choice",
                    "schema",
                    "json_schema",
                    "response_format",
                    "text",
                    "format",
                    "parameters",
                    "input_schema",
                    "mode",
                    "toolConfig",
                    "functionCallingConfig",
                    "generationConfig",
                    "responseMimeType",
                    "responseSchema",
                    "functionDeclarations",
                    "allowedFunctionNames",
                    "output_config",
                    "allowed_tools",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_json)
def test_asked_never_raises(body: Any) -> None:
    for endpoint in ("chat", "responses", "anthropic", "gemini"):
        found = asked(endpoint, body)
        assert found is None or isinstance(found, Asked)
        if found is not None and found.schema is not None:
            instance(found.schema, 0)  # and whatever it found, a value can be made for it


# The system prompts of the modes that ask for JSON in the prompt only, as captured from the real
# libraries against the server: instructor 1.17 Mode.JSON / MD_JSON (instructor/providers/openai/utils.py),
# pydantic-ai 2.x PromptedOutput (pydantic_ai/_output.py, PromptedOutputSchema's template).
INSTRUCTOR_JSON = (
    "\n            As a genius expert, your task is to understand the content and provide\n            the parsed "
    'objects in json that match the following json_schema:\n\n\n            {\n  "properties": {\n    "name": {\n'
    '      "title": "Name",\n      "type": "string"\n    },\n    "population": {\n      "title": "Population",\n'
    '      "type": "integer"\n    }\n  },\n  "required": [\n    "name",\n    "population"\n  ],\n  "title": "City",\n'
    '  "type": "object"\n}\n\n            Make sure to return an instance of the JSON, not the schema itself\n'
)
PYDANTIC_AI_PROMPTED = (
    "Always respond with a JSON object that's compatible with this schema:\n\n"
    '{"properties": {"name": {"type": "string"}, "population": {"type": "integer"}}, "required": ["name", '
    '"population"], "type": "object", "additionalProperties": false, "title": "City"}\n\n'
    "Don't include any text or Markdown fencing before or after."
)


@pytest.mark.parametrize("prompt", [INSTRUCTOR_JSON, PYDANTIC_AI_PROMPTED], ids=["instructor", "pydantic-ai"])
def test_schema_in_the_prompt(prompt: str) -> None:
    from mockllm.structured import schema_in_text

    schema = schema_in_text(prompt)
    assert schema is not None and schema["required"] == ["name", "population"]
    _valid(schema, json.loads(json_text(schema, 2)))
    assert schema_in_text('no {schema} here {"a": 1}') is None
    started = time.perf_counter()
    assert schema_in_text("{" * 10**6) is None
    assert time.perf_counter() - started < 0.5


_KEYWORD = st.sampled_from(
    [
        "type",
        "properties",
        "required",
        "items",
        "prefixItems",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "$defs",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "pattern",
        "format",
        "nullable",
        "additionalProperties",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "contains",
    ]
)
_ATOM = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [
            "object",
            "ARRAY",
            "string",
            "INTEGER",
            "number",
            "null",
            "#",
            "#/$defs/a",
            "#/x/0",
            "date-time",
            "uuid",
            "^a+$",
            "(",
            "[z-a]",
            "1",
            "-1",
        ]
    )
)
_SCHEMA = st.recursive(
    _ATOM,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_KEYWORD | st.sampled_from(["a", "x"]), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=st.dictionaries(_KEYWORD, _SCHEMA, max_size=6))
def test_instance_never_raises_on_odd_schemas(schema: dict[str, Any]) -> None:
    text = json_text(schema, 3)  # any value, and serialisable
    assert json.loads(text) == json.loads(json_text(schema, 3))


def test_allowed_tools_and_a_forced_tool_beside_a_format(serve: Any) -> None:
    # openai/types/chat/chat_completion_allowed_tool_choice_param.py, responses/tool_choice_allowed_param.py
    served = serve(ANY_TEXT)
    client = _openai(served)
    weather = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    chat_tools = [
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "get_weather", "parameters": weather}},
    ]
    allowed = {"mode": "required", "tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    endpoint, body = _sent(
        served,
        lambda: client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            tools=chat_tools,
            tool_choice={"type": "allowed_tools", "allowed_tools": allowed},
        ),
    )
    assert asked(endpoint, body) == Asked("tool", weather, "get_weather")
    auto = {"type": "allowed_tools", "allowed_tools": {**allowed, "mode": "auto"}}
    endpoint, body = _sent(
        served,
        lambda: client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], tools=chat_tools, tool_choice=auto
        ),
    )
    assert asked(endpoint, body) is None
    # instructor's RESPONSES_TOOLS mode sends a named tool_choice and a text.format both: the call comes first
    tools = [{"type": "function", "name": "get_weather", "parameters": weather, "strict": True}]
    fmt = {"format": {"type": "json_schema", "name": "W", "schema": weather, "strict": True}}
    for choice in (
        {"type": "function", "name": "get_weather"},
        {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_weather"}]},
    ):
        endpoint, body = _sent(
            served, lambda c=choice: client.responses.create(model="m", input="x", tools=tools, tool_choice=c, text=fmt)
        )
        assert asked(endpoint, body) == Asked("tool", weather, "get_weather", True)
    endpoint, body = _sent(served, lambda: client.responses.create(model="m", input="x", tools=tools, text=fmt))
    assert asked(endpoint, body) == Asked("json", weather, "W", True)


def test_anthropic_server_tools_and_the_older_beta_key() -> None:
    # tool_choice any with a server tool first (no input_schema): the first client tool is called
    body = {
        "tools": [
            {"type": "web_search_20250305", "name": "web_search"},
            {"name": "f", "input_schema": {"type": "object"}},
        ],
        "tool_choice": {"type": "any"},
    }
    assert asked("anthropic", body) == Asked("tool", {"type": "object"}, "f")
    # the structured-outputs beta's top-level key, before output_config
    beta = {"output_format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert asked("anthropic", beta) == Asked("json", {"type": "object"})
    assert asked("anthropic", {"tool_choice": {"type": "auto"}, "tools": body["tools"]}) is None
