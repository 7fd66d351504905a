"""The command line, run as a user runs it: `mockllm validate`, `mockllm serve`, `python -m mockllm`."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from helpers import SCENARIOS

import mockllm as mockllm_package

GOOD = "version: 1\nrules:\n  - name: hello\n    reply: {content: Hello from a file.}\n"
BAD = """\
version: 1
rules:
  - reply: {content: hi}
  - name: slow
    reply:
      timing: {ttft_ms: fast}
      content: x
"""
BAD_MESSAGE = "rules[1].reply.timing.ttft_ms: expected a number, got 'fast'"


def mockllm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mockllm", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(*args: str) -> tuple[subprocess.Popen[str], int]:
    """`python -m mockllm serve ... --port P`, once it answers HTTP."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"mockllm serve exited with {proc.returncode}:\n{err}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc, port
        except httpx.TransportError:
            if time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise AssertionError("mockllm serve did not listen within 60 s") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"mockllm serve did not stop on signal {sig}:\n{err}") from None
    return proc.returncode, out, err


def test_help() -> None:
    result = mockllm("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "validate" in result.stdout
    serve_help = mockllm("serve", "--help")
    assert serve_help.returncode == 0
    for option in ("--scenarios", "--host", "--port", "--seed", "--time-scale", "--max-body-size", "--shutdown-grace"):
        assert option in serve_help.stdout


def test_no_command_is_a_usage_error() -> None:
    result = mockllm()
    assert result.returncode == 2
    assert "usage: mockllm" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_good_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = mockllm("validate", str(good), str(SCENARIOS))
    assert result.returncode == 0, result.stderr
    assert f"ok {good}: 1 rule(s)" in result.stdout
    assert "cookbook.yaml: 2 rule(s)" in result.stdout
    assert result.stderr == ""


def test_validate_reports_every_bad_file(tmp_path: Path) -> None:
    good, bad, worse = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "worse.yaml"
    folder = tmp_path / "folder"
    folder.mkdir()
    good.write_text(GOOD)
    bad.write_text(BAD)
    worse.write_text("version: 1\nrules: nope\n")
    (folder / "also-good.yaml").write_text(GOOD)
    result = mockllm("validate", str(bad), str(good), str(worse), str(folder))
    assert result.returncode == 1
    # each bad file's message alone (no traceback), in the order given, and the good ones still checked
    assert result.stderr == (
        f"{bad}:6: {BAD_MESSAGE}\n{worse}:2: rules: expected a list, got 'nope'\n"
        "mockllm: 2 of 4 paths have problems (listed above)\n"
    )
    assert result.stdout.splitlines() == [f"ok {good}: 1 rule(s)", f"ok {folder / 'also-good.yaml'}: 1 rule(s)"]


def test_validate_one_bad_file_says_only_its_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    result = mockllm("validate", str(bad))
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"{bad}:6: {BAD_MESSAGE}\n")


