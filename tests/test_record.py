"""`mockllm record` on the wire: a recorder in front of an upstream mockllm on loopback, raw httpx
clients through it, then the written scenario served again. Timing (each gap as recorded, and as
replayed), faults, verbatim streams, secrets, the file's stability, the command line.

The SDKs through the recorder: tests/test_record_sdks.py.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mockllm import Engine
from mockllm.cli import main
from mockllm.heard import sse_events
from mockllm.recorder import BackgroundRecorder, Recorder
from mockllm.recording import Recording
from mockllm.server import BackgroundServer
from mockllm.template import compile_template
from mockllm.yaml_writer import dump

GAPS = [30, 60, 45]  # the upstream's scripted gaps (the last repeats)
UPSTREAM = {
    "version": 1,
    "rules": [
        {
            "name": "hello",
            "match": {"user": {"contains": "Hello"}},
            "reply": {
                "content": "Hi there, friend.",  # "Hi", " there", ",", " friend", "."
                "usage": {"prompt_tokens": 11, "completion_tokens": 5},
                "timing": {"ttft_ms": 40, "chunk_ms": GAPS},
            },
        },
        {
            "name": "cut",
            "match": {"user": {"contains": "cut"}},
            "reply": {
                "content": "one two three four five",
                "fault": {"kind": "disconnect", "after_chunks": 2},
                "timing": {"ttft_ms": 10, "chunk_ms": 30},
            },
        },
        {
            "name": "thinking",  # a stream the reader cannot say in reply keys: kept verbatim
            "match": {"user": {"contains": "think"}},
            "reply": {
                "sse": 'data: {"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}\n\n'
                'data: {"choices":[{"index":0,"delta":{"content":"Four."}}]}\n\ndata: [DONE]\n\n',
                "timing": {"ttft_ms": 20, "chunk_ms": 40},
            },
        },
        {
            "name": "oops",
            "match": {"user": {"contains": "oops"}},
            "reply": {
                "content": "one two three",
                "fault": {"kind": "error_event", "after_chunks": 2, "message": "boom"},
            },
        },
        {"name": "braces", "match": {"user": {"contains": "braces"}}, "reply": {"content": "Write {{user}} here."}},
        {
            "name": "limited",
            "match": {"user": {"contains": "limit"}},
            "replies": [
                {"error": {"status": 429, "headers": {"retry-after": "0", "x-ratelimit-remaining-requests": "0"}}},
                {"content": "ok"},
            ],
        },
    ],
}
SECRETS = ("sk-secret-123", "sk-ant-secret-456", "azure-secret-789", "AIza-goog-secret", "org-secret", "proj-secret")


@contextmanager
def recorder(
    tmp_path: Path, scenario: dict[str, Any] = UPSTREAM, time_scale: float = 1, **options: Any
) -> Iterator[tuple[str, Path]]:
    """An upstream mockllm serving `scenario` and a recorder in front of it: the recorder's root URL,
    and the file it writes."""
    engine = Engine(time_scale=time_scale)
    engine.add(scenario)
    path = tmp_path / "recording.yaml"
    with (
        BackgroundServer(engine) as upstream,
        BackgroundRecorder(Recorder(upstream.url, Recording(path, **options), log=lambda _: None)) as proxy,
    ):
        yield proxy.url, path


def chat(text: str, stream: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    if stream:
        body["stream"] = True
    return body


def timed_events(url: str, body: dict[str, Any]) -> list[tuple[float, str]]:
    """POST `body` and read the SSE events as they arrive: (ms from the request's start, data)."""
    chunks: list[tuple[float, bytes]] = []
    with httpx.Client(timeout=10) as client:
        client.get(url.rsplit("/v1", 1)[0] + "/v1/models")  # connect first: the gaps are the server's alone
        start = time.perf_counter()
        with client.stream("POST", url, json=body) as response:
            for data in response.iter_raw():
                chunks.append((time.perf_counter() - start, data))
    return [(event.at * 1000, event.data or "") for event in sse_events(chunks)]


def content_times(events: list[tuple[float, str]]) -> list[float]:
    """When each content delta of a chat stream arrived."""
    out = []
    for at, data in events:
        if data.startswith("{"):
            choices = json.loads(data).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                out.append(at)
    return out


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def rules_of(path: Path) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text())["rules"]


