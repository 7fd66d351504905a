"""Legacy completions (`POST /v1/completions`) through the real openai SDK, against the real server.

Runs under openai 2.x (httpx) and 3.x (httpx2) alike; a dropped stream raises a raw httpx error in
2.x and APIConnectionError in 3.x (shared/dialects.md section 0). Wire facts: section 4.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import openai
import pytest

OPENAI_3 = int(openai.__version__.split(".")[0]) >= 3
DROPPED: type[BaseException] = openai.APIConnectionError if OPENAI_3 else httpx.RemoteProtocolError
CMPL_ID = re.compile(r"^cmpl-[0-9A-Za-z]{29}$")
TEXT = "one two three four five"
PIECES = ["one", " two", " three", " four", " five"]


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def scenario(**reply: Any) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "tools",
                "match": {"user": {"equals": "call a tool"}},
                "reply": {"tool_calls": [{"name": "f", "arguments": {"a": 1}}]},
            },
            {"name": "text", "match": {"endpoint": "completions"}, "reply": {"content": TEXT, **reply}},
        ]
    }


def test_not_streamed(serve) -> None:
    served = serve(scenario())
    done = client(served).completions.create(model="gpt-3.5-turbo-instruct", prompt="Say five words", max_tokens=50)
    assert done.object == "text_completion" and CMPL_ID.match(done.id), done.id
    assert done.model == "gpt-3.5-turbo-instruct" and done.created > 1_600_000_000
    (choice,) = done.choices
    assert (choice.text, choice.index, choice.logprobs, choice.finish_reason) == (TEXT, 0, None, "stop")
    assert done.usage is not None
    assert (done.usage.completion_tokens, done.usage.total_tokens) == (5, done.usage.prompt_tokens + 5)
    entry = served.journal.last
    assert (entry.endpoint, entry.rule, entry.user_text) == ("completions", "text", "Say five words")


def test_body_is_pretty_with_a_final_newline(serve) -> None:
    served = serve(scenario())
    raw = httpx.post(f"{served.base_url}/completions", json={"model": "m", "prompt": "x"})
    assert raw.status_code == 200 and raw.text.endswith("}\n")  # shared/dialects.md section 0
    assert raw.text.startswith('{\n  "id": "cmpl-')
    assert list(json.loads(raw.text)) == ["id", "object", "created", "model", "choices", "usage"]


def test_prompt_list_matches_its_last_text(serve) -> None:
    served = serve(scenario())
    c = client(served)
    with pytest.raises(openai.InternalServerError) as raised:
        c.completions.create(model="m", prompt=["first", "call a tool"])
    assert "cannot express" in raised.value.message and "'tools'" in raised.value.message
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert c.completions.create(model="m", prompt=["call a tool", "second"]).choices[0].text == TEXT
    assert served.journal.last.user_text == "second"


def test_streamed_with_usage(serve) -> None:
    served = serve(scenario())
    stream = client(served).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "text_completion" and CMPL_ID.match(c.id) for c in chunks)
    assert len({c.id for c in chunks}) == 1
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert texts == [*PIECES, ""]
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None] * 5 + ["stop"]
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage is not None and usage.usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_wire_ends_with_done(serve) -> None:
    served = serve(scenario())
    raw = httpx.post(f"{served.base_url}/completions", json={"model": "m", "prompt": "x", "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in raw.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: {") for line in lines[:-1])
    assert '"usage"' not in raw.text  # not asked for


@pytest.mark.parametrize(
    ("neutral", "sent"), [("length", "length"), ("content_filter", "content_filter"), ("tool_calls", "stop")]
)
def test_finish_reasons(serve, neutral: str, sent: str) -> None:
    served = serve(scenario(finish_reason=neutral))
    done = client(served).completions.create(model="m", prompt="x")
    assert done.choices[0].finish_reason == sent  # legacy has stop, length, content_filter only


def test_fault_error_event_mid_stream(serve) -> None:
    served = serve(scenario(fault={"kind": "error_event", "after_chunks": 2, "message": "boom"}))
    got: list[str] = []
    with pytest.raises(openai.APIError, match="boom"):
        for chunk in client(served).completions.create(model="m", prompt="x", stream=True):
            got.append(chunk.choices[0].text)
    assert got == PIECES[:2]


def test_fault_disconnect(serve) -> None:
    served = serve(scenario(fault={"kind": "disconnect", "after_chunks": 3}))
    got: list[str] = []
    with pytest.raises(DROPPED):
        for chunk in client(served).completions.create(model="m", prompt="x", stream=True):
            got.append(chunk.choices[0].text)
    assert got == PIECES[:3]


def test_scripted_error(serve) -> None:
    served = serve({"rules": [{"reply": {"error": {"status": 429, "message": "slow down"}}}]})
    with pytest.raises(openai.RateLimitError, match="slow down") as raised:
        client(served).completions.create(model="m", prompt="x")
    assert raised.value.response.text.startswith('{\n    "error"')  # pretty, 4 spaces: as Responses
    assert raised.value.response.headers["retry-after"] == "1"


def test_bad_prompt_is_a_400(serve) -> None:
    served = serve(scenario())
    with pytest.raises(openai.BadRequestError, match="prompt"):
        client(served).completions.create(model="m", prompt=3)  # type: ignore[arg-type]


def test_tool_calls_are_unsendable_at_load() -> None:
    # Dialect.unsendable: what the loader refuses for a rule that names completions (or embeddings).
    from mockllm.dialects import DIALECTS
    from mockllm.scenario import Reply

    tools = Reply.model_validate({"tool_calls": [{"name": "f", "arguments": {}}]})
    assert "cannot send tool calls" in (DIALECTS["completions"].unsendable(tools) or "")
    assert DIALECTS["completions"].unsendable(Reply.model_validate({"content": "x"})) is None
    assert DIALECTS["chat"].unsendable(tools) is None
    sse = Reply.model_validate({"sse": "data: x\n\n"})
    assert "cannot send a verbatim" in (DIALECTS["embeddings"].unsendable(sse) or "")


@pytest.mark.parametrize("kind", ["no_done", "no_finish", "malformed"])
def test_stream_faults_on_the_wire(serve, kind: str) -> None:
    served = serve(scenario(fault={"kind": kind, "after_chunks": 1}))
    raw = httpx.post(f"{served.base_url}/completions", json={"model": "m", "prompt": "x", "stream": True})
    events = [e.removeprefix("data: ") for e in raw.text.split("\n\n") if e]
    finishes = [e for e in events if '"finish_reason":"stop"' in e]
    assert (events[-1] == "[DONE]") is (kind != "no_done")
    assert len(finishes) == (0 if kind == "no_finish" else 1)
    broken = [e for e in events if e != "[DONE]" and not e.endswith("}")]
    assert len(broken) == (1 if kind == "malformed" else 0)  # half a chunk, before the second delta
    if kind == "malformed":
        assert events.index(broken[0]) == 1
