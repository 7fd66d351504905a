"""The Responses API's bytes, read with raw httpx (and a bare socket where writes matter).

Wire facts: ../shared/dialects.md section 0 (framing per API) and section 1 (OpenAI Responses),
../shared/wire.md section 4. Bodies and stream events are validated against OpenAI's published
OpenAPI description (tests/data/openai-schemas.json, extracted from
openai/openai-openapi by tests/data/extract_openapi_schemas.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from helpers import RESPONSE_EVENT_SCHEMAS as EVENT_SCHEMAS
from helpers import http_chunks as raw_http_chunks
from helpers import openai_schema_defs

from mockllm import Engine

TEXT = "one two three four five"
PIECES = ["one", " two", " three", " four", " five"]
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
EOL = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}
STREAM = {"model": "m", "input": "Count", "stream": True}
SCHEMAS = Path(__file__).parent / "data" / "openai-schemas.json"


def rule(reply: dict[str, Any], **scenario: Any) -> dict[str, Any]:
    return {"rules": [{"name": "wire", "match": {"model": "m"}, "reply": reply}], **scenario}


def post(served: Any, body: dict[str, Any] | None = None, content: bytes | None = None) -> httpx.Response:
    if content is None:
        content = json.dumps(body).encode()
    return httpx.post(
        f"{served.base_url}/responses", content=content, headers={"content-type": "application/json"}, timeout=10
    )


def sse(raw: bytes, eol: bytes = b"\n") -> list[tuple[str, str]]:
    """(event name, data) per event, after checking each is exactly `event: X` + `data: ...` + blank line."""
    blocks = raw.split(eol * 2)
    assert blocks[-1] == b"", "the body ends with a blank line"
    out = []
    for block in blocks[:-1]:
        lines = block.split(eol)
        assert len(lines) == 2, block
        assert lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block
        out.append((lines[0][7:].decode(), lines[1][6:].decode()))
    return out


def payloads(raw: bytes, eol: bytes = b"\n") -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in sse(raw, eol)]


def reference(reply: dict[str, Any], body: dict[str, Any] = STREAM) -> bytes:
    """The same rule's stream without framing, from an in-process Engine (same rule, same call: same ids)."""
    engine = Engine(time_scale=0)
    engine.add(rule({k: v for k, v in reply.items() if k != "framing"}))
    answer = engine.handle("POST", "/v1/responses", {"content-type": "application/json"}, json.dumps(body).encode())
    assert answer.status == 200 and answer.writes is not None
    return b"".join(w.data for w in answer.writes)


def http_chunks(served: Any, body: dict[str, Any] = STREAM) -> list[bytes]:
    """The Responses stream's HTTP/1.1 chunks, one per network write (as tests/test_framing.py reads chat's)."""
    return raw_http_chunks(f"{served.base_url}/responses", body)


def sdk_text(served: Any) -> str:
    """What openai's responses.stream() helper makes of the stream: the final output_text."""
    c = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    with c.responses.stream(model="m", input="Count") as stream:
        return stream.get_final_response().output_text


# -- the OpenAPI description -----------------------------------------------------------------------


def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": openai_schema_defs(),
        "$ref": f"#/$defs/{name}",
    }
    return jsonschema.Draft202012Validator(schema)


def assert_valid(name: str, value: Any) -> None:
    errors = sorted(_validator(name).iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, f"{name}: " + "; ".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5])


# -- a stream's bytes --------------------------------------------------------------------------------


def test_stream_events_are_named_compact_and_numbered(serve) -> None:
    served = serve(rule({"content": TEXT}))
    response = post(served, STREAM)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"  # dialects.md section 0
    assert REQUEST_ID.match(response.headers["x-request-id"])
    raw = response.content
    assert b"\r" not in raw  # lf line ends
    assert b"[DONE]" not in raw  # no terminator: the stream ends after its terminal event (section 0)
    events = sse(raw)
    for name, data in events:
        parsed = json.loads(data)
        assert name == parsed["type"]  # `event:` equals the data's type (wire.md section 4)
        assert data == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)  # compact JSON
    numbers = [json.loads(data)["sequence_number"] for _, data in events]
    assert numbers == list(range(len(events)))
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert raw.endswith(b"\n\n") and raw.startswith(b"event: response.created\ndata: {")


