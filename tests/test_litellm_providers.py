"""LiteLLM's own providers against the fake: `anthropic/<model>` (the Messages API) and `gemini/<model>`
(the Gemini API), each with `api_base` pointed at the server, streamed and not. Environment 1 only
(litellm pins openai < 3).

LiteLLM appends `/v1/messages` to an anthropic api_base, and `models/{model}:generateContent` (or
`:streamGenerateContent?alt=sse`) to a gemini one, so the gemini api_base names the version
(litellm llms/vertex_ai/vertex_llm_base.py `_check_custom_proxy`). Its finish mapping back to
OpenAI's names is litellm_core_utils/core_helpers.py (shared/dialects.md section 7).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no cost map from GitHub
os.environ.setdefault("LITELLM_TELEMETRY", "False")

litellm = pytest.importorskip("litellm")
from netguard import guard  # noqa: E402

litellm.telemetry = False
litellm.suppress_debug_info = True

pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")

HELLO = [{"role": "user", "content": "Count to three"}]
PIECES = ["one", " two", " three"]
WEATHER = {"city": "Paris"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
# provider -> (model, what to add to the namespace's root for its api_base, the dialect that answers)
PROVIDERS = {
    "anthropic": ("anthropic/claude-sonnet-4-5", "", "anthropic"),
    "gemini": ("gemini/gemini-2.5-flash", "/v1beta", "gemini"),
}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Any:
    refused = guard(monkeypatch)
    yield
    assert refused == [], f"litellm reached beyond loopback: {refused}"


def call(served: Any, provider: str, **kwargs: Any) -> Any:
    model, suffix, _ = PROVIDERS[provider]
    api_base = served.base_url[: -len("/v1")] + suffix
    kwargs.setdefault("messages", HELLO)
    return litellm.completion(model=model, api_base=api_base, api_key="test", num_retries=0, **kwargs)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_completion(serve, provider: str) -> None:
    served = serve({"reply": {"content": "one two three"}})
    response = call(served, provider, max_tokens=50)
    assert response.choices[0].message.content == "one two three"
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.completion_tokens == 3 and response.usage.prompt_tokens > 0
    entry = served.journal.last
    assert (entry.endpoint, entry.user_text, entry.stream) == (PROVIDERS[provider][2], "Count to three", False)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_completion_streamed(serve, provider: str) -> None:
    served = serve({"reply": {"content": "one two three"}})
    chunks = list(call(served, provider, stream=True))
    assert [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content] == PIECES
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    assert served.journal.last.stream is True and served.journal.last.endpoint == PROVIDERS[provider][2]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_call(serve, provider: str, stream: bool) -> None:
    served = serve({"reply": {"tool_calls": [{"name": "get_weather", "arguments": WEATHER}]}})
    response = call(served, provider, tools=TOOLS, stream=stream)
    if stream:
        chunks = list(response)
        calls = [t for c in chunks for t in c.choices[0].delta.tool_calls or ()]
        name = next(t.function.name for t in calls if t.function.name)
        arguments = "".join(t.function.arguments or "" for t in calls)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    else:
        (tool,) = response.choices[0].message.tool_calls
        name, arguments, finish = tool.function.name, tool.function.arguments, [response.choices[0].finish_reason]
    assert (name, json.loads(arguments)) == ("get_weather", WEATHER)
    assert finish == ["tool_calls"]  # Gemini's STOP with a functionCall, Anthropic's tool_use
    assert served.journal.last.json["tools"]  # the tools went out in the provider's own shape


@pytest.mark.parametrize("provider", PROVIDERS)
def test_length_finish(serve, provider: str) -> None:
    served = serve({"reply": {"content": "cut short", "finish_reason": "length"}})
    assert call(served, provider).choices[0].finish_reason == "length"  # MAX_TOKENS / max_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit(serve, provider: str) -> None:
    served = serve({"reply": {"error": {"status": 429}}})
    with pytest.raises(litellm.RateLimitError):
        call(served, provider)
    assert len(served.journal) == 1


def test_gemini_server_error(serve) -> None:
    served = serve({"reply": {"error": {"status": 503, "message": "Busy right now."}}})
    with pytest.raises(litellm.ServiceUnavailableError, match=r"\bUNAVAILABLE\b") as raised:
        call(served, "gemini")
    assert raised.value.status_code == 503 and "Busy right now." in str(raised.value)
