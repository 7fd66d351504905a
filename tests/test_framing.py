"""The bytes of a stream: `framing:` (line endings, data prefix, split and coalesced writes,
keep-alive comments, the last blank line) and verbatim `sse:` transcripts.

Network writes are observed where they cannot be merged: each ASGI write becomes one HTTP/1.1
chunk, so a raw socket client that decodes the chunked body sees every write's boundary, and
httpx's iter_raw() never yields a piece that spans two of them (it is what the SDKs' SSE
decoders read).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import litellm
import openai
import pytest
from helpers import LITELLM_FAILS_WITHOUT_FINISH
from helpers import http_chunks as raw_http_chunks
from litellm.exceptions import MidStreamFallbackError

from mockllm import Engine

MESSAGES: Any = [{"role": "user", "content": "Hi"}]
FIVE = "one two three four five"
BODY = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_obfuscation": False}}
EOL = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def rule(reply: dict[str, Any], **scenario: Any) -> dict[str, Any]:
    return {"rules": [{"name": "framed", "match": {"model": "m"}, "reply": reply}], **scenario}


def raw_body(served: Any) -> bytes:
    response = httpx.post(f"{served.base_url}/chat/completions", json=BODY, timeout=10)
    assert response.status_code == 200
    return response.content


def http_chunks(served: Any) -> list[bytes]:
    """The chat stream's HTTP/1.1 chunks, one per network write."""
    return raw_http_chunks(f"{served.base_url}/chat/completions", BODY)


def iter_raw_pieces(served: Any) -> list[bytes]:
    with httpx.stream("POST", f"{served.base_url}/chat/completions", json=BODY, timeout=10) as response:
        return list(response.iter_raw())


def openai_text(served: Any) -> tuple[str, list[str]]:
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def litellm_text(served: Any) -> tuple[str, list[str]]:
    response = litellm.completion(
        model="openai/m", api_base=served.base_url, api_key="test", messages=MESSAGES, stream=True, num_retries=0
    )
    chunks = list(response)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def assert_clients_read(served: Any, text: str = FIVE) -> None:
    assert openai_text(served) == (text, ["stop"])
    assert litellm_text(served) == (text, ["stop"])


def reference(reply: dict[str, Any]) -> bytes:
    """The same rule's body without framing (same rule name and index, so the same ids)."""
    engine = Engine(time_scale=0)
    engine.add(rule({k: v for k, v in reply.items() if k != "framing"}))
    answer = engine.chat(json.dumps(BODY).encode(), {})
    assert answer.writes is not None
    return b"".join(w.data for w in answer.writes)


# -- line endings, prefix ------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["lf", "crlf", "cr"])
def test_line_endings(serve, ending: str) -> None:
    served = serve(rule({"content": FIVE, "framing": {"line_ending": ending}}))
    raw = raw_body(served)
    eol = EOL[ending]
    events = raw.split(eol * 2)
    assert events[-1] == b"" and events[-2] == b"data: [DONE]" and len(events) == 1 + 8
    assert all(e.startswith(b"data: ") for e in events[:-1])
    if ending == "crlf":
        assert raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    if ending == "cr":
        assert b"\n" not in raw
    assert raw.replace(eol, b"\n") == reference({"content": FIVE})
    assert_clients_read(served)


def test_data_prefix_without_a_space(serve) -> None:
    served = serve(rule({"content": FIVE, "framing": {"data_prefix": "data:"}}))
    raw = raw_body(served)
    assert raw.startswith(b'data:{"id":"chatcmpl-') and raw.endswith(b"\n\ndata:[DONE]\n\n")
    assert b"data: " not in raw
    assert_clients_read(served)


# -- cutting and packing writes -----------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 7, 64])
def test_split_cuts_every_write_after_n_bytes(serve, size: int) -> None:
    reply = {"content": FIVE, "framing": {"split": size}}
    served = serve(rule(reply))
    chunks = http_chunks(served)
    assert max(len(c) for c in chunks) == size
    assert b"".join(chunks) == reference(reply)
    assert len(served.journal.last.sent) == len(chunks)  # one recorded write per chunk
    assert all(len(p) <= size for p in iter_raw_pieces(served))  # the client's reads see the cuts
    assert_clients_read(served)


def test_split_cuts_inside_multi_byte_characters(serve) -> None:
    text = "東京 🙂 ok"
    served = serve(rule({"content": text, "framing": {"split": 3}}))
    chunks = http_chunks(served)
    halves = 0
    for chunk in chunks:
        try:
            chunk.decode()
        except UnicodeDecodeError:
            halves += 1  # this write ends or starts inside a character
    assert halves > 0
    assert_clients_read(served, text)


