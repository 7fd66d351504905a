"""README.md's "Recording real traffic" blocks, run as written, with the provider's URL (and the
fixed ports) swapped for a loopback upstream's: another mockllm standing in for the provider. The
commands run in bash, in a project of one test file, from the venv that runs these tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import readme_blocks

from mockllm import Engine, load_text
from mockllm.dialects import DIALECTS
from mockllm.server import BackgroundServer

pytest.importorskip("httpx")

RECORD_CLI = """\
mockllm record --upstream https://api.openai.com --out tests/recordings --port 8001 &
OPENAI_BASE_URL=http://127.0.0.1:8001/v1 python -m pytest
kill %1
mockllm validate tests/recordings
"""

CI_CLI = """\
mockllm serve --scenarios tests/recordings --time-scale 0 --port 8000 &
OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=test python -m pytest
kill %1
"""

RULE_YAML = """\
  - name: "chat gpt-4o-mini: What's 1+1? Answer in one word."
    match:
      endpoint: chat
      model: gpt-4o-mini
      body:
        messages:
          - {role: user, content: "What's 1+1? Answer in one word."}
    replies:                         # the same request, recorded twice: played in order
      - error:
          status: 429
          message: "Rate limit reached for gpt-4o-mini ..."
          type: tokens
          code: rate_limit_exceeded
          headers: {retry-after: "1", x-ratelimit-remaining-requests: "0"}
        timing: {ttft_ms: 212.4}
      - chunks: ["Two", "."]
        usage: {prompt_tokens: 18, completion_tokens: 2}
        timing: {ttft_ms: 311.2, chunk_ms: 12.6}
"""

PYTEST_MODES = """\
# the suite's first recording (the clients send the keys of the environment)
OPENAI_API_KEY=sk-... pytest --mockllm-record=once --mockllm-upstream=https://api.openai.com/v1
# CI: replay only, no key, no network
pytest
"""

MODES_REPORT = """\
If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True).

The test has no cassette (tests/cassettes/test_summary/test_summary.yaml). To record one, from the provider:
  pytest tests/test_summary.py::test_summary --mockllm-record=once --mockllm-upstream=https://api.openai.com/v1
"""

TWO_PROVIDERS = """\
pytest --mockllm-record=once --mockllm-upstream=https://api.openai.com/v1,anthropic=https://api.anthropic.com
"""

SECRET = "sk-proj-readme-secret-0123456789"
ASK = "What's 1+1? Answer in one word."

# The app's suite of the CLI blocks: its client is configured by the environment. It waits for the
# port the block's background command opens (a real suite starts long after; this one may not).
APP_SUITE = f"""
import os, socket, time
import openai

def test_app():
    port = int(os.environ["OPENAI_BASE_URL"].split(":")[2].split("/")[0])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    answer = openai.OpenAI(max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": {ASK!r}}}]
    )
    assert answer.choices[0].message.content == "Two."
"""

# The suite of the pytest block: a test of the fixture's client, as tests/test_summary.py.
FIXTURE_SUITE = f"""
def test_summary(mockllm):
    answer = mockllm.client(max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{{"role": "user", "content": {ASK!r}}}]
    )
    assert answer.choices[0].message.content == "Two."
"""


def test_the_readme_shows_these_blocks() -> None:
    assert readme_blocks("Recording real traffic") == [
        RECORD_CLI,
        CI_CLI,
        RULE_YAML,
        PYTEST_MODES,
        MODES_REPORT,
        TWO_PROVIDERS,
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _upstream(endpoint: str = "chat") -> BackgroundServer:
    engine = Engine(time_scale=0)
    engine.add({"match": {"endpoint": endpoint, "user": {"equals": ASK}}, "reply": {"chunks": ["Two", "."]}})
    return BackgroundServer(engine)


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)  # mockllm, python and pytest of this venv
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env}
    environ.pop("PYTEST_ADDOPTS", None)
    environ.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_first_recording_then_the_ci_replay(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_app.py").write_text(APP_SUITE)
    with _upstream() as upstream:
        recorded = _bash(
            RECORD_CLI.replace("https://api.openai.com", upstream.url).replace("8001", str(_free_port())),
            tmp_path,
            OPENAI_API_KEY=SECRET,
        )
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
        assert "1 passed" in recorded.stdout
        assert len(upstream.engine.journal) == 1  # the provider answered the suite
    (written,) = (tmp_path / "tests" / "recordings").iterdir()
    text = written.read_text()
    assert SECRET not in text and ASK in text
    # CI: the upstream is gone, the recording answers.
    replayed = _bash(CI_CLI.replace("8000", str(_free_port())), tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "1 passed" in replayed.stdout


def test_the_recorded_rule_as_shown_replays() -> None:
    engine = Engine(time_scale=0)
    engine.use(load_text("version: 1\nrules:\n" + RULE_YAML, "recording.yaml"))
    body = f'{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "{ASK}"}}]}}'.encode()
    first = engine.answer(DIALECTS["chat"], body, {}, "/v1/chat/completions")
    second = engine.answer(DIALECTS["chat"], body, {}, "/v1/chat/completions")
    assert first.status == 429 and dict(first.headers)[b"retry-after"] == b"1"
    assert second.status == 200 and b'"content":"Two."' in (second.body or b"")


def test_the_pytest_record_modes_as_shown(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_summary.py").write_text(FIXTURE_SUITE)
    lines = PYTEST_MODES.splitlines()
    first, ci = lines[1], lines[3]
    # No cassette yet, replay only: the test fails and says how to record it.
    missing = _bash(ci, tmp_path)
    assert missing.returncode == 1
    assert MODES_REPORT in missing.stdout
    with _upstream() as upstream:
        recorded = _bash(first.replace("sk-...", SECRET).replace("https://api.openai.com", upstream.url), tmp_path)
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
        assert len(upstream.engine.journal) == 1
    cassette = tmp_path / "tests" / "cassettes" / "test_summary" / "test_summary.yaml"
    assert SECRET not in cassette.read_text()
    replayed = _bash(ci, tmp_path)  # the upstream is gone: the cassette answers
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


# A test of each provider's client, as a suite that talks to both.
BOTH_SUITE = f"""
def test_both(mockllm):
    asked = [{{"role": "user", "content": {ASK!r}}}]
    chat = mockllm.client(max_retries=0).chat.completions.create(model="gpt-4o-mini", messages=asked)
    claude = mockllm.anthropic_client(max_retries=0).messages.create(
        model="claude-sonnet-4-5", max_tokens=20, messages=asked
    )
    assert (chat.choices[0].message.content, claude.content[0].text) == ("Two.", "Two.")
"""


def test_one_run_records_from_two_providers_as_shown(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_both.py").write_text(BOTH_SUITE)
    with _upstream("chat") as openai_side, _upstream("anthropic") as claude_side:
        command = TWO_PROVIDERS.replace("https://api.openai.com", openai_side.url)
        recorded = _bash(command.replace("https://api.anthropic.com", claude_side.url), tmp_path)
        assert recorded.returncode == 0, recorded.stdout + recorded.stderr
        assert [len(openai_side.engine.journal), len(claude_side.engine.journal)] == [1, 1]
    replayed = _bash("pytest", tmp_path)  # both upstreams gone: the cassette answers
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
