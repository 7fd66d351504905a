"""Same scenario + same requests -> same bytes: across Engines, servers and process restarts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from helpers import SCENARIOS

from mockllm import Engine

SCENARIO = """\
version: 1
rules:
  - name: tools
    match: {user: {contains: weather}}
    reply:
      tool_calls:
        - {name: get_weather, arguments: {city: Paris}}
        - {name: get_time, arguments: {tz: CET}}
  - name: sequence
    match: {user: {contains: seq}}
    replies:
      - content: "first"
      - generate: {words: 5}
  - name: fixed
    match: {user: {contains: fixed}}
    reply: {content: "Déjà vu, 世界 🌍."}
  - name: generated
    match: {model: "gpt-*"}
    reply: {generate: {sentences: 2}}
"""


def body(text: str, *, model: str = "gpt-4o", stream: bool = False, usage: bool = False) -> bytes:
    data: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    if usage:
        data["stream_options"] = {"include_usage": True}
    return json.dumps(data).encode()


REQUESTS = [
    body("hello"),
    body("hello", stream=True, usage=True),
    body("hello"),
    body("weather?"),
    body("weather?", stream=True),
    body("seq"),
    body("seq", stream=True),
    body("seq"),  # played out: falls through to "generated"
    body("fixed", stream=True),
    body("nothing", model="claude"),  # no rule: 418
    b"not json",  # 400
]


def answer_bytes(engine: Engine, raw: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    answer = engine.chat(raw, {})
    data = b"".join(w.data for w in answer.writes) if answer.writes is not None else answer.body
    return answer.status, answer.headers, data


def run_engine(path: Path, seed: int = 0) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    engine = Engine(path, seed=seed, time_scale=0)
    return [answer_bytes(engine, raw) for raw in REQUESTS]


def over_http(base_url: str) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    out = []
    with httpx.Client(timeout=10) as http:
        for raw in REQUESTS:
            r = http.post(base_url + "/chat/completions", content=raw)
            headers = [(k, v) for k, v in r.headers.items() if k not in ("date", "server")]
            out.append((r.status_code, headers, r.content))
    return out


def test_two_engines_give_identical_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    first, second = run_engine(path), run_engine(path)
    assert [s for s, _, _ in first] == [200, 200, 200, 200, 200, 200, 200, 200, 200, 418, 400]
    assert first == second


def test_two_servers_give_identical_bytes(tmp_path: Path, serve) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    a, b = serve(path), serve(path)
    first, second = over_http(a.base_url), over_http(b.base_url)
    assert first == second
    # and what the wire carries is what the engine made
    assert [data for _, _, data in first] == [data for _, _, data in run_engine(path)]


def test_reset_replays_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    engine = Engine(path, time_scale=0)
    before = [answer_bytes(engine, raw) for raw in REQUESTS]
    engine.reset()
    assert [answer_bytes(engine, raw) for raw in REQUESTS] == before


def test_seed_changes_generated_text_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    zero, one = run_engine(path, seed=0), run_engine(path, seed=1)
    assert (
        json.loads(zero[0][2])["choices"][0]["message"]["content"]
        != json.loads(one[0][2])["choices"][0]["message"]["content"]
    )
    assert json.loads(zero[0][2])["id"] != json.loads(one[0][2])["id"]
    assert json.loads(zero[0][2])["system_fingerprint"] != json.loads(one[0][2])["system_fingerprint"]
    assert dict(zero[0][1])[b"x-request-id"] != dict(one[0][1])[b"x-request-id"]
    # the fixed text is the same whatever the seed; only the derived values move
    fixed_zero = [json.loads(p[6:]) for p in zero[8][2].split(b"\n\n") if p.startswith(b"data: {")]
    fixed_one = [json.loads(p[6:]) for p in one[8][2].split(b"\n\n") if p.startswith(b"data: {")]
    assert [c["choices"] for c in fixed_zero] == [c["choices"] for c in fixed_one]


def test_rule_seed_beats_engine_seed() -> None:
    rule = {"name": "r", "seed": 42, "reply": {"generate": {"sentences": 1}}}
    texts = []
    for engine_seed in (0, 1):
        engine = Engine(seed=engine_seed, time_scale=0)
        engine.add(rule)
        texts.append(json.loads(answer_bytes(engine, body("x"))[2])["choices"][0]["message"]["content"])
    assert texts[0] == texts[1]
    engine = Engine(time_scale=0)
    engine.add({**rule, "seed": 43})
    assert json.loads(answer_bytes(engine, body("x"))[2])["choices"][0]["message"]["content"] != texts[0]


def test_call_index_changes_id_created_and_text() -> None:
    engine = Engine(time_scale=0)
    engine.add({"name": "g", "reply": {"generate": {"sentences": 2}}})
    answers = [json.loads(answer_bytes(engine, body("x"))[2]) for _ in range(5)]
    assert len({a["id"] for a in answers}) == 5
    assert len({a["created"] for a in answers}) > 1
    assert len({a["choices"][0]["message"]["content"] for a in answers}) == 5
    assert len({a["system_fingerprint"] for a in answers}) == 1  # per seed, not per call
    assert all(1_704_067_200 <= a["created"] < 1_767_225_600 for a in answers)  # 2024-2025, not the clock


def test_rule_identity_not_position_in_router(tmp_path: Path) -> None:
    # the same rule answers the same bytes when another file is loaded beside it
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    alone = Engine(path, time_scale=0)
    crowded = Engine(time_scale=0)
    crowded.add({"name": "other", "match": {"model": "nope"}, "reply": {"content": "x"}})
    crowded.load(path)
    assert answer_bytes(alone, body("fixed")) == answer_bytes(crowded, body("fixed"))


def test_bundled_default_is_deterministic(serve) -> None:
    a, b = serve(SCENARIOS), serve(SCENARIOS)
    raw = body("Tell me anything", stream=True, usage=True)
    ra = httpx.post(a.base_url + "/chat/completions", content=raw, timeout=10)
    rb = httpx.post(b.base_url + "/chat/completions", content=raw, timeout=10)
    assert ra.content == rb.content and ra.headers["x-request-id"] == rb.headers["x-request-id"]


# -- across process restarts -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mockllm_serve(*args: str) -> Iterator[str]:
    """`python -m mockllm serve ...` on a free port; yields its /v1 base url."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mockllm serve exited with {proc.returncode}: {proc.stderr.read().decode()}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError("mockllm serve did not start listening within 60 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_identical_bytes_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    runs = []
    for _ in range(2):
        with mockllm_serve("--scenarios", str(path), "--seed", "5", "--time-scale", "0") as base_url:
            runs.append(over_http(base_url))
    assert runs[0] == runs[1]
    assert [s for s, _, _ in runs[0]] == [200, 200, 200, 200, 200, 200, 200, 200, 200, 418, 400]
    # the same bytes as an in-process Engine with that seed
    assert [d for _, _, d in runs[0]] == [d for _, _, d in run_engine(path, seed=5)]