def test_writes_leave_with_tcp_nodelay(serve, server) -> None:
    # Each write goes out as its own segment, not held back by Nagle's algorithm.
    served = serve(rule({"content": FIVE, "timing": {"ttft_ms": 300}}), time_scale=1)
    with httpx.stream("POST", f"{served.base_url}/chat/completions", json=BODY, timeout=10) as response:
        connections = list(server._server.server_state.connections)  # uvicorn's open connections
        sockets = [c.transport.get_extra_info("socket") for c in connections]
        assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)
        response.read()


def test_coalesce_packs_n_events_per_write(serve) -> None:
    reply = {"content": FIVE, "framing": {"coalesce": 3}}
    served = serve(rule(reply))
    chunks = http_chunks(served)
    assert [c.count(b"\n\n") for c in chunks] == [3, 3, 2]  # role, 5 contents, finish, [DONE]
    assert b"".join(chunks) == reference(reply)
    assert_clients_read(served)


def test_coalesce_then_split(serve) -> None:
    reply = {"content": FIVE, "framing": {"coalesce": 8, "split": 100}}
    served = serve(rule(reply))
    chunks = http_chunks(served)
    assert all(len(c) == 100 for c in chunks[:-1]) and b"".join(chunks) == reference(reply)


# -- keep-alive comments --------------------------------------------------------------------------


def test_keepalive_comments_at_start_and_during_waits() -> None:
    engine = Engine(time_scale=1)
    engine.add(
        rule(
            {
                "content": FIVE,
                "timing": {"ttft_ms": 250, "chunk_ms": 30},
                "framing": {"keepalive": {"every_ms": 100, "text": "OPENROUTER PROCESSING"}},
            }
        )
    )
    answer = engine.chat(json.dumps(BODY).encode(), {})
    assert answer.writes is not None
    writes = list(answer.writes)
    comments = [round(w.at, 6) for w in writes if w.data == b": OPENROUTER PROCESSING\n\n"]
    assert comments == [0.0, 0.1, 0.2]  # at once, then every 100 ms until the first chunk at 250 ms
    assert writes[3].data.startswith(b"data: {") and writes[3].at == pytest.approx(0.25)
    assert [w.at for w in writes] == sorted(w.at for w in writes)


def test_keepalive_is_not_held_back_by_coalesce() -> None:
    engine = Engine(time_scale=1)
    framing = {"coalesce": 2, "keepalive": {"every_ms": 100}}
    engine.add(rule({"content": FIVE, "timing": {"ttft_ms": 350, "chunk_ms": 100}, "framing": framing}))
    answer = engine.chat(json.dumps(BODY).encode(), {})
    assert answer.writes is not None
    comments = [round(w.at, 6) for w in answer.writes if w.data == b": keep-alive\n\n"]
    assert comments[:4] == [0.0, 0.1, 0.2, 0.3]  # alone, on time, not packed with later events


def test_keepalive_comments_go_on_during_a_stall(serve) -> None:
    # As a proxy in front of a stalled model does: the client's read timeout never fires.
    reply = {"content": FIVE, "fault": {"kind": "stall", "after_chunks": 1, "stall_ms": 350}}
    served = serve(rule({**reply, "framing": {"keepalive": {"every_ms": 100}}}))
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0, timeout=httpx.Timeout(5, read=0.2))
    dropped = pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError))  # at 350 ms, no timeout
    with dropped, client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        for _ in stream:
            pass
    chunks = http_chunks(served)
    assert chunks[-3:] == [b": keep-alive\n\n"] * 3  # at 100, 200 and 300 ms, then the connection drops


def test_keepalive_on_the_wire(serve) -> None:
    served = serve(
        rule(
            {
                "content": FIVE,
                "timing": {"ttft_ms": 250},
                "framing": {"keepalive": {"every_ms": 100, "text": "OPENROUTER PROCESSING"}},
            }
        ),
        time_scale=1,
    )
    chunks = http_chunks(served)
    assert chunks[:3] == [b": OPENROUTER PROCESSING\n\n"] * 3 and chunks[3].startswith(b"data: {")
    sent = served.journal.last.sent
    assert sent[1] >= 0.099 and sent[2] >= 0.199 and sent[3] >= 0.249  # never early
    assert_clients_read(served)  # both SDKs skip comment lines


# -- the last blank line ------------------------------------------------------------------------------


def test_without_the_trailing_blank_line_the_body_ends_with_one_line_ending(serve) -> None:
    served = serve(rule({"content": FIVE, "framing": {"trailing_blank_line": False, "line_ending": "crlf"}}))
    assert raw_body(served).endswith(b"\r\n\r\ndata: [DONE]\r\n")
    assert_clients_read(served)  # a lost [DONE] changes nothing: a missing one ends quietly