def test_stream_events_validate_against_the_openapi_schemas(serve) -> None:
    served = serve(
        {
            "rules": [
                {
                    "match": {"user": {"contains": "tool"}},
                    "reply": {
                        "content": "Checking.",
                        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}],
                    },
                },
                {"match": {"user": {"contains": "cut"}}, "reply": {"content": TEXT, "finish_reason": "length"}},
                {"reply": {"content": TEXT}},
            ]
        }
    )
    seen = set()
    for text in ("text", "tool", "cut"):
        for event in payloads(post(served, {"model": "gpt-4o", "input": text, "stream": True}).content):
            assert_valid(EVENT_SCHEMAS[event["type"]], event)
            seen.add(event["type"])
    assert seen == set(EVENT_SCHEMAS) - {"response.failed"}


def test_text_delta_events_carry_the_live_fields(serve) -> None:
    served = serve(rule({"content": TEXT}))
    events = payloads(post(served, STREAM).content)
    text_deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert [e["delta"] for e in text_deltas] == PIECES
    for event in text_deltas:  # dialects.md section 1, "Stream, text"
        assert event["logprobs"] == [] and event["content_index"] == 0 and event["output_index"] == 0
        assert isinstance(event["obfuscation"], str)
    assert events[0]["response"]["usage"] is None and events[0]["response"]["output"] == []
    assert events[-1]["response"]["usage"]["output_tokens"] == 5
    assert set(events[-1]["response"]["usage"]) == {
        "input_tokens",
        "input_tokens_details",
        "output_tokens",
        "output_tokens_details",
        "total_tokens",
    }


def test_include_obfuscation_false_leaves_it_out(serve) -> None:
    served = serve(rule({"content": TEXT}))
    raw = post(served, {**STREAM, "stream_options": {"include_obfuscation": False}}).content
    assert b'"obfuscation"' not in raw
    assert [e["delta"] for e in payloads(raw) if e["type"] == "response.output_text.delta"] == PIECES


def test_function_call_events(serve) -> None:
    served = serve(rule({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}]}))
    events = payloads(post(served, STREAM).content)
    added = events[2]
    assert added["type"] == "response.output_item.added"
    item = added["item"]
    assert (item["type"], item["status"], item["arguments"], item["call_id"], item["name"]) == (
        "function_call",
        "in_progress",
        "",
        "call_1",
        "get_weather",
    )
    assert re.fullmatch(r"fc_[0-9a-f]{48}", item["id"])
    fragments = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    assert len(fragments) > 1 and all(e["item_id"] == item["id"] and e["output_index"] == 0 for e in fragments)
    assert "".join(e["delta"] for e in fragments) == '{"city":"Paris"}'
    (done,) = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done["arguments"] == '{"city":"Paris"}'
    assert events[-1]["type"] == "response.completed" and events[-1]["response"]["status"] == "completed"
    assert events[-1]["response"]["output"] == [{**item, "arguments": '{"city":"Paris"}', "status": "completed"}]


# -- a body that is not streamed ------------------------------------------------------------------------

# dialects.md section 1, "Non-streamed body" (the 2025 list; 2026 adds keys in alphabetical slots)
KEY_ORDER = [
    "id",
    "object",
    "created_at",
    "status",
    "background",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "usage",
    "user",
    "metadata",
]


