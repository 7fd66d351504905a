"""In-process mode behaves like the server: the schedule, drops, stalls; and it opens no socket."""

from __future__ import annotations

import importlib.util
import socket
from typing import Any

import httpx
import openai
import pytest
import respx
from mockllm_pytest import MockLLM
from plugin_helpers import in_both_modes, user

from mockllm.server import BackgroundServer


def _errors(name: str) -> tuple[type[BaseException], ...]:
    """A raw transport error (openai < 3), or the SDK's wrapper of it (openai >= 3)."""
    wrapped = openai.APITimeoutError if name == "ReadTimeout" else openai.APIConnectionError
    found: list[type[BaseException]] = [wrapped, getattr(httpx, name)]
    if importlib.util.find_spec("httpx2") is not None:
        import httpx2

        found.append(getattr(httpx2, name))
    return tuple(found)


def _stream(mockllm: MockLLM, text: str, **client: Any) -> list[str]:
    got: list[str] = []
    with mockllm.client(max_retries=0, **client).chat.completions.create(
        model="gpt-4o-mini", messages=user(text), stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    return got


@in_both_modes("scenarios/timed.yaml")
def test_streams_keep_the_schedule(mockllm: MockLLM, mode: str) -> None:
    assert "".join(_stream(mockllm, "timed")) == "one two three"
    sent = mockllm.requests.last.sent
    # ttft 60 ms, then 40 ms per chunk: the role chunk and "one" at 60 ms, "two" at 100, "three",
    # the finish chunk and [DONE] at 140. Each write leaves at its deadline or later, never early
    # (2 ms: the event loop's clock resolution; no upper bounds: the machine may be busy).
    due = [0.06, 0.06, 0.10, 0.14, 0.14, 0.14]
    assert len(sent) == len(due)
    assert all(s >= d - 0.002 for s, d in zip(sent, due, strict=True)), (sent, due)
    # Not sent in one go at the end: the first token left before the third was due. (A gap between the
    # two writes can be shorter than the scheduled 80 ms when the first left late on a busy machine.)
    assert sent[0] < due[3] - 0.002, sent


@in_both_modes("scenarios/timed.yaml")
def test_a_dropped_stream_raises_mid_body(mockllm: MockLLM, mode: str) -> None:
    got: list[str] = []
    with (
        pytest.raises(_errors("RemoteProtocolError")),
        mockllm.client(max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=user("drop"), stream=True
        ) as stream,
    ):
        got.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "".join(got) == "one two"
    assert mockllm.requests.last.aborted


@in_both_modes("scenarios/timed.yaml")
def test_a_stall_longer_than_the_read_timeout_times_out(mockllm: MockLLM, mode: str) -> None:
    got: list[str] = []
    with (
        pytest.raises(_errors("ReadTimeout")),
        mockllm.client(max_retries=0, timeout=0.4).chat.completions.create(
            model="gpt-4o-mini", messages=user("stall"), stream=True
        ) as stream,
    ):
        got.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "".join(got) == "one two"


@pytest.mark.mockllm("scenarios/basic.yaml", mode="inprocess")
def test_inprocess_opens_no_socket(mockllm: MockLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError(f"in-process mode opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    assert "".join(_stream(mockllm, "story")).startswith("Once upon a time")
    client = openai.OpenAI(base_url=mockllm.base_url, api_key="k", max_retries=0)  # built by app code, no transport
    assert client.chat.completions.create(model="m", messages=user("1+1")).choices[0].message.content == "Two."
    client.close()


@pytest.mark.mockllm("scenarios/basic.yaml", mode="inprocess")
def test_other_hosts_pass_through(mockllm: MockLLM, mockllm_server: BackgroundServer) -> None:
    # A real request on loopback while in-process mode intercepts its own host only.
    response = httpx.get(f"{mockllm_server.url}/v1/models")
    assert response.status_code == 200 and response.json()["object"] == "list"
    assert not mockllm.requests


@pytest.mark.mockllm("scenarios/basic.yaml", mode="inprocess")
def test_a_tests_own_respx_mock_still_answers_its_routes(mockllm: MockLLM) -> None:
    with respx.mock(assert_all_called=True) as mine:
        mine.get("https://api.example.com/hello").respond(200, text="from my respx route")
        assert httpx.get("https://api.example.com/hello").text == "from my respx route"
        assert "".join(_stream(mockllm, "1+1")) == "Two."
        with httpx.Client() as client:  # a plain httpx client reaches the fake too
            assert client.get(f"{mockllm.base_url}/models").json()["object"] == "list"
    assert [e.rule for e in mockllm.requests] == ["one-plus-one"]  # the journal keeps chat requests