def test_openai_drops_a_last_event_without_its_blank_line(serve) -> None:
    # no_done makes the finish chunk the last event; without its blank line the decoder never
    # dispatches it: openai sees no finish_reason; litellm fails (>= 1.109) or invents "stop".
    served = serve(rule({"content": FIVE, "fault": {"kind": "no_done"}, "framing": {"trailing_blank_line": False}}))
    assert raw_body(served).endswith(b'"finish_reason":"stop"}]}\n')
    assert openai_text(served) == (FIVE, [])
    if LITELLM_FAILS_WITHOUT_FINISH:
        with pytest.raises(MidStreamFallbackError, match="before a finish_reason"):
            litellm_text(served)
    else:
        assert litellm_text(served) == (FIVE, ["stop"])


def test_framing_merges_with_defaults_key_by_key(serve) -> None:
    served = serve(
        {
            "defaults": {"framing": {"line_ending": "crlf", "data_prefix": "data:"}},
            "rules": [{"match": {"model": "m"}, "reply": {"content": FIVE, "framing": {"split": 5}}}],
        }
    )
    chunks = http_chunks(served)
    assert max(len(c) for c in chunks) == 5 and b"".join(chunks).endswith(b"data:[DONE]\r\n\r\n")


# -- sse: transcripts ---------------------------------------------------------------------------------

TRANSCRIPT = (
    ": captured from a proxy\n\n"
    'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    '[{"index":0,"delta":{"role":"assistant","content":"Hé"},"finish_reason":null}]}\n\n'
    'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    '[{"index":0,"delta":{"content":"llo 🙂"},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)


def test_a_transcript_is_replayed_byte_for_byte(serve) -> None:
    served = serve(rule({"sse": TRANSCRIPT}))
    assert raw_body(served) == TRANSCRIPT.encode()
    assert openai_text(served) == ("Héllo 🙂", ["stop"])
    assert litellm_text(served) == ("Héllo 🙂", ["stop"])


def test_a_transcript_takes_its_timing_per_event(serve) -> None:
    reply = {"sse": TRANSCRIPT, "timing": {"ttft_ms": 100, "chunk_ms": 100}}
    engine = Engine(time_scale=1)
    engine.add(rule(reply))
    answer = engine.chat(json.dumps(BODY).encode(), {})
    assert answer.writes is not None
    assert [round(w.at, 6) for w in answer.writes] == [0.1, 0.2, 0.3, 0.4]  # comment, 2 chunks, [DONE]
    served = serve(rule(reply), time_scale=1)
    assert raw_body(served) == TRANSCRIPT.encode()
    sent = served.journal.last.sent
    assert all(s >= due - 0.001 for s, due in zip(sent, [0.1, 0.2, 0.3, 0.4], strict=True))


@pytest.mark.parametrize("indicator", ["|", "|-", "|+"])
def test_yaml_block_chomping_never_loses_the_last_blank_line(serve, tmp_path: Path, indicator: str) -> None:
    # `|` keeps one final newline, `|-` none, `|+` all: the last event gets its blank line back
    # in every case; only `framing: {trailing_blank_line: false}` removes it.
    events = ['data: {"choices":[{"index":0,"delta":{"content":"a"}}]}', "", "data: [DONE]", "", ""]
    block = "\n".join(f"        {line}" if line else "" for line in events)
    for trailing, ending in ((True, b"data: [DONE]\n\n"), (False, b"data: [DONE]\n")):
        path = tmp_path / f"chomp-{trailing}.yaml"
        path.write_text(
            "version: 1\nrules:\n  - match: {model: m}\n    reply:\n"
            f"      framing: {{trailing_blank_line: {str(trailing).lower()}}}\n"
            f"      sse: {indicator}\n{block}\n"
        )
        raw = raw_body(serve(path))
        assert raw.endswith(ending) and not raw.endswith(ending + b"\n")
        assert raw.startswith(b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: [DONE]')


def test_a_transcript_is_normalised_to_lf_then_framed(serve) -> None:
    # YAML block scalars carry only LF; a quoted CRLF transcript is read the same way, and the
    # wire's line endings come from framing.line_ending.
    crlf = TRANSCRIPT.replace("\n", "\r\n")
    served = serve(rule({"sse": crlf}))
    assert raw_body(served) == TRANSCRIPT.encode()
    served = serve(rule({"sse": TRANSCRIPT, "framing": {"line_ending": "crlf", "split": 10}}))
    assert raw_body(served) == crlf.encode()
    assert openai_text(served) == ("Héllo 🙂", ["stop"])