def replay(directory: Path, time_scale: float = 1) -> BackgroundServer:
    return BackgroundServer(Engine(directory, time_scale=time_scale))


def test_a_stream_is_recorded_with_its_gaps_and_replayed_on_them(tmp_path: Path) -> None:
    # The machine is shared (2 CPUs, other suites): a run whose threads another process held up is run
    # again, up to six times, the recording and the replay each. A recorder or a replay that gets the
    # schedule wrong fails every run.
    tries: list[str] = []
    for attempt in range(6):
        heard, problem = _record_one_stream(tmp_path / str(attempt))
        if problem is None:
            break
        tries.append(problem)
    else:
        pytest.fail("recording:\n" + "\n".join(tries))
    recorded = tmp_path / str(attempt)
    ttft = rules_of(recorded / "recording.yaml")[0]["reply"]["timing"]["ttft_ms"]
    tries = []
    for _ in range(6):
        with replay(recorded) as server:
            replayed = timed_events(f"{server.url}/v1/chat/completions", chat("Hello"))
        assert [data for _, data in replayed][-1] == "[DONE]"
        errors = [abs(a - b) for a, b in zip(gaps(content_times(replayed)), heard, strict=True)]
        # (the recorded ttft has the recorder's first connection to the upstream in it: a looser bound)
        first = abs(content_times(replayed)[0] - ttft)
        if max(errors) < 5 and first < 10:
            print(f"recorded gaps {heard} (scripted 30, 60, 45); replayed gaps off by {errors} ms, ttft by {first} ms")
            return
        tries.append(f"recorded {heard}, ttft {ttft}: replayed gaps off by {errors} ms, ttft by {first:.1f} ms")
    pytest.fail("replay:\n" + "\n".join(tries))


def _record_one_stream(tmp_path: Path) -> tuple[list[float], str | None]:
    """The recorded gaps (the last repeated to four), and None if they are the upstream's within a few ms,
    as the client saw them through the recorder too; else what was measured."""
    with recorder(tmp_path) as (url, path):
        through = timed_events(f"{url}/v1/chat/completions", chat("Hello"))
    (rule,) = rules_of(path)
    reply = rule["reply"]
    assert rule["match"] == {
        "endpoint": "chat",
        "model": "gpt-4o-mini",
        "body": {"messages": [{"role": "user", "content": "Hello"}]},
    }
    assert reply["chunks"] == ["Hi", " there", ",", " friend", "."]
    assert [data for _, data in through][-1] == "[DONE]"
    # streamed through as it came, not buffered: the client saw the upstream's gaps too
    passed_on = max(abs(a - b) for a, b in zip(gaps(content_times(through)), [30, 60, 45, 45], strict=True))
    recorded = reply["timing"]["chunk_ms"]
    heard = [*recorded, *[recorded[-1]] * (4 - len(recorded))]  # its last gap repeats: [30, 60, 45, 45]
    heard_error = max(abs(a - b) for a, b in zip(heard, [30, 60, 45, 45], strict=True))
    if passed_on < 8 and heard_error < 5 and 38 <= reply["timing"]["ttft_ms"] < 55:
        return heard, None
    return heard, f"{reply['timing']} (scripted 40 ms, then 30, 60, 45); passed on within {passed_on:.1f} ms"


def test_a_whole_answer_replays_whole_and_streamed(tmp_path: Path) -> None:
    with recorder(tmp_path, time_scale=0) as (url, path):
        answer = httpx.post(f"{url}/v1/chat/completions", json=chat("Hello", stream=False)).json()
    (rule,) = rules_of(path)
    assert rule["reply"]["content"] == "Hi there, friend."
    assert rule["reply"]["usage"] == {"prompt_tokens": 11, "completion_tokens": 5}
    with replay(tmp_path) as server:
        again = httpx.post(f"{server.url}/v1/chat/completions", json=chat("Hello", stream=False)).json()
    assert again["choices"][0]["message"] == answer["choices"][0]["message"]
    assert again["usage"] == answer["usage"]


