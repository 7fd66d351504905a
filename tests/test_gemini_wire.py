"""The Gemini API's bytes: the pretty body, the stream's framing, the error envelope, 404 and 405.

Every fact is from ../shared/dialects.md section 3 (and the rows of sections 0 and 8), which quotes
live captures (pydantic-ai tests/models/cassettes/test_google/*.yaml: test_google_model.yaml's
571-byte body is pretty JSON with a final newline; test_google_model_stream.yaml and
test_google_stream_usage_is_live_mid_stream.yaml frame each chunk `data: …\\r\\n\\r\\n`).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from helpers import http_chunks

from mockllm import Engine
from mockllm.sse import Write

ASK = {"contents": [{"role": "user", "parts": [{"text": "Say hi"}]}]}


def _root(served: Any) -> str:
    return served.base_url[: -len("/v1")] + "/v1beta/models/gemini-2.5-flash"


def _chunk_layout(value: Any) -> str:
    """The stream's JSON layout: `": "` after keys, a bare `,` between items (dialects.md section 0)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ": "))


def test_whole_body_is_pretty_json_with_a_final_newline(serve) -> None:
    served = serve({"reply": {"content": 'Hello — 日本語 "quoted"', "model": "gemini-2.5-flash"}})
    response = httpx.post(_root(served) + ":generateContent", json=ASK, timeout=10)
    raw = response.content
    body = json.loads(raw)
    assert raw == (json.dumps(body, ensure_ascii=False, indent=2) + "\n").encode()  # UTF-8 as is, 2 spaces
    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert "x-request-id" not in response.headers  # the Gemini API sends no request id
    assert list(body) == ["candidates", "usageMetadata", "modelVersion", "responseId"]
    (candidate,) = body["candidates"]
    assert list(candidate) == ["content", "finishReason", "index"]
    assert candidate == {
        "content": {"parts": [{"text": 'Hello — 日本語 "quoted"'}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
    }
    usage = body["usageMetadata"]
    assert list(usage) == ["promptTokenCount", "candidatesTokenCount", "totalTokenCount", "promptTokensDetails"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": usage["promptTokenCount"]}]
    assert body["modelVersion"] == "gemini-2.5-flash" and len(body["responseId"]) == 23


def test_text_and_function_calls_in_one_body(serve) -> None:
    reply = {"content": "Checking.", "tool_calls": [{"name": "f", "arguments": {"a": 1}}, {"name": "g"}]}
    served = serve({"reply": reply})
    body = httpx.post(_root(served) + ":generateContent", json=ASK, timeout=10).json()
    assert body["candidates"][0]["content"]["parts"] == [
        {"text": "Checking."},
        {"functionCall": {"name": "f", "args": {"a": 1}}},
        {"functionCall": {"name": "g", "args": {}}},
    ]
    assert body["candidates"][0]["finishReason"] == "STOP"  # a tool call ends STOP (dialects.md section 7)


def test_stream_framing(serve) -> None:
    served = serve({"reply": {"content": "one two three", "model": "gemini-2.5-flash"}})
    url = _root(served) + ":streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=ASK, timeout=10) as response:
        raw = response.read()
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["content-disposition"] == "attachment"
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""  # each event ends with a blank line, \r\n: no `event:` line, no [DONE]
    datas = [event.decode() for event in events[:-1]]
    assert all(d.startswith("data: ") and "\n" not in d and "\r" not in d for d in datas)
    chunks = [json.loads(d[len("data: ") :]) for d in datas]
    assert [d[len("data: ") :] for d in datas] == [_chunk_layout(c) for c in chunks]
    assert [c["candidates"][0]["content"]["parts"] for c in chunks] == [
        [{"text": t}] for t in ("one", " two", " three")
    ]
    # every chunk whole: the usage so far, the model, the one id; the last carries the finish
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [1, 2, 3]
    assert {c["modelVersion"] for c in chunks} == {"gemini-2.5-flash"} and len({c["responseId"] for c in chunks}) == 1
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    assert all(c["candidates"][0]["index"] == 0 for c in chunks)


def test_stream_one_chunk_per_write(serve) -> None:
    served = serve({"reply": {"chunks": ["a", "b"], "tool_calls": [{"name": "f", "arguments": {"x": [1, 2]}}]}})
    chunks = http_chunks(_root(served) + ":streamGenerateContent", ASK)
    assert len(chunks) == 3 and all(c.startswith(b"data: {") and c.endswith(b"}\r\n\r\n") for c in chunks)
    last = json.loads(chunks[-1][len(b"data: ") :])
    # a function call is one complete part, no argument deltas and no id (dialects.md section 3, "Stream")
    assert last["candidates"][0]["content"]["parts"] == [{"functionCall": {"name": "f", "args": {"x": [1, 2]}}}]
    assert last["candidates"][0]["finishReason"] == "STOP"


def test_error_event_is_a_chunk_of_its_own_then_the_end(serve) -> None:
    reply = {"content": "one two three", "fault": {"kind": "error_event", "after_chunks": 1, "message": "Busy."}}
    served = serve({"reply": reply})
    chunks = http_chunks(_root(served) + ":streamGenerateContent", ASK)
    assert len(chunks) == 2
    # dialects.md section 8: `data: {"error":{"code":503,…,"status":"UNAVAILABLE"}}`, end
    assert chunks[1] == b'data: {"error": {"code": 503,"message": "Busy.","status": "UNAVAILABLE"}}\r\n\r\n'


def test_a_scenarios_framing_frames_the_stream_its_way(serve) -> None:
    served = serve({"reply": {"content": "one two", "framing": {"line_ending": "lf", "coalesce": 2}}})
    (write,) = http_chunks(_root(served) + ":streamGenerateContent", ASK)
    events = write.split(b"\n\n")
    assert events[-1] == b"" and len(events) == 3 and b"\r" not in write
    assert all(e.startswith(b"data: {") for e in events[:-1])


def test_a_framing_that_sets_no_line_ending_keeps_the_apis(serve) -> None:
    """`coalesce` alone changes how events are cut into writes, not their bytes: `\\r\\n` stays."""
    served = serve({"reply": {"content": "one two", "framing": {"coalesce": 2}}})
    (write,) = http_chunks(_root(served) + ":streamGenerateContent", ASK)
    events = write.split(b"\r\n\r\n")
    assert events[-1] == b"" and len(events) == 3 and all(e.startswith(b"data: {") for e in events[:-1])
    assert b"\n" not in write.replace(b"\r\n", b"")


def test_errors_say_their_charset_as_google_does(serve) -> None:
    served = serve({"reply": {"error": {"status": 503}}})
    response = httpx.post(_root(served) + ":generateContent", json=ASK, timeout=10)
    # Google's error answers: `content-type: application/json; charset=UTF-8` (shared/dialects.md section 3)
    assert (response.status_code, response.headers["content-type"]) == (503, "application/json; charset=UTF-8")
    assert _error(response)["status"] == "UNAVAILABLE"
    missing = httpx.post(_root(served).replace("/v1beta/", "/v1/") + ":countTokens", json=ASK, timeout=10)
    assert missing.headers["content-type"].startswith("application/json")


def test_the_error_envelope(serve) -> None:
    served = serve({"reply": {"error": {"status": 429, "message": "Quota."}}})
    response = httpx.post(_root(served) + ":generateContent", json=ASK, timeout=10)
    assert response.status_code == 429 and response.headers["content-type"].startswith("application/json")
    # google.rpc Status, pretty (2 spaces, a final newline), RetryInfo in a 429 (dialects.md section 3, "Errors")
    assert response.content == (
        b'{\n  "error": {\n    "code": 429,\n    "message": "Quota.",\n    "status": "RESOURCE_EXHAUSTED",\n'
        b'    "details": [\n      {\n        "@type": "type.googleapis.com/google.rpc.RetryInfo",\n'
        b'        "retryDelay": "1s"\n      }\n    ]\n  }\n}\n'
    )


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and response.content.endswith(b"\n}\n"), response.content
    assert body["error"]["code"] == response.status_code, body
    return body["error"]  # type: ignore[no-any-return]


def test_bad_requests(serve) -> None:
    served = serve({"reply": {"content": "x"}})
    url = _root(served) + ":generateContent"
    cases = [
        (b"{", "Invalid JSON payload received. Unexpected token."),
        (b"[1]", 'Invalid JSON payload received. Unknown name "": Root element must be a message'),
        (b"{}", "* GenerateContentRequest.contents: contents is not specified"),
        (b'{"contents": "hi"}', "Invalid value at 'contents': expected a list of Content objects"),
        (b'{"contents": [{"role": "user"}]}', "* GenerateContentRequest.contents[0].parts: contents.parts must not"),
        (b'{"contents": [{"role": "system", "parts": [{"text": "x"}]}]}', "Please use a valid role: user, model."),
        (b'{"contents": [{"parts": [{"text": 5}]}]}', "Invalid value at 'contents[0].parts[0].text' (TYPE_STRING), 5"),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": "many"}}',
            "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32)",
        ),
    ]
    for body, message in cases:
        response = httpx.post(url, content=body, timeout=10)
        assert response.status_code == 400, body
        error = _error(response)
        assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith(message), (body, error)
    assert [e.status for e in served.journal] == [400] * len(cases)


def test_tolerated_parts_and_the_matches(serve) -> None:
    served = serve(
        {"match": {"user": {"equals": "Look: here"}, "system": {"equals": "Be kind."}}, "reply": {"content": "ok"}}
    )
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Look: "},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {"text": "here"},
                ],
            },
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"r": 1}}}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be kind."}]},
        "generationConfig": {
            "maxOutputTokens": "20",
            "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT"},
        },
        "tools": [{"functionDeclarations": [{"name": "f"}, {"name": "g"}]}],
    }
    response = httpx.post(_root(served) + ":generateContent", json=body, timeout=10)
    # matched (else 418): the user text is the last user turn with text, its text parts joined; the
    # function-result turn after it answers a call and keeps the question
    assert response.status_code == 200, response.content
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": "ok"}]
    assert served.journal.last.user_text == "Look: here"


