"""The Responses API's bundled edge cases (scenarios/edge-cases/responses-*.yaml), served as
`mockllm serve` serves them, through the real openai SDK: `responses.create(stream=True)`
iteration and the `responses.stream()` helper with `get_final_response()`, asserting what each
SDK generation does (openai 2.54 in .venv, 3.x in .venv3: on these four cases they behave the
same). scenarios/edge-cases/README.md ("The Responses API") is the summary of these tests.
Also: the chat transcripts among the edge cases answer chat requests only, and the bundled
faults (scenarios/faults.yaml) on the Responses API, as README.md's table says.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import openai
import pytest
import yaml
from helpers import SCENARIOS

EDGE = SCENARIOS / "edge-cases"
CASES = {"responses-empty-delta", "responses-reasoning-first", "responses-failed", "responses-incomplete"}
QUESTION = "What's 1+1? Answer in one word."  # cookbook.yaml also answers it: the model must win


def client(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)


def iterate(served: Any, name: str) -> tuple[list[Any], BaseException | None]:
    """`create(stream=True)`: the events the SDK yielded, and what ended the iteration (or None)."""
    seen: list[Any] = []
    try:
        with client(served).responses.create(model=f"edge-{name}", input=QUESTION, stream=True) as stream:
            for event in stream:
                seen.append(event)
    except Exception as exc:
        return seen, exc
    return seen, None


def helper(served: Any, name: str) -> tuple[list[str], Any]:
    """`responses.stream()`: the event types it passed on, then the final response (or the error)."""
    seen: list[str] = []
    try:
        with client(served).responses.stream(model=f"edge-{name}", input=QUESTION) as stream:
            for event in stream:
                seen.append(event.type)
            return seen, stream.get_final_response()
    except Exception as exc:
        return seen, exc


def wire(served: Any, name: str) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    """The raw stream: (event name, data) per event."""
    answer = httpx.post(
        f"{served.base_url}/responses", json={"model": f"edge-{name}", "input": QUESTION, "stream": True}
    )
    events = []
    for block in answer.text.split("\n\n"):
        if block.strip():
            lines = dict(line.split(": ", 1) for line in block.split("\n"))
            events.append((lines["event"], json.loads(lines["data"])))
    return answer, events


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def deltas(events: list[Any]) -> list[str]:
    return [e.delta for e in events if e.type == "response.output_text.delta"]


@pytest.fixture
def served(serve: Any) -> Any:
    return serve(SCENARIOS)  # everything `mockllm serve` serves


# -- the library as a whole ---------------------------------------------------------------------


def test_every_responses_case_has_one_file_one_rule_and_a_readme_entry() -> None:
    assert {p.stem for p in EDGE.glob("responses-*.yaml")} == CASES
    readme = (EDGE / "README.md").read_text()
    for name in sorted(CASES):
        source = (EDGE / f"{name}.yaml").read_text()
        # line 1 points editors at the schema (tests/test_schema.py), line 2 says how to request the case
        assert source.splitlines()[1].startswith(f'# edge-{name}: request it with model "edge-{name}"'), name
        (rule,) = yaml.safe_load(source)["rules"]
        assert rule["name"] == f"edge-{name}"
        assert rule["match"] == {"endpoint": "responses", "model": f"edge-{name}"}, name
        assert rule["priority"] == 10
        assert f"[{name}.yaml]({name}.yaml)" in readme and f"`edge-{name}`" in readme, name


def test_the_model_alone_picks_a_responses_case_and_only_on_the_responses_api(served: Any) -> None:
    c = client(served)
    for name in sorted(CASES):
        c.responses.create(model=f"edge-{name}", input=QUESTION)
        assert (served.journal.last.endpoint, served.journal.last.rule) == ("responses", f"edge-{name}")
        # a chat request to the same model is not given Responses events: the default rule answers
        done = c.chat.completions.create(model=f"edge-{name}", messages=[{"role": "user", "content": "Hello?"}])
        assert (served.journal.last.endpoint, served.journal.last.rule) == ("chat", "generated-text")
        assert done.choices[0].message.content


def test_chat_transcripts_answer_chat_requests_only(served: Any) -> None:
    """The edge cases that are verbatim chat `sse:` transcripts are `endpoint: chat`: a Responses
    request to their model gets a real Responses stream (the next rule that matches), never chat bytes."""
    chat_only = sorted(
        p.stem for p in EDGE.glob("*.yaml") if not p.stem.startswith("responses-") and "\n      sse:" in p.read_text()
    )
    assert len(chat_only) == 10
    for name in chat_only:
        rule = yaml.safe_load((EDGE / f"{name}.yaml").read_text())["rules"][0]
        assert rule["match"] == {"endpoint": "chat", "model": f"edge-{name}"}, name
        seen, final = helper(served, name)
        assert seen[0] == "response.created" and seen[-1] == "response.completed", name
        # the cookbook's rule answers the question in every API
        assert (final.status, final.output_text, served.journal.last.rule) == ("completed", "Two.", "one-plus-one")
        answer, events = wire(served, name)
        assert b"chat.completion.chunk" not in answer.content and b"[DONE]" not in answer.content
        assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


# -- one test per case ---------------------------------------------------------------------------


def test_empty_delta(served: Any) -> None:
    events, error = iterate(served, "responses-empty-delta")
    assert error is None
    assert deltas(events) == ["", "Hi", ""]  # the empty deltas are yielded, as sent
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert types(events)[-1] == "response.completed"
    assert events[-1].response.output_text == "Hi"
    seen, final = helper(served, "responses-empty-delta")
    assert seen.count("response.output_text.delta") == 3
    assert final.status == "completed" and final.output_text == "Hi"
    assert [item.type for item in final.output] == ["message"]


def test_reasoning_item_first(served: Any) -> None:
    events, error = iterate(served, "responses-reasoning-first")
    assert error is None
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # the reasoning item, output_index 0
        "response.output_item.done",
        "response.output_item.added",  # the message, output_index 1
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2].item.type == "reasoning" and events[2].output_index == 0
    assert deltas(events) == ["Hi", " there", "!"]
    assert {e.output_index for e in events if e.type.startswith("response.output_text.")} == {1}
    seen, final = helper(served, "responses-reasoning-first")
    assert seen == types(events)
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "Hi there!"
    assert final.usage.output_tokens_details.reasoning_tokens == 64
    # a verbatim transcript is sent whatever the request asks: not streamed, the SDK hands back the text
    whole = client(served).responses.create(model="edge-responses-reasoning-first", input=QUESTION)
    assert isinstance(whole, str) and whole.startswith("event: response.created\ndata: {")


def test_reasoning_transcript_is_a_well_formed_stream(served: Any) -> None:
    answer, events = wire(served, "responses-reasoning-first")
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert [data["sequence_number"] for _, data in events] == list(range(13))
    assert all(name == data["type"] for name, data in events)
    first, last = events[0][1]["response"], events[-1][1]["response"]
    assert re.fullmatch(r"resp_[0-9a-f]{48}", first["id"]) and last["id"] == first["id"]
    reasoning, message = last["output"]
    assert re.fullmatch(r"rs_[0-9a-f]{48}", reasoning["id"]) and reasoning["type"] == "reasoning"
    assert re.fullmatch(r"msg_[0-9a-f]{48}", message["id"])
    assert all(data.get("item_id", message["id"]) == message["id"] for _, data in events)
    assert [data["item"] for _, data in events if _ == "response.output_item.done"] == [reasoning, message]
    usage = last["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_response_failed_mid_stream(served: Any) -> None:
    events, error = iterate(served, "responses-failed")
    # openai 2.54 and 3.x alike: the nested error event's top-level "error" raises APIError; the
    # SDK never yields the error event nor response.failed.
    assert type(error) is openai.APIError
    assert error.message == "The model failed to generate a response."
    assert (error.code, error.type) == ("server_error", "server_error")
    assert not hasattr(error, "status_code")  # the status line (200) went out before the error
    assert deltas(events) == ["The", " answer"]
    assert types(events)[-1] == "response.output_text.delta"
    seen, final = helper(served, "responses-failed")
    assert type(final) is openai.APIError
    assert seen[-2:] == ["response.output_text.delta", "response.output_text.delta"]
    # on the wire: the two deltas, `event: error` (nested), `event: response.failed`, then the end
    answer, wired = wire(served, "responses-failed")
    assert answer.status_code == 200
    assert [name for name, _ in wired][-4:] == [
        "response.output_text.delta",
        "response.output_text.delta",
        "error",
        "response.failed",
    ]
    assert [data["sequence_number"] for _, data in wired] == list(range(len(wired)))
    assert wired[-2][1]["error"]["code"] == "server_error" and "code" not in wired[-2][1]
    failed = wired[-1][1]["response"]
    assert failed["status"] == "failed" and failed["usage"] is None
    assert failed["error"] == {"code": "server_error", "message": "The model failed to generate a response."}


def test_incomplete_answer(served: Any) -> None:
    text = "Once upon a time, in a land far"
    whole = client(served).responses.create(model="edge-responses-incomplete", input=QUESTION)
    assert whole.status == "incomplete"
    assert whole.incomplete_details is not None and whole.incomplete_details.reason == "max_output_tokens"
    assert whole.output_text == text and whole.output[0].status == "incomplete"
    events, error = iterate(served, "responses-incomplete")
    assert error is None
    assert "response.completed" not in types(events)
    assert types(events)[-1] == "response.incomplete"
    assert "".join(deltas(events)) == text
    assert events[-1].response.status == "incomplete"
    seen, final = helper(served, "responses-incomplete")
    # both generations: every event passed on, then no response.completed -> RuntimeError
    assert seen[-1] == "response.incomplete"
    assert isinstance(final, RuntimeError)
    assert str(final) == "Didn't receive a `response.completed` event."


# -- scenarios/faults.yaml on the Responses API (README.md's table) --------------------------------

DROPPED = (httpx.RemoteProtocolError, openai.APIConnectionError)  # openai < 3 raw, >= 3 wrapped
TIMED_OUT = (httpx.ReadTimeout, openai.APITimeoutError)
NO_COMPLETED = "Didn't receive a `response.completed` event."


@pytest.mark.parametrize(
    ("kind", "iterated", "helped"),
    [
        ("disconnect", DROPPED, DROPPED),
        ("error-event", openai.APIError, openai.APIError),
        ("stall", TIMED_OUT, TIMED_OUT),
        ("malformed", json.JSONDecodeError, json.JSONDecodeError),
        ("no-done", "response.output_item.done", RuntimeError),
        ("no-finish", "response.completed", "completed"),
    ],
)
def test_bundled_faults_on_the_responses_api(served: Any, kind: str, iterated: Any, helped: Any) -> None:
    c = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0, timeout=httpx.Timeout(10.0, read=0.5))
    seen: list[str] = []
    try:
        with c.responses.create(model=f"fault-{kind}", input="Hello?", stream=True) as stream:
            seen.extend(event.type for event in stream)
        outcome: Any = seen[-1]
    except Exception as exc:
        outcome = exc
    if isinstance(iterated, str):
        assert outcome == iterated
        assert "response.failed" not in seen
    else:
        assert isinstance(outcome, iterated), outcome
    assert served.journal.last.rule == f"fault-{kind}"
    try:
        with c.responses.stream(model=f"fault-{kind}", input="Hello?") as helper_stream:
            for _ in helper_stream:
                pass
            result: Any = helper_stream.get_final_response()
    except Exception as exc:
        result = exc
    if helped == "completed":
        assert result.status == "completed" and result.output_text
    else:
        assert isinstance(result, helped), result
        if helped is RuntimeError:
            assert str(result) == NO_COMPLETED