def test_body_is_pretty_two_space_json_in_the_live_key_order(serve) -> None:
    served = serve(rule({"content": TEXT}))
    response = post(served, {"model": "m", "input": "Count"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(response.headers["x-request-id"])
    body = response.json()
    assert response.text == json.dumps(body, indent=2, ensure_ascii=False)  # dialects.md section 0
    assert list(body)[:4] == ["id", "object", "created_at", "status"]
    known = [key for key in body if key in KEY_ORDER]
    assert known == sorted(known, key=KEY_ORDER.index)
    assert {"id", "object", "created_at", "status", "output", "usage", "model"} <= set(body)
    (item,) = body["output"]
    assert item["content"] == [{"type": "output_text", "annotations": [], "logprobs": [], "text": TEXT}]
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 0}
    assert body["usage"]["output_tokens_details"] == {"reasoning_tokens": 0}


def test_bodies_validate_against_the_openapi_schemas(serve) -> None:
    served = serve(
        {
            "rules": [
                {"match": {"user": {"contains": "tool"}}, "reply": {"tool_calls": [{"name": "f", "arguments": {}}]}},
                {"match": {"user": {"contains": "cut"}}, "reply": {"content": TEXT, "finish_reason": "length"}},
                {"reply": {"content": TEXT}},
            ]
        }
    )
    for text in ("text", "tool", "cut"):
        body = post(served, {"model": "gpt-4o", "input": text, "instructions": "Be brief.", "temperature": 0}).json()
        assert_valid("Response", body)
    assert_valid("ErrorResponse", post(served, {"input": "no model"}).json())


def test_echoed_tools_have_the_response_tool_shape(serve) -> None:
    # The response's `tools` are FunctionTool objects (OAS: type, name, strict and parameters are
    # required; live bodies echo `"description":null` and `"strict":true` in full, dialects.md section 1
    # and pydantic-ai's test_openai_responses_stream.yaml), also when the request left them out, as
    # the SDK's FunctionToolParam allows.
    served = serve(rule({"tool_calls": [{"name": "f", "arguments": {}}]}))
    tool = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
    body = post(served, {"model": "m", "input": "tool", "tools": [tool]}).json()
    (echoed,) = body["tools"]
    assert {"type", "name", "strict", "parameters"} <= set(echoed), echoed
    assert_valid("Response", body)


def test_get_returns_the_stored_object_and_404_for_an_unknown_id(serve) -> None:
    served = serve(rule({"content": TEXT}))
    created = post(served, {"model": "m", "input": "Count"})
    stored = httpx.get(f"{served.base_url}/responses/{created.json()['id']}", timeout=10)
    assert stored.status_code == 200 and stored.json() == created.json()
    assert stored.headers["content-type"] == "application/json"
    missing = httpx.get(f"{served.base_url}/responses/resp_{'0' * 48}", timeout=10)
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert REQUEST_ID.match(missing.headers["x-request-id"])


# -- framing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["crlf", "cr"])
def test_line_endings(serve, ending: str) -> None:
    reply = {"content": TEXT, "framing": {"line_ending": ending}}
    served = serve(rule(reply))
    raw = post(served, STREAM).content
    eol = EOL[ending]
    events = sse(raw, eol)
    assert len(events) == 13 and all(name == json.loads(data)["type"] for name, data in events)
    if ending == "crlf":
        assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    else:
        assert b"\n" not in raw
    assert raw.replace(eol, b"\n") == reference(reply)
    assert sdk_text(served) == TEXT  # openai's decoder takes \r\n and \r (wire.md section 5)


@pytest.mark.parametrize("size", [1, 16])
def test_split_cuts_every_write(serve, size: int) -> None:
    reply = {"content": TEXT, "framing": {"split": size}}
    served = serve(rule(reply))
    chunks = http_chunks(served)
    assert max(len(c) for c in chunks) == size
    assert b"".join(chunks) == reference(reply)
    assert sdk_text(served) == TEXT


def test_keepalive_comments_before_the_first_event(serve) -> None:
    reply = {"content": TEXT, "timing": {"ttft_ms": 250}, "framing": {"keepalive": {"every_ms": 100}}}
    served = serve(rule(reply), time_scale=1)
    chunks = http_chunks(served)
    assert chunks[:3] == [b": keep-alive\n\n"] * 3
    assert chunks[3].startswith(b"event: response.created\n")
    assert b"".join(chunks[3:]) == reference(reply)
    assert sdk_text(served) == TEXT  # comment lines are skipped


def test_data_prefix_without_a_space_keeps_the_event_lines(serve) -> None:
    served = serve(rule({"content": TEXT, "framing": {"data_prefix": "data:"}}))
    raw = post(served, STREAM).content
    assert raw.startswith(b'event: response.created\ndata:{"type":"response.created"') and b"data: " not in raw
    assert sdk_text(served) == TEXT


def test_coalesce_packs_n_events_per_write(serve) -> None:
    reply = {"content": TEXT, "framing": {"coalesce": 5}}
    served = serve(rule(reply))
    chunks = http_chunks(served)
    assert [c.count(b"\n\n") for c in chunks] == [5, 5, 3]  # 13 events
    assert b"".join(chunks) == reference(reply)


def test_a_transcript_is_replayed_byte_for_byte(serve) -> None:
    created = {"id": "resp_x", "object": "response", "created_at": 1, "status": "in_progress", "model": "m"}
    part = {"type": "output_text", "text": "Hé", "annotations": []}
    item = {"id": "msg_x", "type": "message", "status": "completed", "role": "assistant", "content": [part]}
    first = {"type": "response.created", "response": {**created, "output": []}}
    last = {"type": "response.completed", "response": {**created, "status": "completed", "output": [item]}}
    transcript = (
        ": captured\n\n"
        f"event: response.created\ndata: {json.dumps(first)}\n\n"
        f"event: response.completed\ndata: {json.dumps(last, ensure_ascii=False)}\n\n"
    )
    served = serve(rule({"sse": transcript}))
    assert post(served, STREAM).content == transcript.encode()
    assert sdk_text(served) == "Hé"  # no sequence_number, no item events: the helper takes it


def test_timing_delays_the_first_event(serve) -> None:
    served = serve(rule({"content": TEXT, "timing": {"ttft_ms": 200, "chunk_ms": 10}}), time_scale=1)
    assert post(served, STREAM).status_code == 200
    sent = served.journal.last.sent  # one write per event: created, in_progress, added, part, 5 deltas, ...
    assert len(sent) == 13 and sent == sorted(sent)
    # never early (1 ms for the journal's rounding): the first text chunk is due at ttft_ms, the head
    # events go with it, then one delta every chunk_ms on an absolute schedule (README "Timing")
    assert sent[0] >= 0.199
    due = [0.2 + 0.01 * i for i in range(5)]
    assert all(at >= when - 0.001 for at, when in zip(sent[4:9], due, strict=True)), sent
    assert sent[-1] < 1.0


# -- faults on the wire ------------------------------------------------------------------------------------


def test_error_event_is_nested_then_response_failed_then_the_end(serve) -> None:
    served = serve(rule({"content": TEXT, "fault": {"kind": "error_event", "after_chunks": 2, "message": "Boom."}}))
    response = post(served, STREAM)
    assert response.status_code == 200  # the HTTP answer is whole; only its events say it failed
    events = sse(response.content)
    *head, (error_name, error_data), (failed_name, failed_data) = events
    assert [json.loads(d)["delta"] for n, d in head if n == "response.output_text.delta"] == PIECES[:2]
    assert error_name == "error" and failed_name == "response.failed"
    error = json.loads(error_data)
    assert error == {  # the nested live shape (dialects.md section 1, "Errors")
        "type": "error",
        "sequence_number": len(head),
        "error": {"type": "server_error", "code": "server_error", "message": "Boom.", "param": None},
    }
    failed = json.loads(failed_data)
    assert failed["sequence_number"] == len(head) + 1
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": "server_error", "message": "Boom."}
    assert failed["response"]["id"] == json.loads(head[0][1])["response"]["id"]
    assert_valid("ResponseFailedEvent", failed)
    assert b"response.completed" not in response.content


def test_disconnect_cuts_the_body(serve) -> None:
    served = serve(rule({"content": TEXT, "fault": {"kind": "disconnect", "after_chunks": 2}}))
    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(  # the chunked body never ends
            "POST", f"{served.base_url}/responses", json=STREAM, timeout=10
        ) as response,
    ):
        for piece in response.iter_raw():
            received += piece
    events = payloads(bytes(received))
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == PIECES[:2]
    assert events[-1]["type"] == "response.output_text.delta"
    assert served.journal.last.aborted


