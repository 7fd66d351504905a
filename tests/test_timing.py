"""Reply timing: ttft_ms, chunk_ms (number or list), jitter_ms, total_ms, presets, defaults,
and the time scale (server-wide, per scenario, from the CLI).

Planned schedules are checked exactly through Engine.chat (the offsets each write is due at);
what a client and the journal see is checked against the schedule with lower bounds only (and
loose spreads), since the machine may be loaded. Fidelity in milliseconds is measured in bench/.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockllm import PRESETS, Engine

MESSAGES: Any = [{"role": "user", "content": "Hi"}]
FIVE = "one two three four five"  # five content chunks


def request(model: str = "m", stream: bool = True) -> bytes:
    return json.dumps({"model": model, "messages": MESSAGES, "stream": stream}).encode()


def planned(engine: Engine, model: str = "m") -> list[float]:
    """When each data event of the next streamed answer is due, in seconds from arrival."""
    answer = engine.chat(request(model), {})
    assert answer.writes is not None
    due = []
    for write in answer.writes:
        if write.data.startswith(b"data: {"):
            choices = json.loads(write.data[6:])["choices"]
            if choices and choices[0]["delta"].get("content"):
                due.append(write.at)
    return due


def engine_with(reply: dict[str, Any], *, seed: int = 0, server_scale: float = 1.0, **scenario: Any) -> Engine:
    """An Engine (the server's time scale) with one rule for model "m"; `scenario` adds top-level keys."""
    engine = Engine(seed=seed, time_scale=server_scale)
    engine.add({"rules": [{"match": {"model": "m"}, "reply": reply}], **scenario})
    return engine


def arrivals(base_url: str, model: str = "m") -> tuple[list[float], list[dict[str, Any]]]:
    """Seconds from sending the request to each data event's arrival, and the events."""
    body = {"model": model, "messages": MESSAGES, "stream": True}
    times: list[float] = []
    chunks: list[dict[str, Any]] = []
    started = time.monotonic()
    with httpx.stream("POST", f"{base_url}/chat/completions", json=body, timeout=10) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                times.append(time.monotonic() - started)
                chunks.append(json.loads(line[6:]))
    return times, chunks


def content_times(times: list[float], chunks: list[dict[str, Any]]) -> list[float]:
    return [t for t, c in zip(times, chunks, strict=True) if c["choices"] and c["choices"][0]["delta"].get("content")]


def near(values: list[float], expected: list[float]) -> bool:
    return len(values) == len(expected) and all(abs(a - b) < 1e-9 for a, b in zip(values, expected, strict=True))


# -- schedules as planned ----------------------------------------------------------------------


def test_ttft_and_a_fixed_gap() -> None:
    engine = engine_with({"content": FIVE, "timing": {"ttft_ms": 200, "chunk_ms": 50}})
    assert near(planned(engine), [0.2, 0.25, 0.3, 0.35, 0.4])


def test_a_list_of_gaps_repeats_its_last_value() -> None:
    engine = engine_with({"content": FIVE, "timing": {"ttft_ms": 100, "chunk_ms": [10, 50]}})
    assert near(planned(engine), [0.1, 0.11, 0.16, 0.21, 0.26])


def test_total_ms_spreads_the_chunks_evenly_after_ttft() -> None:
    engine = engine_with({"content": FIVE, "timing": {"ttft_ms": 100, "total_ms": 500}})
    assert near(planned(engine), [0.1, 0.2, 0.3, 0.4, 0.5])


def test_role_finish_and_done_go_with_the_first_and_last_content_chunks() -> None:
    engine = engine_with({"content": FIVE, "timing": {"ttft_ms": 200, "chunk_ms": 50}})
    answer = engine.chat(request(), {})
    assert answer.writes is not None
    writes = list(answer.writes)
    assert b'"role":"assistant"' in writes[0].data and writes[0].at == pytest.approx(0.2)
    assert writes[-1].data == b"data: [DONE]\n\n" and writes[-1].at == pytest.approx(0.4)
    assert b'"finish_reason":"stop"' in writes[-2].data and writes[-2].at == pytest.approx(0.4)


def test_jitter_is_seeded_same_seed_same_schedule() -> None:
    reply = {"content": FIVE, "timing": {"ttft_ms": 100, "chunk_ms": 20, "jitter_ms": 8}}
    first = planned(engine_with(reply, seed=7))
    assert first == planned(engine_with(reply, seed=7))
    assert first != planned(engine_with(reply, seed=8))
    assert first != [0.1, 0.12, 0.14, 0.16, 0.18]  # it does wobble
    assert 0.092 <= first[0] <= 0.108
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert all(0.012 - 1e-9 <= g <= 0.028 + 1e-9 for g in gaps)


def test_jitter_differs_from_call_to_call_but_replays_after_reset() -> None:
    engine = engine_with({"content": FIVE, "timing": {"ttft_ms": 100, "chunk_ms": 20, "jitter_ms": 8}}, seed=3)
    first, second = planned(engine), planned(engine)
    assert first != second
    engine.reset()
    assert planned(engine) == first


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_sets_ttft_and_gaps(name: str) -> None:
    preset = PRESETS[name]
    times = planned(engine_with({"content": FIVE, "timing": {"preset": name}}))
    ttft, gap, jitter = preset["ttft_ms"] / 1000, preset["chunk_ms"] / 1000, preset["jitter_ms"] / 1000
    assert abs(times[0] - ttft) <= jitter + 1e-9
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(max(gap - 2 * jitter, 0) - 1e-9 <= g <= gap + 2 * jitter + 1e-9 for g in gaps)


def test_the_gpt_4o_mini_preset_is_realistic() -> None:
    # The seed notebook's gpt-4o-mini: a few hundred ms to the first token, then 10-20 ms gaps.
    preset = PRESETS["gpt-4o-mini"]
    assert 100 <= preset["ttft_ms"] <= 1000 and 10 <= preset["chunk_ms"] <= 20


def test_explicit_keys_override_the_preset() -> None:
    times = planned(
        engine_with({"content": FIVE, "timing": {"preset": "gpt-4o-mini", "chunk_ms": 100, "jitter_ms": 0}})
    )
    assert near(times, [0.3, 0.4, 0.5, 0.6, 0.7])


def test_defaults_timing_merges_key_by_key() -> None:
    engine = Engine(time_scale=1)
    engine.add(
        {
            "defaults": {"timing": {"ttft_ms": 200, "chunk_ms": 30}},
            "rules": [
                {"match": {"model": "m"}, "reply": {"content": FIVE, "timing": {"chunk_ms": 10}}},
                {"match": {"model": "total"}, "reply": {"content": FIVE, "timing": {"total_ms": 600}}},
                {"match": {"model": "inherit"}, "reply": {"content": FIVE}},
            ],
        }
    )
    assert near(planned(engine, "m"), [0.2, 0.21, 0.22, 0.23, 0.24])  # ttft from defaults, own gap
    assert near(planned(engine, "total"), [0.2, 0.3, 0.4, 0.5, 0.6])  # total_ms replaces the defaults' gap
    assert near(planned(engine, "inherit"), [0.2, 0.23, 0.26, 0.29, 0.32])


def test_server_time_scale_multiplies_the_schedule() -> None:
    reply = {"content": FIVE, "timing": {"ttft_ms": 200, "chunk_ms": 50}}
    assert near(planned(engine_with(reply, server_scale=0.1)), [0.02, 0.025, 0.03, 0.035, 0.04])
    assert planned(engine_with(reply, server_scale=0)) == [0.0] * 5


def test_a_scenario_time_scale_wins_over_the_server() -> None:
    reply = {"content": FIVE, "timing": {"ttft_ms": 200, "chunk_ms": 50}}
    assert near(planned(engine_with(reply, server_scale=0, time_scale=0.5)), [0.1, 0.125, 0.15, 0.175, 0.2])
    assert planned(engine_with(reply, server_scale=1, time_scale=0)) == [0.0] * 5


# -- what a client sees ------------------------------------------------------------------------


def test_the_first_content_chunk_waits_ttft(serve) -> None:
    served = serve({"match": {"model": "m"}, "reply": {"content": FIVE, "timing": {"ttft_ms": 300}}}, time_scale=1)
    times, _ = arrivals(served.base_url)
    assert len(times) == 7  # the role chunk, five tokens, the finish chunk ([DONE] is no JSON event)
    # With no chunk_ms every event is due at ttft: none before it (2 ms: clock resolution), and all
    # together (written back to back; 200 ms of slack for a loaded machine, far below a real gap).
    assert min(times) >= 0.3 - 0.002 and max(times) - min(times) < 0.2, times


def test_chunks_are_never_early(serve) -> None:
    served = serve(
        {"match": {"model": "m"}, "reply": {"content": FIVE, "timing": {"ttft_ms": 50, "chunk_ms": [20, 60]}}},
        time_scale=1,
    )
    times, chunks = arrivals(served.base_url)
    content = content_times(times, chunks)
    due = [0.05, 0.07, 0.13, 0.19, 0.25]
    assert all(t >= d - 0.005 for t, d in zip(content, due, strict=True)), (content, due)
    sent = served.journal.last.sent  # server side: seconds from arrival of each write
    # every write: the role chunk with the first token, the finish chunk and [DONE] with the last
    writes_due = [0.05, *due, 0.25, 0.25]
    assert len(sent) == len(writes_due)
    assert all(s >= d - 0.001 for s, d in zip(sent, writes_due, strict=True)), (sent, writes_due)


def test_time_scale_zero_sends_a_two_second_schedule_at_once(serve) -> None:
    served = serve(
        {"match": {"model": "m"}, "reply": {"content": FIVE, "timing": {"ttft_ms": 1000, "chunk_ms": 250}}},
        time_scale=0,
    )
    started = time.monotonic()
    times, chunks = arrivals(served.base_url)
    assert len(content_times(times, chunks)) == 5 and time.monotonic() - started < 1.0


def test_a_scenario_time_scale_wins_over_the_served_one(serve) -> None:
    slow = {"content": FIVE, "timing": {"ttft_ms": 2000, "chunk_ms": 500}}  # 4 s as written
    served = serve({"time_scale": 0, "rules": [{"match": {"model": "m"}, "reply": slow}]}, time_scale=1)
    started = time.monotonic()
    arrivals(served.base_url)
    assert time.monotonic() - started < 1.5
    served = serve({"time_scale": 0.1, "rules": [{"match": {"model": "m"}, "reply": slow}]}, time_scale=0)
    times, chunks = arrivals(served.base_url)
    assert content_times(times, chunks)[0] >= 0.18  # 2000 ms x 0.1, though the server scale is 0


def test_a_non_streamed_answer_waits_the_whole_schedule_once(serve) -> None:
    served = serve(
        {"match": {"model": "m"}, "reply": {"content": FIVE, "timing": {"ttft_ms": 200, "chunk_ms": 50}}}, time_scale=1
    )
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started >= 0.38
    assert raw.headers["openai-processing-ms"] == "400"
    assert raw.parse().choices[0].message.content == FIVE


# -- the CLI ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_time_scale_and_a_scenario_that_overrides_it(tmp_path: Path) -> None:
    slow = {"content": FIVE, "timing": {"ttft_ms": 3000, "chunk_ms": 100}}  # 3.4 s as written
    (tmp_path / "a.yaml").write_text(
        json.dumps({"version": 1, "rules": [{"match": {"model": "server-scale"}, "reply": slow}]})
    )
    (tmp_path / "b.yaml").write_text(
        json.dumps({"version": 1, "time_scale": 0.1, "rules": [{"match": {"model": "own-scale"}, "reply": slow}]})
    )
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "mockllm",
        "serve",
        "--scenarios",
        str(tmp_path),
        "--port",
        str(port),
        "--time-scale",
        "0.01",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/models", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "mockllm serve did not start"
                time.sleep(0.05)
        started = time.monotonic()
        times, chunks = arrivals(base, "server-scale")
        assert len(content_times(times, chunks)) == 5 and time.monotonic() - started < 2.0  # 3.4 s x 0.01
        times, chunks = arrivals(base, "own-scale")
        assert content_times(times, chunks)[0] >= 0.28  # 3000 ms x 0.1: the scenario's scale, not 0.01
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
