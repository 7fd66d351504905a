"""Mid-stream faults (`fault:`), seen through the real openai SDK, litellm and raw httpx.

What each client does is what shared/wire.md section 5 and 7 say: openai raises raw httpx
transport errors (or, from openai 3, their APIConnectionError / APITimeoutError wrappers),
APIError for an error event and JSONDecodeError for bad JSON; litellm turns every one of
them into MidStreamFallbackError with the text generated so far. After every fault the
server goes on answering normally.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import litellm
import openai
import pytest
from helpers import LITELLM_FAILS_WITHOUT_FINISH, SCENARIOS, faulted
from litellm.exceptions import MidStreamFallbackError

TEXT = "one two three four five"  # five content chunks: "one", " two", " three", " four", " five"
PIECES = ["one", " two", " three", " four", " five"]
MESSAGES = [{"role": "user", "content": "Tell me five numbers."}]
DROPPED = (httpx.RemoteProtocolError, openai.APIConnectionError)  # openai < 3 raw, >= 3 wrapped
TIMED_OUT = (httpx.ReadTimeout, openai.APITimeoutError)


def openai_client(served: Any, read: float = 10.0, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=served.base_url, api_key="test", max_retries=retries, timeout=httpx.Timeout(10.0, read=read)
    )


def openai_stream(client: openai.OpenAI, model: str = "faulty") -> tuple[list[Any], BaseException | None]:
    """The chunks the SDK yielded, and the exception that ended the iteration (or None)."""
    chunks: list[Any] = []
    try:
        with client.chat.completions.create(model=model, messages=MESSAGES, stream=True) as stream:  # type: ignore[arg-type]
            for chunk in stream:
                chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def litellm_stream(served: Any, model: str = "faulty", **kwargs: Any) -> tuple[list[Any], BaseException | None]:
    chunks: list[Any] = []
    try:
        response = litellm.completion(
            model=f"openai/{model}",
            api_base=served.base_url,
            api_key="test",
            messages=MESSAGES,
            stream=True,
            num_retries=0,
            **kwargs,
        )
        for chunk in response:
            chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


def texts(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def finishes(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def raw_stream(served: Any, model: str = "faulty") -> tuple[int, bytes, BaseException | None]:
    """Status, the body bytes received, and the transport error that cut them (or None)."""
    body = {"model": model, "messages": MESSAGES, "stream": True, "stream_options": {"include_obfuscation": False}}
    received = bytearray()
    with httpx.Client(timeout=10.0) as client:
        try:
            with client.stream("POST", f"{served.base_url}/chat/completions", json=body) as response:
                for piece in response.iter_raw():
                    received += piece
        except httpx.TransportError as exc:
            return response.status_code, bytes(received), exc
    return response.status_code, bytes(received), None


def events(raw: bytes) -> list[str]:
    """The data payloads of a plain LF-framed SSE body (a cut last event included)."""
    return [part.removeprefix("data: ") for part in raw.decode().split("\n\n") if part]


def assert_still_serving(served: Any) -> None:
    """A normal request, streamed and not, right after the fault."""
    client = openai_client(served)
    reply = client.chat.completions.create(model="healthy", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "all good"
    chunks, error = openai_stream(client, "healthy")
    assert error is None and "".join(texts(chunks)) == "all good"


# -- disconnect -----------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
def test_disconnect_openai_raises_a_transport_error_after_the_chunks_before_it(serve, after: int) -> None:
    served = serve(faulted("disconnect", after))
    chunks, error = openai_stream(openai_client(served))
    assert isinstance(error, DROPPED), repr(error)
    assert texts(chunks) == PIECES[:after]
    assert finishes(chunks) == []
    assert served.journal[0].aborted
    assert_still_serving(served)


@pytest.mark.parametrize("after", [0, 2])
def test_disconnect_litellm_raises_mid_stream_fallback_with_the_text_so_far(serve, after: int) -> None:
    served = serve(faulted("disconnect", after))
    chunks, error = litellm_stream(served)
    assert isinstance(error, MidStreamFallbackError), repr(error)
    # A ServiceUnavailableError subclass, but its status is the wrapped APIConnectionError's 500.
    assert isinstance(error, litellm.ServiceUnavailableError) and error.status_code == 500
    assert isinstance(error.original_exception, litellm.APIConnectionError)
    assert error.generated_content == "".join(PIECES[:after])
    assert texts(chunks) == PIECES[:after]
    assert_still_serving(served)


def test_disconnect_sends_no_terminating_chunk(serve) -> None:
    served = serve(faulted("disconnect", 3))
    status, raw, error = raw_stream(served)
    assert status == 200
    assert isinstance(error, httpx.RemoteProtocolError)  # the chunked body never ends
    payloads = events(raw)
    assert len(payloads) == 4  # the role chunk and three content chunks
    assert [json.loads(p)["choices"][0]["delta"].get("content") for p in payloads] == ["", *PIECES[:3]]
    assert b"[DONE]" not in raw and b'"finish_reason":"stop"' not in raw


def test_after_chunks_past_the_end_faults_before_the_finish_chunk(serve) -> None:
    served = serve(faulted("disconnect", 99))
    chunks, error = openai_stream(openai_client(served))
    assert isinstance(error, DROPPED)
    assert texts(chunks) == PIECES and finishes(chunks) == []


# -- error event ----------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
def test_error_event_openai_raises_api_error_without_status(serve, after: int) -> None:
    served = serve(faulted("error_event", after, message="The model is overloaded mid-stream."))
    chunks, error = openai_stream(openai_client(served))
    assert isinstance(error, openai.APIError) and not isinstance(error, openai.APIStatusError), repr(error)
    assert error.message == "The model is overloaded mid-stream."
    assert texts(chunks) == PIECES[:after]
    assert_still_serving(served)


def test_error_event_litellm_raises_mid_stream_fallback(serve) -> None:
    served = serve(faulted("error_event", 2))
    _chunks, error = litellm_stream(served)
    assert isinstance(error, MidStreamFallbackError), repr(error)
    assert "The server had an error while processing your request" in str(error)
    assert error.generated_content == "one two"
    assert_still_serving(served)


def test_error_event_keeps_status_200_and_ends_the_body_cleanly(serve) -> None:
    served = serve(faulted("error_event", 1))
    status, raw, error = raw_stream(served)
    assert status == 200 and error is None  # a complete HTTP body: only the SSE content is wrong
    last = json.loads(events(raw)[-1])
    assert last == {
        "error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }
    assert b"[DONE]" not in raw


# -- stall ----------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
def test_stall_trips_the_openai_read_timeout(serve, after: int) -> None:
    served = serve(faulted("stall", after, stall_ms=3000))
    started = time.monotonic()
    chunks, error = openai_stream(openai_client(served, read=0.5))
    assert isinstance(error, TIMED_OUT), repr(error)
    assert time.monotonic() - started < 2.5  # the client's timeout fired, not the server's drop at 3 s
    assert texts(chunks) == PIECES[:after]
    assert_still_serving(served)


def test_stall_litellm_raises_mid_stream_fallback_on_its_timeout(serve) -> None:
    served = serve(faulted("stall", 2, stall_ms=3000))
    _chunks, error = litellm_stream(served, timeout=0.5)
    assert isinstance(error, MidStreamFallbackError), repr(error)
    assert "timed out" in str(error).lower()
    assert error.generated_content == "one two"
    assert_still_serving(served)


def test_stall_ends_in_a_drop_and_is_never_time_scaled(serve) -> None:
    served = serve(faulted("stall", 1, stall_ms=300), time_scale=0)  # time_scale 0 sends chunks at once...
    started = time.monotonic()
    status, raw, error = raw_stream(served)
    assert time.monotonic() - started >= 0.28  # ...but the stall still holds the connection 300 ms
    assert status == 200 and isinstance(error, httpx.RemoteProtocolError)
    assert len(events(raw)) == 2 and served.journal[0].aborted
    assert_still_serving(served)


# -- malformed ------------------------------------------------------------------------------


@pytest.mark.parametrize("after", [0, 2])
def test_malformed_openai_raises_json_decode_error(serve, after: int) -> None:
    served = serve(faulted("malformed", after))
    chunks, error = openai_stream(openai_client(served))
    assert isinstance(error, json.JSONDecodeError), repr(error)
    assert texts(chunks) == PIECES[:after]
    assert_still_serving(served)


def test_malformed_litellm_raises_mid_stream_fallback(serve) -> None:
    served = serve(faulted("malformed", 2))
    _chunks, error = litellm_stream(served)
    assert isinstance(error, MidStreamFallbackError), repr(error)
    assert error.generated_content == "one two"


def test_malformed_sends_half_a_chunk_then_the_stream_goes_on(serve) -> None:
    served = serve(faulted("malformed", 2))
    status, raw, error = raw_stream(served)
    assert status == 200 and error is None
    payloads = events(raw)
    broken = payloads[3]  # after the role chunk and two content chunks
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    assert broken.startswith('{"id":"chatcmpl-')
    rest = [json.loads(p) for p in payloads[4:-1]]
    assert [c["choices"][0]["delta"].get("content") for c in rest] == [*PIECES[2:], None]
    assert rest[-1]["choices"][0]["finish_reason"] == "stop" and payloads[-1] == "[DONE]"


# -- no_done, no_finish ---------------------------------------------------------------------


def test_no_done_ends_quietly_for_both_clients(serve) -> None:
    served = serve(faulted("no_done"))
    chunks, error = openai_stream(openai_client(served))
    assert error is None and texts(chunks) == PIECES and finishes(chunks) == ["stop"]
    chunks, error = litellm_stream(served)
    assert error is None and texts(chunks) == PIECES and finishes(chunks) == ["stop"]
    status, raw, error = raw_stream(served)
    assert status == 200 and error is None and b"[DONE]" not in raw
    assert raw.endswith(b'"finish_reason":"stop"}]}\n\n')


def test_no_finish_openai_sees_no_finish_reason_litellm_fails_or_invents_stop(serve) -> None:
    served = serve(faulted("no_finish"))
    chunks, error = openai_stream(openai_client(served))
    assert error is None and texts(chunks) == PIECES and finishes(chunks) == []
    chunks, error = litellm_stream(served)
    assert texts(chunks) == PIECES
    if LITELLM_FAILS_WITHOUT_FINISH:  # litellm >= 1.109
        assert isinstance(error, MidStreamFallbackError) and "before a finish_reason" in str(error)
        assert finishes(chunks) == []
    else:
        assert error is None and finishes(chunks) == ["stop"]
    _status, raw, _ = raw_stream(served)
    assert b'"finish_reason":"' not in raw and raw.endswith(b"data: [DONE]\n\n")


# -- faults on `sse:` transcripts ---------------------------------------------------------------


def test_a_fault_cuts_a_transcript_after_n_events(serve) -> None:
    transcript = 'data: {"n":1}\n\ndata: {"n":2}\n\ndata: {"n":3}\n\ndata: [DONE]\n'
    served = serve(
        {"match": {"model": "faulty"}, "reply": {"sse": transcript, "fault": {"kind": "disconnect", "after_chunks": 2}}}
    )
    _status, raw, error = raw_stream(served)
    assert raw == b'data: {"n":1}\n\ndata: {"n":2}\n\n' and isinstance(error, httpx.RemoteProtocolError)


# -- faults on requests that are not streamed -------------------------------------------------------


def test_non_streamed_disconnect_drops_the_connection_and_openai_retries_it(serve) -> None:
    served = serve(faulted("disconnect", 2))
    with pytest.raises(openai.APIConnectionError):
        openai_client(served, retries=1).chat.completions.create(model="faulty", messages=MESSAGES)  # type: ignore[arg-type]
    assert [e.headers.get("x-stainless-retry-count") for e in served.journal] == ["0", "1"]
    assert all(e.aborted for e in served.journal)
    with pytest.raises(litellm.InternalServerError, match="Connection error"):  # litellm's mapping of it
        litellm.completion(
            model="openai/faulty", api_base=served.base_url, api_key="t", messages=MESSAGES, num_retries=0
        )
    assert_still_serving(served)


def test_non_streamed_stall_trips_the_read_timeout(serve) -> None:
    served = serve(faulted("stall", 0, stall_ms=3000))
    with pytest.raises(openai.APITimeoutError):
        openai_client(served, read=0.5).chat.completions.create(model="faulty", messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(litellm.Timeout):
        litellm.completion(
            model="openai/faulty", api_base=served.base_url, api_key="t", messages=MESSAGES, num_retries=0, timeout=0.5
        )
    assert_still_serving(served)


@pytest.mark.parametrize("kind", ["error_event", "malformed", "no_done", "no_finish"])
def test_stream_only_faults_leave_a_non_streamed_answer_whole(serve, kind: str) -> None:
    # These faults are about SSE events; a JSON answer has none, so it is sent as if unfaulted.
    served = serve(faulted(kind, 1))
    reply = openai_client(served).chat.completions.create(model="faulty", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == TEXT and reply.choices[0].finish_reason == "stop"


# -- the bundled examples ---------------------------------------------------------------------


def test_bundled_faults_yaml_serves_each_kind(serve) -> None:
    served = serve(SCENARIOS / "faults.yaml")
    client = openai_client(served, read=0.5)
    expected: dict[str, Any] = {
        "fault-disconnect": DROPPED,
        "fault-error-event": openai.APIError,
        "fault-stall": TIMED_OUT,
        "fault-malformed": json.JSONDecodeError,
    }
    for model, error_type in expected.items():
        chunks, error = openai_stream(client, model)
        assert isinstance(error, error_type), (model, repr(error))
        assert texts(chunks), model  # each fault comes after some text
    chunks, error = openai_stream(client, "fault-no-done")
    assert error is None and finishes(chunks) == ["stop"]
    chunks, error = openai_stream(client, "fault-no-finish")
    assert error is None and texts(chunks) and finishes(chunks) == []
    assert {e.rule for e in served.journal} == {r.name for r in served.engine.router.rules}