def test_malformed_sends_half_an_event_then_goes_on(serve) -> None:
    served = serve(rule({"content": TEXT, "fault": {"kind": "malformed", "after_chunks": 2}}))
    events = sse(post(served, STREAM).content)
    broken = []
    for index, (_, data) in enumerate(events):
        try:
            json.loads(data)
        except json.JSONDecodeError:
            broken.append(index)
    (at,) = broken
    assert [json.loads(d)["delta"] for n, d in events[:at] if n == "response.output_text.delta"] == PIECES[:2]
    rest = [json.loads(d) for _, d in events[at + 1 :]]
    assert rest[-1]["type"] == "response.completed"
    assert [e["delta"] for e in rest if e["type"] == "response.output_text.delta"][-1] == PIECES[-1]


def test_no_done_and_no_finish_on_the_wire(serve) -> None:
    served = serve(rule({"content": TEXT, "fault": {"kind": "no_done"}}))
    kinds = [e["type"] for e in payloads(post(served, STREAM).content)]
    assert kinds[-1] == "response.output_item.done" and "response.completed" not in kinds
    served = serve(rule({"content": TEXT, "fault": {"kind": "no_finish"}}))
    events = payloads(post(served, STREAM).content)
    kinds = [e["type"] for e in events]
    assert not [k for k in kinds if k.endswith(".done")] and kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))  # no gaps (contract: Streams)