def test_recorded_text_that_looks_like_a_placeholder_is_replayed_as_it_came(tmp_path: Path) -> None:
    with recorder(tmp_path, time_scale=0) as (url, path):
        answer = httpx.post(f"{url}/v1/chat/completions", json=chat("braces", stream=False)).json()
    assert answer["choices"][0]["message"]["content"] == "Write {user} here."
    assert rules_of(path)[0]["reply"]["content"] == "Write {{user}} here."  # the escape of the text {user}
    with replay(tmp_path) as server:
        again = httpx.post(f"{server.url}/v1/chat/completions", json=chat("braces", stream=False)).json()
    assert again["choices"][0]["message"]["content"] == "Write {user} here."


def test_the_same_request_twice_is_a_sequence_and_an_error_keeps_its_headers(tmp_path: Path) -> None:
    with recorder(tmp_path, time_scale=0) as (url, path):
        first = httpx.post(f"{url}/v1/chat/completions", json=chat("limit", stream=False))
        second = httpx.post(f"{url}/v1/chat/completions", json=chat("limit", stream=False))
    assert [first.status_code, second.status_code] == [429, 200]
    (rule,) = rules_of(path)
    error = rule["replies"][0]["error"]
    assert error["status"] == 429 and error["code"] == "rate_limit_exceeded"
    assert error["headers"] == {"retry-after": "0", "x-ratelimit-remaining-requests": "0"}
    assert rule["replies"][1]["content"] == "ok"
    with replay(tmp_path) as server:
        replayed = [httpx.post(f"{server.url}/v1/chat/completions", json=chat("limit", stream=False)) for _ in range(2)]
    assert [r.status_code for r in replayed] == [429, 200]
    assert replayed[0].json()["error"] == first.json()["error"]
    assert replayed[0].headers["x-ratelimit-remaining-requests"] == "0"
    assert replayed[1].json()["choices"][0]["message"]["content"] == "ok"


