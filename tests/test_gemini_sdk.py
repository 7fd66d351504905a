"""The Gemini API (`:generateContent`, `:streamGenerateContent`, the model listing) through the real
google-genai SDK, against the real server; and the anthropic SDK's model listing.

Wire facts: ../shared/dialects.md section 3. The SDK's parser is google/genai/_api_client.py
(HttpResponse._iter_response_stream: only `data: ` lines are data; a chunk that starts with
`{"error":` raises by its `code`), its errors google/genai/errors.py. google-genai 3.x calls
`{base}/v1/...` by default, 1.x `{base}/v1beta/...`: both are served, so the tests run on both.
The SDK is given the namespace's root (`served.base_url` without its `/v1`).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

genai = pytest.importorskip("google.genai")  # the dev extra and both CI environments install it
from google.genai import errors, types  # noqa: E402

# google-genai's own aiohttp session class (its async client's, when aiohttp is installed) warns at import.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

RESPONSE_ID = re.compile(r"^[A-Za-z0-9_-]{23}$")  # dialects.md section 3: 23 url-safe base64 characters
TEXT = "one two three four five"
PIECES = ["one", " two", " three", " four", " five"]
WEATHER = {"city": "Paris", "unit": "celsius"}
VERSIONS = ["v1", "v1beta"]  # 3.x's default (GENAI _api_client.py GOOGLE_AI_API_DEFAULT_VERSION), 1.x's
TOOL = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="The weather in a city.",
            parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "unit": {"type": "STRING"}}},
        )
    ]
)


def client(served: Any, version: str = "v1") -> Any:
    options = types.HttpOptions(base_url=served.base_url[: -len("/v1")], api_version=version)
    made = genai.Client(api_key="test", http_options=options)
    # A Client closes its HTTP client once collected, so `client(...).models.x()` would find it closed:
    # the namespace keeps it for the test.
    served.__dict__.setdefault("clients", []).append(made)
    return made


def scenario(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


TEXT_RULE = {"name": "text", "match": {"endpoint": "gemini"}, "reply": {"content": TEXT}}


@pytest.mark.parametrize("version", VERSIONS)
def test_generate_content(serve, version: str) -> None:
    served = serve(scenario(TEXT_RULE))
    config = types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50)
    response = client(served, version).models.generate_content(
        model="gemini-2.5-flash", contents="Count to five", config=config
    )
    assert response.text == TEXT
    (candidate,) = response.candidates
    assert candidate.finish_reason == types.FinishReason.STOP and candidate.index == 0
    assert candidate.content.role == "model"
    assert RESPONSE_ID.match(response.response_id) and response.model_version == "gemini-2.5-flash"
    usage = response.usage_metadata
    assert usage.candidates_token_count == 5 and usage.prompt_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + 5
    assert usage.prompt_tokens_details[0].modality == types.MediaModality.TEXT
    entry = served.journal.last
    assert (entry.endpoint, entry.rule, entry.user_text, entry.stream) == ("gemini", "text", "Count to five", False)
    assert entry.path.endswith(f"/{version}/models/gemini-2.5-flash:generateContent")
    assert entry.headers["x-goog-api-key"] == "test"  # dialects.md section 3, "Paths"
    assert entry.json["generationConfig"] == {"maxOutputTokens": 50}


def test_the_same_call_gets_the_same_response_id(serve) -> None:
    ids = [
        client(serve(scenario(TEXT_RULE))).models.generate_content(model="g", contents="x").response_id
        for _ in range(2)
    ]
    assert ids[0] == ids[1] and RESPONSE_ID.match(ids[0])


@pytest.mark.parametrize("version", VERSIONS)
def test_generate_content_stream(serve, version: str) -> None:
    served = serve(scenario(TEXT_RULE))
    chunks = list(client(served, version).models.generate_content_stream(model="gemini-2.5-flash", contents="Count"))
    assert [c.text for c in chunks] == PIECES
    # every chunk a whole response: the same id, the model, the usage so far (dialects.md section 3, "Stream")
    assert len({c.response_id for c in chunks}) == 1 and RESPONSE_ID.match(chunks[0].response_id)
    assert {c.model_version for c in chunks} == {"gemini-2.5-flash"}
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [1, 2, 3, 4, 5]
    assert [c.candidates[0].finish_reason for c in chunks] == [None] * 4 + [types.FinishReason.STOP]
    assert served.journal.last.stream is True
    assert served.journal.last.path.endswith(":streamGenerateContent")


def test_async_client(serve) -> None:
    served = serve(scenario(TEXT_RULE))

    async def run() -> tuple[Any, list[str]]:
        aio = client(served).aio
        whole = await aio.models.generate_content(model="gemini-2.5-flash", contents="Count")
        texts = [chunk.text async for chunk in await aio.models.generate_content_stream(model="g", contents="x")]
        return whole, texts

    whole, texts = asyncio.run(run())
    assert whole.text == TEXT and texts == PIECES


def tool_scenario() -> dict[str, Any]:
    """The first call asks for the weather tool; the second (answering it) reports the result."""
    replies = [
        {"tool_calls": [{"name": "get_weather", "arguments": WEATHER, "id": "call_ignored"}]},
        {"content": "It is sunny in Paris."},
    ]
    return scenario({"name": "weather", "match": {"user": {"contains": "weather"}}, "replies": replies})


def test_function_call_round_trip(serve) -> None:
    served = serve(tool_scenario())
    c = client(served)
    config = types.GenerateContentConfig(tools=[TOOL])
    asked = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
    first = c.models.generate_content(model="gemini-2.5-flash", contents=[asked], config=config)
    (call,) = first.function_calls
    # a whole call with its args object and no id: the Gemini API's calls carry none (dialects.md section 8)
    assert (call.name, call.args, call.id) == ("get_weather", WEATHER, None)
    assert first.candidates[0].finish_reason == types.FinishReason.STOP and first.text is None
    answer = types.Part.from_function_response(name="get_weather", response={"result": "sunny"})
    contents = [asked, first.candidates[0].content, types.Content(role="user", parts=[answer])]
    second = c.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    assert second.text == "It is sunny in Paris." and not second.function_calls
    entries = list(served.journal)
    # the function-result turn keeps the question as the user match; the tool names are read
    assert [e.user_text for e in entries] == ["What is the weather in Paris?"] * 2
    assert [e.call_index for e in entries] == [0, 1]
    sent = entries[1].json["contents"]
    assert sent[1] == {"parts": [{"functionCall": {"args": WEATHER, "name": "get_weather"}}], "role": "model"}
    assert sent[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"result": "sunny"}}


def test_function_call_streamed_is_one_whole_part(serve) -> None:
    served = serve(
        scenario({"reply": {"content": "Let me check.", "tool_calls": [{"name": "get_weather", "arguments": WEATHER}]}})
    )
    chunks = list(client(served).models.generate_content_stream(model="g", contents="weather?"))
    texts = [c.text for c in chunks if c.text]
    calls = [c.function_calls for c in chunks if c.function_calls]
    assert "".join(texts) == "Let me check." and len(calls) == 1  # no argument deltas (dialects.md section 3)
    assert [(f.name, f.args) for f in calls[0]] == [("get_weather", WEATHER)]
    assert chunks[-1].function_calls and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_finish_mapping(serve) -> None:
    rules = [
        {"match": {"model": f"m-{finish}"}, "reply": {"content": "cut", "finish_reason": finish}}
        for finish in ("length", "content_filter", "stop")
    ]
    c = client(serve(scenario(*rules)))
    got = [
        c.models.generate_content(model=f"m-{f}", contents="x").candidates[0].finish_reason
        for f in ("length", "content_filter", "stop")
    ]
    # dialects.md section 7: token cap MAX_TOKENS, filtered SAFETY, natural end STOP
    assert got == [types.FinishReason.MAX_TOKENS, types.FinishReason.SAFETY, types.FinishReason.STOP]


def test_match_endpoint_and_system(serve) -> None:
    served = serve(
        scenario(
            {"match": {"endpoint": "chat"}, "reply": {"content": "from chat"}},
            {"match": {"endpoint": "gemini", "system": {"contains": "pirate"}}, "reply": {"content": "Arr."}},
            {"match": {"endpoint": ["anthropic", "gemini"]}, "reply": {"content": "plain"}},
        )
    )
    c = client(served)
    plain = c.models.generate_content(model="g", contents="hi")
    pirate = c.models.generate_content(
        model="g", contents="hi", config=types.GenerateContentConfig(system_instruction="You are a pirate.")
    )
    assert [plain.text, pirate.text] == ["plain", "Arr."]
    entries = list(served.journal)
    assert [e.endpoint for e in entries] == ["gemini"] * 2 and entries[1].json["systemInstruction"] == {
        "parts": [{"text": "You are a pirate."}],
        "role": "user",
    }


@pytest.mark.parametrize(
    ("status", "error", "name"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (401, errors.ClientError, "UNAUTHENTICATED"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (404, errors.ClientError, "NOT_FOUND"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
        (504, errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
def test_scripted_errors(serve, status: int, error: type[errors.APIError], name: str) -> None:
    served = serve(scenario({"match": {"endpoint": "gemini"}, "reply": {"error": {"status": status}}}))
    with pytest.raises(error) as raised:
        client(served).models.generate_content(model="gemini-x", contents="hi")
    exc = raised.value
    # errors.py APIError: code, status and message from the google.rpc envelope (dialects.md section 3, "Errors")
    assert (exc.code, exc.status) == (status, name) and exc.message
    assert set(exc.details["error"]) == (
        {"code", "message", "status", "details"} if status == 429 else {"code", "message", "status"}
    )
    if status == 404:
        assert exc.message.startswith("models/gemini-x is not found")
    assert len(served.journal) == 1  # google-genai does not retry by default (dialects.md section 0)


def test_scripted_error_message_and_status_name(serve) -> None:
    error = {"status": 400, "message": "API key not valid. Please pass a valid API key.", "type": "FAILED_PRECONDITION"}
    served = serve(scenario({"reply": {"error": error}}))
    with pytest.raises(errors.ClientError) as raised:
        list(client(served).models.generate_content_stream(model="g", contents="hi"))
    assert (raised.value.code, raised.value.status) == (400, "FAILED_PRECONDITION")
    assert raised.value.message == "API key not valid. Please pass a valid API key."


def faulted(kind: str, after: int = 2) -> dict[str, Any]:
    return scenario({"reply": {"content": TEXT, "fault": {"kind": kind, "after_chunks": after}}})


def _collect(stream: Any, seen: list[str]) -> None:
    for chunk in stream:
        seen.append(chunk.text)


def test_error_event_mid_stream(serve) -> None:
    served = serve(faulted("error_event"))
    seen: list[str] = []
    with pytest.raises(errors.ServerError) as raised:
        _collect(client(served).models.generate_content_stream(model="g", contents="x"), seen)
    # the chunks before it were yielded; then the error chunk raises by its code (dialects.md section 3)
    assert seen == PIECES[:2]
    assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")


def test_malformed_chunk_mid_stream(serve) -> None:
    served = serve(faulted("malformed"))
    seen: list[str] = []
    with pytest.raises(errors.UnknownApiResponseError, match="Failed to parse response as JSON"):
        _collect(client(served).models.generate_content_stream(model="g", contents="x"), seen)
    assert seen == PIECES[:2]


def test_disconnect_mid_stream(serve) -> None:
    served = serve(faulted("disconnect", 3))
    seen: list[str] = []
    # a closed socket mid-body: the HTTP library's protocol error (dialects.md section 0)
    with pytest.raises(_protocol_errors()):
        _collect(client(served).models.generate_content_stream(model="g", contents="x"), seen)
    assert seen == PIECES[:3]


def test_no_finish_and_no_done(serve) -> None:
    no_finish = list(client(serve(faulted("no_finish"))).models.generate_content_stream(model="g", contents="x"))
    assert [c.text for c in no_finish] == PIECES
    assert all(c.candidates[0].finish_reason is None for c in no_finish)
    # the Gemini API sends no terminator: a stream without one is the usual stream
    no_done = list(client(serve(faulted("no_done"))).models.generate_content_stream(model="g", contents="x"))
    assert [c.text for c in no_done] == PIECES and no_done[-1].candidates[0].finish_reason == types.FinishReason.STOP


def _protocol_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [httpx.RemoteProtocolError]
    try:
        import httpx2  # type: ignore[import-not-found]  # google-genai 3.x reads through httpx2
    except ImportError:
        pass
    else:
        found.append(httpx2.RemoteProtocolError)
    return tuple(found)


def test_bad_request_raises_client_error(serve) -> None:
    served = serve(scenario(TEXT_RULE))
    wrong = types.Content(role="system", parts=[types.Part(text="hi")])  # the SDK sends what it is given
    with pytest.raises(errors.ClientError) as raised:
        client(served).models.generate_content(model="g", contents=[wrong])
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert raised.value.message.startswith("Please use a valid role: user, model.")
    assert served.journal.last.status == 400 and not served.journal.last.rule


# -- the model listings ------------------------------------------------------------------------


MODEL_RULES = scenario(
    {"match": {"model": "gemini-2.5-flash"}, "reply": {"content": "a"}},
    {"match": {"model": "gemini-3-*"}, "reply": {"content": "b"}},
    {"reply": {"content": "c", "model": "claude-sonnet-4-5"}},
)


@pytest.mark.parametrize("version", VERSIONS)
def test_models_list_and_get(serve, version: str) -> None:
    c = client(serve(MODEL_RULES), version)
    listed = list(c.models.list())
    # google-genai types.Model from the Model resource: `models/` names (GENAI models.py _Model_from_mldev)
    assert [m.name for m in listed] == ["models/gpt-4o-mini", "models/gemini-2.5-flash", "models/claude-sonnet-4-5"]
    assert listed[1].supported_actions == ["generateContent"] and listed[1].input_token_limit
    assert c.models.get(model="gemini-2.5-flash").name == "models/gemini-2.5-flash"
    assert c.models.get(model="models/gemini-3-pro").name == "models/gemini-3-pro"  # a glob of a rule accepts it
    with pytest.raises(errors.ClientError) as raised:
        c.models.get(model="nope")
    assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
    assert raised.value.message.startswith("models/nope is not found")


def test_openai_listing_is_unchanged_without_a_gemini_header(serve) -> None:
    served = serve(MODEL_RULES)
    listed = httpx.get(served.base_url + "/models", timeout=10).json()
    assert listed["object"] == "list" and listed["data"][1] == {
        "id": "gemini-2.5-flash",
        "object": "model",
        "created": 1715367049,
        "owned_by": "system",
    }


def test_anthropic_models_list_and_retrieve(serve) -> None:
    anthropic = pytest.importorskip("anthropic")
    served = serve(MODEL_RULES)
    c = anthropic.Anthropic(base_url=served.base_url[: -len("/v1")], api_key="test", max_retries=0)
    page = c.models.list()
    # anthropic types/model_info.py ModelInfo, pagination.py SyncPage (data, has_more, first_id, last_id)
    assert [m.id for m in page.data] == ["gpt-4o-mini", "gemini-2.5-flash", "claude-sonnet-4-5"]
    assert all(m.type == "model" and m.display_name == m.id for m in page.data)
    assert (page.has_more, page.first_id, page.last_id) == (False, "gpt-4o-mini", "claude-sonnet-4-5")
    assert [m.id for m in c.models.list()] == ["gpt-4o-mini", "gemini-2.5-flash", "claude-sonnet-4-5"]  # auto-paging
    assert c.models.retrieve("claude-sonnet-4-5").created_at.year == 2025
    with pytest.raises(anthropic.NotFoundError) as raised:
        c.models.retrieve("nope")
    body: Any = raised.value.body
    assert body["error"] == {"type": "not_found_error", "message": "model: nope"} and body["request_id"]