def test_404_and_405(serve) -> None:
    served = serve({"match": {"model": "gemini-2.5-flash"}, "reply": {"content": "x"}})
    missing = httpx.get(served.base_url[: -len("/v1")] + "/v1beta/models/nope", timeout=10)
    assert missing.status_code == 404
    assert _error(missing)["status"] == "NOT_FOUND" and missing.content.startswith(b'{\n  "error": {\n    "code": 404')
    found = httpx.get(served.base_url[: -len("/v1")] + "/v1beta/models/gemini-2.5-flash", timeout=10)
    assert found.status_code == 200 and found.json()["name"] == "models/gemini-2.5-flash"
    wrong = httpx.get(_root(served) + ":generateContent", timeout=10)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert "it takes POST" in _error(wrong)["message"]
    tuned = served.base_url[: -len("/v1")] + "/v1beta/tunedModels/mine:generateContent"
    assert httpx.post(tuned, json=ASK, timeout=10).status_code == 404  # not a route mockllm serves


def test_no_rule_matched_in_the_envelope() -> None:
    engine = Engine(time_scale=0)
    engine.add({"match": {"model": "other"}, "reply": {"content": "x"}})
    answer = engine.handle("POST", "/v1/models/gemini-2.5-flash:generateContent", {}, json.dumps(ASK).encode())
    error = json.loads(answer.body)["error"]
    assert answer.status == 418 and error["code"] == 418 and error["status"] == "FAILED_PRECONDITION"
    assert "no rule matched this gemini request" in error["message"]