def test_a_mid_stream_disconnect_is_passed_on_recorded_and_replayed(tmp_path: Path) -> None:
    def read(url: str) -> tuple[list[str], type[Exception] | None]:
        texts: list[str] = []
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat("cut"), timeout=10) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {"):
                        texts.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
        except httpx.HTTPError as exc:
            return texts, type(exc)
        return texts, None

    with recorder(tmp_path) as (url, path):
        through = read(url)
    assert through == (["", "one", " two"], httpx.RemoteProtocolError)
    reply = rules_of(path)[0]["reply"]
    assert reply["chunks"] == ["one", " two"] and reply["fault"] == {"kind": "disconnect", "after_chunks": 2}
    with replay(tmp_path, time_scale=0) as server:
        assert read(server.url) == through


def _said(events: list[tuple[float, str]]) -> list[Any]:
    """What a stream says, but its ids: each event's text deltas, tool-call parts and errors."""
    out: list[Any] = []
    for _, data in events:
        item = json.loads(data) if data.startswith("{") else data
        if isinstance(item, dict):
            choices = item.get("choices") or [{}]
            delta = item.get("delta") or choices[0].get("delta") or {}
            text = delta if isinstance(delta, str) else delta.get("content") or delta.get("text")
            out.append((item.get("type"), text, item.get("error")))
        else:
            out.append(item)
    return out


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", chat("oops")),
        ("/v1/responses", {"model": "gpt-4o", "input": "oops", "stream": True}),
        (
            "/v1/messages",
            {"model": "claude-x", "max_tokens": 9, "messages": [{"role": "user", "content": "oops"}], "stream": True},
        ),
    ],
    ids=["chat", "responses", "anthropic"],
)
def test_an_error_event_mid_stream_is_recorded_as_a_fault(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    with recorder(tmp_path, time_scale=0) as (url, written):
        through = timed_events(url + path, body)
    reply = rules_of(written)[0]["reply"]
    assert reply["fault"] == {"kind": "error_event", "after_chunks": 2, "message": "boom"}
    assert reply["chunks"] == ["one", " two"]
    with replay(tmp_path, time_scale=0) as server:
        replayed = timed_events(server.url + path, body)
    assert _said(replayed) == _said(through)
    assert "boom" in json.dumps(_said(replayed))


def test_a_stream_it_cannot_read_is_kept_verbatim(tmp_path: Path) -> None:
    with recorder(tmp_path) as (url, path):
        through = timed_events(f"{url}/v1/chat/completions", chat("think"))
    (rule,) = rules_of(path)
    assert rule["match"]["stream"] is True and rule["match"]["endpoint"] == "chat"
    assert rule["reply"]["sse"].count("data: ") == 3 and "reasoning_content" in rule["reply"]["sse"]
    recorded = rule["reply"]["timing"]["chunk_ms"]
    recorded = [*recorded, recorded[-1]][:2] if isinstance(recorded, list) else [recorded] * 2
    assert all(20 < gap < 80 for gap in recorded), recorded  # 40 ms (the exact check: the test of gaps above)
    with replay(tmp_path) as server:
        replayed = timed_events(f"{server.url}/v1/chat/completions", chat("think"))
    assert [data for _, data in replayed] == [data for _, data in through]
    # on the recorded schedule: never early, and (however loaded the machine) not much late
    due = list(itertools.accumulate([rule["reply"]["timing"].get("ttft_ms", 0), *recorded]))
    late = [at - wanted for (at, _), wanted in zip(replayed, due, strict=True)]
    assert all(-1 < ms < 60 for ms in late), (late, due)


def test_no_secret_reaches_the_file(tmp_path: Path) -> None:
    headers = {
        "authorization": "Bearer sk-secret-123",
        "x-api-key": "sk-ant-secret-456",
        "api-key": "azure-secret-789",
        "x-goog-api-key": "AIza-goog-secret",
        "openai-organization": "org-secret",
        "openai-project": "proj-secret",
        "cookie": "session=cookie-secret-000",
    }
    told = chat("Hello, my password is hunter2 and my key sk-secret-123", stream=False)
    gemini = {"contents": [{"role": "user", "parts": [{"text": "Hello from AIza-query-secret"}]}]}
    with recorder(tmp_path, time_scale=0, redact=[re.compile(r"hunter\d")]) as (url, path):
        assert httpx.post(f"{url}/v1/chat/completions", json=told, headers=headers).status_code == 200
        answer = httpx.post(
            f"{url}/v1beta/models/gemini-2.5-flash:generateContent?key=AIza-query-secret", json=gemini, headers=headers
        )
        assert answer.status_code == 200
    text = path.read_text()
    for secret in (*SECRETS, "cookie-secret-000", "hunter2", "AIza-query-secret"):
        assert secret not in text
    assert "my password is [redacted] and my key [redacted]" in text
    assert main(["validate", str(tmp_path)]) == 0


def test_a_re_recording_of_the_same_traffic_gives_the_same_file(tmp_path: Path) -> None:
    def record(where: Path, **options: Any) -> str:
        with recorder(where, time_scale=0.2, **options) as (url, path):
            for text in ("Hello", "limit", "limit", "think"):
                httpx.post(f"{url}/v1/chat/completions", json=chat(text), timeout=10).read()
            httpx.post(f"{url}/v1/responses", json={"model": "gpt-4o", "input": "Hello"}, timeout=10)
        return path.read_text()

    coarse = [record(tmp_path / name, round_ms=1000) for name in ("a", "b")]
    assert coarse[0] == coarse[1]
    fine = record(tmp_path / "c")
    changed = [line for line in _diff(coarse[0], fine) if not re.search("timing|ttft_ms|chunk_ms", line)]
    assert changed == [], "\n".join(_diff(coarse[0], fine))  # at the default 0.1 ms, only the timing lines differ
    assert main(["validate", str(tmp_path / "c")]) == 0


def _diff(a: str, b: str) -> list[str]:
    import difflib

    return [
        line
        for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_exchanges_in_parallel_each_become_a_rule(tmp_path: Path) -> None:
    texts = [f"Hello {n}" for n in range(6)]
    with recorder(tmp_path, time_scale=0.2) as (url, path), ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda text: httpx.post(f"{url}/v1/chat/completions", json=chat(text), timeout=10), texts)
        )
    assert all(answer.status_code == 200 and answer.text.endswith("data: [DONE]\n\n") for answer in answers)
    rules = rules_of(path)
    assert sorted(rule["match"]["body"]["messages"][0]["content"] for rule in rules) == texts
    assert all(rule["reply"]["chunks"] == ["Hi", " there", ",", " friend", "."] for rule in rules)
    assert [p.name for p in tmp_path.iterdir()] == ["recording.yaml"]  # no temporary file left