# -- errors ------------------------------------------------------------------------------------------------


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    assert REQUEST_ID.match(response.headers["x-request-id"])
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"model=gpt-4o&input=hi", None),
        (b"", None),
        (b'{"model": "gpt-4o", "input": ', None),
        (json.dumps({"input": "hi"}).encode(), "model"),
        (json.dumps({"model": 4, "input": "hi"}).encode(), "model"),
        (json.dumps({"model": "gpt-4o", "input": 42}).encode(), "input"),
        (json.dumps({"model": "gpt-4o", "input": {"role": "user"}}).encode(), "input"),
    ],
    ids=["not-json", "empty", "truncated", "no-model", "model-number", "input-number", "input-object"],
)
def test_bad_requests_get_400_in_openai_envelope(serve, content: bytes, param: str | None) -> None:
    served = serve(rule({"content": "never"}))
    response = post(served, content=content)
    assert response.status_code == 400
    error = envelope(response)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    if param:
        assert param in error["message"]
    entry = served.journal.last
    assert (entry.endpoint, entry.status, entry.rule) == ("responses", 400, None)
    assert post(served, {"model": "m", "input": "still fine"}).status_code == 200


def test_error_body_layout(serve) -> None:
    # dialects.md section 0: a Responses error body is pretty-printed with 4 spaces and a trailing newline
    served = serve(rule({"error": {"status": 429}}))
    response = post(served, {"model": "m", "input": "Hi"})
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert response.text == json.dumps(response.json(), indent=4, ensure_ascii=False) + "\n"


def test_scripted_error_on_a_stream_request_is_plain_json(serve) -> None:
    served = serve(rule({"error": {"status": 500}}))
    response = post(served, STREAM)
    assert response.status_code == 500
    assert envelope(response)["type"] == "server_error"
    assert_valid("ErrorResponse", response.json())


def test_unmatched_is_418_naming_the_api(serve) -> None:
    served = serve({"name": "chat-only", "match": {"endpoint": "chat"}, "reply": {"content": "chat"}})
    response = post(served, {"model": "m", "input": "Hi"})
    assert response.status_code == 418 and response.headers["x-should-retry"] == "false"
    error = envelope(response)
    assert error["code"] == "no_rule_matched" and "no rule matched this responses request" in error["message"]
