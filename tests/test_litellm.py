"""LiteLLM (completion, acompletion, streamed, stream_options) through `openai/<model>` + api_base."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from typing import Any

# Offline machine: without this, importing litellm tries to fetch its cost map from GitHub and retries.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

_LOOPBACK = ("127.", "localhost", "::1")
_outside: list[str] | None = []  # while not None: every non-loopback lookup or connect (import time first)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _outside is None:
        return
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):  # not a unix socket
        host = args[1][0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if isinstance(host, str) and not host.startswith(_LOOPBACK):
        _outside.append(f"{event} {host!r}")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one is idle outside these tests
_FRESH_IMPORT = "litellm" not in sys.modules

import litellm  # noqa: E402
import pytest  # noqa: E402
from helpers import SCENARIOS  # noqa: E402

_AT_IMPORT, _outside = _outside, None

pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")

litellm.telemetry = False
litellm.suppress_debug_info = True
litellm.callbacks = []
litellm.success_callback = []
litellm.failure_callback = []

HELLO = [{"content": "Hello, how are you?", "role": "user"}]
ONE_PLUS_ONE = [{"role": "user", "content": "What's 1+1? Answer in one word."}]


@pytest.fixture(autouse=True)
def offline() -> Iterator[None]:
    """LiteLLM must not try to reach anything but the fake (cost maps, telemetry, tokenizers)."""
    global _outside
    _outside = []
    try:
        yield
        assert _outside == [], f"litellm reached for the network: {_outside}"
    finally:
        _outside = None


def test_import_stays_offline() -> None:
    assert _AT_IMPORT == [], f"importing litellm reached for the network: {_AT_IMPORT}"
    if _FRESH_IMPORT:
        assert litellm.model_cost, "the local cost map should be loaded"


def base(served: Any) -> dict[str, Any]:
    return {"api_base": served.base_url, "api_key": "test", "num_retries": 0}


def test_readme_completion_stream_loop(serve, capsys) -> None:
    served = serve(SCENARIOS)
    response = litellm.completion(model="openai/gpt-3.5-turbo", messages=HELLO, stream=True, **base(served))
    deltas = []
    for chunk in response:
        print(chunk["choices"][0]["delta"])  # the README's loop, as written
        deltas.append(chunk["choices"][0]["delta"])
    assert "content=" in capsys.readouterr().out
    text = "".join(d.content or "" for d in deltas)
    assert served.journal.last.json["stream"] is True
    # the bundled catch-all: deterministic generated text, the same as a direct request gives
    served.engine.reset()
    direct = litellm.completion(model="openai/gpt-3.5-turbo", messages=HELLO, **base(served))
    assert text == direct.choices[0].message.content
    assert text.count(".") >= 3
    assert deltas[0].role == "assistant"
    assert served.journal.last.rule == "generated-text"


def test_completion_stream_chunks_and_finish(serve) -> None:
    served = serve({"reply": {"content": "One two three."}})
    chunks = list(litellm.completion(model="openai/gpt-4o-mini", messages=HELLO, stream=True, **base(served)))
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["One", " two", " three", "."]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")


def test_completion_stream_include_usage(serve) -> None:
    served = serve(SCENARIOS)
    response = litellm.completion(
        model="openai/gpt-4o",
        messages=ONE_PLUS_ONE,
        stream=True,
        stream_options={"include_usage": True},
        **base(served),
    )
    chunks = list(response)
    text = "".join(c["choices"][0]["delta"].content or "" for c in chunks if c["choices"])
    assert text == "Two."
    usage = chunks[-1].get("usage")
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (18, 2, 20)
    sent = served.journal.last.json
    assert sent["stream_options"] == {"include_usage": True}


def test_completion_non_stream(serve) -> None:
    served = serve(SCENARIOS)
    done = litellm.completion(model="openai/gpt-4o-mini", messages=ONE_PLUS_ONE, **base(served))
    assert done.choices[0].message.content == "Two."
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (18, 2)
    assert done.id.startswith("chatcmpl-")


def test_acompletion_readme(serve) -> None:
    served = serve(SCENARIOS)

    async def test_get_response() -> Any:
        return await litellm.acompletion(model="openai/gpt-3.5-turbo", messages=HELLO, **base(served))

    response = asyncio.run(test_get_response())
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content
    assert response.usage.completion_tokens > 0
    assert served.journal.last.rule == "generated-text"


def test_acompletion_stream_and_non_stream(serve) -> None:
    served = serve(
        {
            "rules": [
                {"match": {"stream": True}, "reply": {"content": "streamed reply"}},
                {"reply": {"content": "whole reply"}},
            ]
        }
    )

    async def main() -> tuple[Any, list[Any]]:
        whole = await litellm.acompletion(model="openai/gpt-4o", messages=HELLO, **base(served))
        stream = await litellm.acompletion(
            model="openai/gpt-4o",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
            **base(served),
        )
        chunks = [chunk async for chunk in stream]
        return whole, chunks

    whole, chunks = asyncio.run(main())
    assert whole.choices[0].message.content == "whole reply"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed reply"
    usage = chunks[-1].get("usage")
    assert usage is not None and usage.completion_tokens == 2
    assert [e.stream for e in served.journal] == [False, True]


def test_tool_calls_through_litellm(serve) -> None:
    served = serve({"reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}})
    # No `tools=`: with tools, litellm 1.106 imports its MCP bridge, which needs the optional `mcp` package.
    done = litellm.completion(model="openai/gpt-4o", messages=HELLO, **base(served))
    call = done.choices[0].message.tool_calls[0]
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city":"Oslo"}')
    assert done.choices[0].finish_reason == "tool_calls"
    chunks = list(litellm.completion(model="openai/gpt-4o", messages=HELLO, stream=True, **base(served)))
    # (litellm.stream_chunk_builder would import the optional `mcp` package: assemble by hand)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    assert len(deltas) > 2
    assert "".join(d.function.arguments or "" for d in deltas) == '{"city":"Oslo"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_unmatched_is_a_litellm_error(serve) -> None:
    served = serve({"match": {"model": "nothing-like-this"}, "reply": {"content": "x"}})
    try:
        litellm.completion(model="openai/gpt-4o", messages=HELLO, **base(served))
    except litellm.exceptions.APIError as exc:  # 418 is no status litellm maps to a named error
        assert exc.status_code == 418
        assert "no_rule_matched" in str(exc) or "no rule matched" in str(exc)
    else:
        raise AssertionError("an unmatched request must fail")
    assert len(served.journal) == 1


# -- the request's parameters shape the answer (mockllm/limits.py, logprobs, n, structured output) ------

COUNT = {"reply": {"content": "one two three four five"}}


def test_max_tokens_stop_n_and_logprobs_through_litellm(serve) -> None:
    served = serve(COUNT)
    capped = litellm.completion(model="openai/gpt-4o", messages=HELLO, max_tokens=2, **base(served))
    assert (capped.choices[0].message.content, capped.choices[0].finish_reason) == ("one two", "length")
    assert capped.usage.completion_tokens == 2
    stopped = litellm.completion(model="openai/gpt-4o", messages=HELLO, stop=[" four"], **base(served))
    assert stopped.choices[0].message.content == "one two three"
    many = litellm.completion(model="openai/gpt-4o", messages=HELLO, n=2, **base(served))
    assert [c.message.content for c in many.choices] == ["one two three four five"] * 2
    probed = litellm.completion(model="openai/gpt-4o", messages=HELLO, logprobs=True, top_logprobs=2, **base(served))
    tokens = probed.choices[0].logprobs["content"]
    assert [t["token"] for t in tokens] == ["one", " two", " three", " four", " five"]
    assert all(t["logprob"] <= 0 and len(t["top_logprobs"]) == 2 for t in tokens)
    streamed = litellm.completion(model="openai/gpt-4o", messages=HELLO, max_tokens=2, stream=True, **base(served))
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "one two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


def test_structured_output_through_litellm(serve) -> None:
    import json

    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    served = serve(SCENARIOS)  # the bundled catch-all answers JSON of the asked schema
    answer = litellm.completion(model="openai/gpt-4o-mini", messages=HELLO, response_format=City, **base(served))
    City.model_validate(json.loads(answer.choices[0].message.content))