def test_an_upstream_path_is_not_repeated(tmp_path: Path) -> None:
    recording = Recording(tmp_path / "r.yaml")
    proxy = Recorder("https://api.example.com/v1", recording)
    assert proxy.target("/v1/chat/completions") == "https://api.example.com/v1/chat/completions"
    assert proxy.target("/chat/completions") == "https://api.example.com/v1/chat/completions"
    assert Recorder("http://h:1/ns/t7", recording).target("/v1/messages") == "http://h:1/ns/t7/v1/messages"
    with pytest.raises(ValueError, match="http"):
        Recorder("api.example.com", recording)


def test_the_record_command(tmp_path: Path) -> None:
    engine = Engine(time_scale=0)
    engine.add(UPSTREAM)
    with BackgroundServer(engine) as upstream:
        command = [sys.executable, "-m", "mockllm", "record", "--upstream", upstream.url, "--out", str(tmp_path)]
        command += ["--port", "0", "--name", "cassette", "--ignore", "max_tokens", "--keep-ids"]
        process = subprocess.Popen(
            command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        try:
            assert process.stderr is not None
            lines = []
            while not any("OPENAI_BASE_URL=" in line for line in lines):
                line = process.stderr.readline()
                assert line, f"the recorder ended: {lines}"
                lines.append(line)
            base = re.search(r"OPENAI_BASE_URL=(\S+)", lines[-1])[1]  # type: ignore[index]
            answer = httpx.post(f"{base}/chat/completions", json=chat("Hello", stream=False, max_tokens=50), timeout=10)
            assert answer.status_code == 200
            assert httpx.get(f"{base}/models", timeout=10).status_code == 200  # passed on, not recorded
        finally:
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    (rule,) = rules_of(tmp_path / "cassette.yaml")
    assert "max_tokens" not in rule["match"]["body"] and rule["reply"]["model"] == "gpt-4o-mini"
    assert "recorded chat gpt-4o-mini 200" in err and "not recorded (not an API call)" in err
    assert main(["validate", str(tmp_path)]) == 0


def test_the_record_command_refuses_a_bad_upstream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--upstream", "ftp://x", "--out", str(tmp_path)]) == 2
    assert "expected an http(s) URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["record", "--upstream", "http://x", "--out", str(tmp_path), "--redact", "("])


# -- the file's text ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_json)
def test_the_writer_gives_back_what_it_was_given(data: Any) -> None:
    assert yaml.safe_load(dump({"value": data})) == {"value": data}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["{", "}", "user", "model", "x", " ", "{user}", "{{", "}}"]), max_size=12).map("".join))
def test_recorded_text_is_sent_as_it_was_recorded(text: str) -> None:
    from mockllm.template import escape  # what the recorder writes text with

    template = compile_template(escape(text))
    assert not template.dynamic and template.parts[0] == text