def test_a_body_over_the_limit_in_the_envelope() -> None:
    engine = Engine(time_scale=0, max_body_size=10)
    answer = engine.handle("POST", "/v1beta/models/g:generateContent", {}, json.dumps(ASK).encode())
    error = json.loads(answer.body)["error"]
    assert answer.status == 413 and (error["code"], error["status"]) == (413, "INVALID_ARGUMENT")
    assert error["message"].startswith("Request body too large for POST /v1beta/models/g:generateContent")


@pytest.mark.parametrize(
    "reply",
    [
        {"content": "one two three"},
        {"chunks": ["", 'é "q" \\ \n', "😀\u2028"]},
        {"content": "x", "finish_reason": "content_filter", "model": 'm"odel'},
        {"content": "a b c d e f", "usage": {"completion_tokens": 7}},
        {"refusal": "No."},
    ],
)
def test_the_plain_stream_is_the_event_streams_bytes(reply: dict[str, Any]) -> None:
    """GeminiStream's template path (plain_writes) against the general one (events, framed), per reply."""
    from mockllm.dialects.gemini import GeminiStream

    ask = json.dumps({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}).encode()
    engine = Engine(time_scale=0)
    engine.add({"reply": reply})
    answer = engine.handle("POST", "/v1beta/models/g:streamGenerateContent", {}, ask)
    plain = b"".join(w.data for w in answer.writes or ())
    saved = GeminiStream.plain_writes
    try:
        GeminiStream.plain_writes = lambda self: (  # type: ignore[method-assign]
            Write(e.at, f"data: {e.text}\r\n\r\n".encode()) for e in self.events()
        )
        engine.reset()
        general = b"".join(
            w.data for w in engine.handle("POST", "/v1beta/models/g:streamGenerateContent", {}, ask).writes or ()
        )
    finally:
        GeminiStream.plain_writes = saved  # type: ignore[method-assign]
    assert plain == general and plain.count(b"\r\n\r\n") >= 1


def test_the_pretty_body_is_json_dumps_indent_2() -> None:
    """orjson's indent gives the standard library's bytes for what the dialect sends (the dialect uses it
    for speed). They differ only in floats written with an exponent (1e-07 / 1e-7), which it sends none of."""
    from mockllm.dialects.gemini import _pretty

    value = {"a": [1, 2.5, {"b": 'é\u2028"\\\n'}], "c": None, "d": True, "e": {}, "f": [], "g": 0.95, "h": 1048576}
    assert _pretty(value) == (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode()