def test_version() -> None:
    from mockllm import __version__

    result = mockllm("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"mockllm {__version__}\n", "")


def test_validate_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mockllm")
    command = str(script) if script.exists() else shutil.which("mockllm")
    assert command, "the `mockllm` console script should be installed with the package"
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - reply:\n      contnet: hi\n")
    result = subprocess.run([command, "validate", str(bad)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}:4: rules[0].reply.contnet: unknown key (did you mean 'content'?)")


def test_validate_missing_path(tmp_path: Path) -> None:
    result = mockllm("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert result.stderr == f"{tmp_path / 'nope.yaml'}: no such file or folder\n"


def test_serve_refuses_a_bad_scenario_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    port = free_port()
    result = mockllm("serve", "--scenarios", str(bad), "--port", str(port), timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"{bad}:6: {BAD_MESSAGE}\n"
    with socket.socket() as s:  # nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_serve_refuses_a_missing_path(tmp_path: Path) -> None:
    result = mockllm("serve", "--scenarios", str(tmp_path / "missing"), "--port", str(free_port()))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr and "Traceback" not in result.stderr


def test_serve_rejects_a_negative_time_scale() -> None:
    result = mockllm("serve", "--time-scale", "-1")
    assert result.returncode == 2
    assert "expected 0 or more" in result.stderr


def test_serve_answers_the_openai_sdk_then_stops_cleanly(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    proc, port = start("--scenarios", str(good), "--time-scale", "0")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test")
        done = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "Hello from a file."
        with client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as stream:
            assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello from a file."
    finally:
        code, _, err = stop(proc)
    assert code == 0, err  # a stop asked for is no failure (tests/test_hardening_server.py: the grace)
    assert f"mockllm: 1 rule(s) from {good}" in err
    assert f"OPENAI_BASE_URL=http://127.0.0.1:{port}/v1" in err
    assert "Traceback" not in err


def test_serve_defaults_to_the_bundled_scenarios() -> None:
    proc, port = start("--time-scale", "0")
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test")
        with client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}],
            stream=True,
            stream_options={"include_usage": True},
        ) as stream:
            chunks = list(stream)
        assert [c.choices[0].delta.content for c in chunks if c.choices] == ["", "Two", ".", None]
        anything = client.chat.completions.create(model="any-model", messages=[{"role": "user", "content": "?"}])
        assert anything.choices[0].message.content  # the catch-all answers any chat request
    finally:
        code, _, err = stop(proc, signal.SIGINT)  # Ctrl-C
    assert code == 0, err  # a stop asked for is no failure, and no KeyboardInterrupt traceback
    assert "Traceback" not in err
    assert "scenarios" in err  # names where the rules came from


def test_serve_several_scenario_paths_and_seed(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two"
    one.write_text(GOOD.replace("hello", "one").replace("{content: Hello from a file.}", "{generate: {words: 4}}"))
    two.mkdir()
    (two / "x.yaml").write_text(
        "version: 1\nrules:\n  - match: {model: special}\n    priority: 1\n    reply: {content: two}\n"
    )
    texts = []
    for seed in ("1", "1", "2"):
        proc, port = start("--scenarios", str(one), "--scenarios", str(two), "--seed", seed, "--time-scale", "0")
        try:
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test")
            special = client.chat.completions.create(model="special", messages=[{"role": "user", "content": "x"}])
            assert special.choices[0].message.content == "two"
            plain = client.chat.completions.create(model="plain", messages=[{"role": "user", "content": "x"}])
            texts.append(plain.choices[0].message.content)
            assert [m.id for m in client.models.list()] == ["gpt-4o-mini", "special"]
        finally:
            code, _, err = stop(proc, signal.SIGINT)
        assert code == 0, err
        assert "2 rule(s)" in err
    assert texts[0] == texts[1] != texts[2]  # --seed drives generated text


def test_serve_on_port_0_prints_the_port_it_got() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--time-scale", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        deadline = time.monotonic() + 60
        while "OPENAI_BASE_URL=" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        base_url = line.strip().split("OPENAI_BASE_URL=", 1)[1]
        assert not base_url.endswith(":0/v1")
        client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=5)
        assert client.models.list().data
    finally:
        stop(proc)


def test_serve_on_a_busy_port_says_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = mockllm("serve", "--port", str(port))
    assert result.returncode == 1
    assert f"mockllm: cannot listen on 127.0.0.1:{port}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_access_log_lines_when_asked(tmp_path: Path) -> None:
    """`--access-log` logs each request (mockllm's one-write protocol leaves those responses to uvicorn)."""
    proc, port = start("--time-scale", "0", "--access-log")
    try:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10)
        assert response.status_code == 200 and response.json()["object"] == "chat.completion"
    finally:
        _, out, err = stop(proc)
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in out + err


def test_no_access_log_by_default() -> None:
    proc, port = start("--time-scale", "0")
    try:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10).status_code == 200
    finally:
        _, out, err = stop(proc)
    assert "POST /v1/chat/completions" not in out + err


def mockllm_remote(port: int) -> mockllm_package.Remote:
    return mockllm_package.Remote(f"http://127.0.0.1:{port}")


def test_journal_size_option() -> None:
    # serve keeps the last 100 requests by default, for the control API and the inspector
    assert "journal keeps, for the control API and the inspector at /_mockllm (default: 100;" in " ".join(
        mockllm("serve", "--help").stdout.split()
    )
    refused = mockllm("serve", "--journal-size", "-1")
    assert refused.returncode == 2 and "--journal-size" in refused.stderr and "Traceback" not in refused.stderr
    proc, port = start("--journal-size", "5", "--time-scale", "0")
    try:
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test", max_retries=0) as client:
            for _ in range(7):  # more requests than it keeps
                messages = [{"role": "user", "content": "hi"}]
                answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                assert answer.choices[0].message.content
        journal = mockllm_remote(port).journal()
        assert [entry.index for entry in journal] == [2, 3, 4, 5, 6]  # the newest 5
    finally:
        stop(proc)
