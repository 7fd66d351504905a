"""README's sections "The inspector", "The control API" and "Quotas": every block as written, run.

The shell blocks run in bash against a real `mockllm serve` (the README's port 8000 swapped for a free
one), and each `# {...}` line that is whole JSON must be a line the block printed; the Python blocks
run as written (the Remote block in a subprocess, the quota tests through pytester).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import readme_blocks

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent

SERVE = """\
mockllm serve
"""

STREAM_CURL = """\
curl -s http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}'
"""

HEALTH = """\
curl -s http://127.0.0.1:8000/_mockllm/health
# {"status":"ok"}
curl -s http://127.0.0.1:8000/_mockllm/version
# {"version":"0.1.0","apis":["chat","responses","anthropic","completions","embeddings","gemini"]}
"""

ADD_CALL_REMOVE = """\
curl -s -X POST http://127.0.0.1:8000/_mockllm/rules --data-binary @- <<'EOF'
name: weather
match: {user: {contains: weather}}
reply: {content: "Sunny, 21 C."}
EOF
# {"added":["weather"]}
curl -s http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "the weather?"}]}'
curl -s 'http://127.0.0.1:8000/_mockllm/journal?rule=weather&limit=1'
# {"entries":[{"index":0,"endpoint":"chat","method":"POST","path":"/v1/chat/completions","status":200,
#   "rule":"weather","origin":"<control>:1",...,"headers":{...},"writes":[{"at":0.0,"sent":null,...}]}],"next":1}
curl -s http://127.0.0.1:8000/_mockllm/rules
# {"rules":[...,{"name":"weather","origin":"<control>:1","calls":1,"capacity":null,"left":null,...},...]}
curl -s -X DELETE http://127.0.0.1:8000/_mockllm/rules/weather
# {"removed":["weather"]}
"""

BAD_RULE = """\
curl -s -X POST http://127.0.0.1:8000/_mockllm/rules --data-binary $'name: typo\\nreply: {contnet: x}\\n'
# {"error":{"message":"<control>:2: reply.contnet: unknown key (did you mean 'content'?); ...","code":"bad_rule"}}
"""

RESET = """\
curl -s -X POST http://127.0.0.1:8000/_mockllm/reset -d '{"what": "sequences"}'
# {"reset":"sequences"}
curl -s -X POST http://127.0.0.1:8000/_mockllm/reset
# {"reset":"all"}
"""

REMOTE = """\
import mockllm
import openai

remote = mockllm.Remote("http://127.0.0.1:8000")   # the root, or the /v1 URL the SDKs take
remote.reset()
remote.add({"name": "greeting", "match": {"user": {"contains": "hello"}}, "reply": {"content": "Hi!"}})

client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="test")
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
assert reply.choices[0].message.content == "Hi!"

remote.assert_called(times=1, rule="greeting")
assert remote.last_request.json["messages"] == [{"role": "user", "content": "hello"}]
assert [e.rule for e in remote.journal(endpoint="chat")] == ["greeting"]
remote.remove("greeting")
"""

WITH_TOKEN = """\
curl -s -H 'Authorization: Bearer TOKEN' http://127.0.0.1:8000/_mockllm/rules   # with --admin-token TOKEN
"""

QUOTA_YAML = """\
# tests/scenarios/quota.yaml
version: 1
limits:
  - model: "gpt-4o*"          # a glob; left out: every model
    per: model                # whose quota: model (default, each model its own) or api_key
    requests_per_minute: 2
    tokens_per_minute: 2000   # optional
    window_s: 1               # the window's length (default 60): short ones keep tests fast
rules:
  - name: answer
    reply: {content: "Fine."}
"""

BACKOFF_TESTS = """\
# tests/test_backoff.py
import time

import httpx
import pytest


@pytest.mark.mockllm("scenarios/quota.yaml")
def test_the_sdk_waits_as_asked(mockllm):
    client = mockllm.client()  # openai.OpenAI, max_retries=2 as by default
    for text in ("one", "two"):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])
    started = time.monotonic()
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "three"}])
    assert answer.choices[0].message.content == "Fine."
    assert time.monotonic() - started >= 1  # the 429's retry-after: 1
    assert [entry.status for entry in mockllm.requests] == [200, 200, 429, 200]
    assert mockllm.requests[3].backoff["honoured"]
    mockllm.assert_backoff_honoured()


@pytest.mark.mockllm("scenarios/quota.yaml")
def test_an_impatient_app_is_caught(mockllm):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "again"}]}
    with httpx.Client(base_url=mockllm.base_url) as http:
        statuses = [http.post("/chat/completions", json=body).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]  # it retried at once
    with pytest.raises(AssertionError, match="came sooner than retry-after asked"):
        mockllm.assert_backoff_honoured()
"""

BACKOFF_REPORT = """\
mockllm: 1 of 1 retried request(s) came sooner than retry-after asked (a retry must wait at least what the refused answer asked, less 50 ms):
  #3 chat /ns/t2-L1lsgcPRjOEAcHfDnGYlMA/v1/chat/completions: waited 0.001s, asked 1.000s by #2 (429: over the limit at tests/scenarios/quota.yaml:4: 2 requests per 1 s (2 used, 1 requested))
"""  # noqa: E501


def test_the_readme_shows_these_blocks() -> None:
    assert readme_blocks("The inspector") == [SERVE, STREAM_CURL]
    assert readme_blocks("The control API") == [HEALTH, ADD_CALL_REMOVE, BAD_RULE, RESET, REMOTE, WITH_TOKEN]
    assert readme_blocks("Quotas") == [QUOTA_YAML, BACKOFF_TESTS, BACKOFF_REPORT]


@contextmanager
def serving(*options: str) -> Iterator[str]:
    """The README's `mockllm serve` (the bundled scenarios) on a free port, from the repository's root;
    the port, as the server printed it."""
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "mockllm"), *SERVE.split()[1:], "--port", "0", *options]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    port = None
    for line in proc.stderr:
        if "OPENAI_BASE_URL=" in line:
            port = line.split("OPENAI_BASE_URL=", 1)[1].strip().removesuffix("/v1").rsplit(":", 1)[1]
            break
    try:
        if port is None:
            proc.wait(10)
            pytest.fail("mockllm serve did not start")
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def run_block(block: str, port: str) -> list[str]:
    """A shell block run as written but for the port; its output lines. Every `# ` line that is whole
    JSON must be one of them."""
    done = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + block.replace("8000", port).replace("curl -s", "curl -sS -w '\\n'")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line for line in done.stdout.splitlines() if line]
    for line in block.splitlines():
        if line.startswith("# {"):
            try:
                json.loads(line[2:])
            except ValueError:
                continue  # shortened with "...": checked by the test itself
            if "..." in line:
                continue
            assert line[2:] in printed, (line, printed)
    return printed


def test_the_control_blocks_against_a_served_engine() -> None:
    with serving() as port:
        run_block(HEALTH, port)
        _, answered, journal, rules, _ = run_block(ADD_CALL_REMOVE, port)
        assert json.loads(answered)["choices"][0]["message"]["content"] == "Sunny, 21 C."
        (entry,) = json.loads(journal)["entries"]
        assert (entry["index"], entry["rule"], entry["origin"], entry["status"]) == (0, "weather", "<control>:1", 200)
        assert entry["writes"][0]["at"] == 0.0 and entry["writes"][0]["sent"] is None
        (weather,) = [rule for rule in json.loads(rules)["rules"] if rule["name"] == "weather"]
        assert (weather["origin"], weather["calls"], weather["capacity"], weather["left"]) == (
            "<control>:1",
            1,
            None,
            None,
        )
        (refused,) = run_block(BAD_RULE, port)
        error = json.loads(refused)["error"]
        assert error["code"] == "bad_rule"
        assert error["message"].startswith("<control>:2: reply.contnet: unknown key (did you mean 'content'?)")
        run_block(RESET, port)
        streamed = run_block(STREAM_CURL, port)
        assert streamed[0].startswith("data: {") and streamed[-1] == "data: [DONE]"
        # The Remote block, as written but for the port, from another process.
        script = REMOTE.replace("8000", port)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr


def test_the_token_block_against_a_guarded_server() -> None:
    with serving("--admin-token", "TOKEN") as port:
        (listed,) = run_block(WITH_TOKEN, port)
        assert [rule["name"] for rule in json.loads(listed)["rules"]]  # the bundled rules
        without = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/_mockllm/rules"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert without.stdout == "401"


def test_the_quota_tests_as_written(pytester: pytest.Pytester) -> None:
    """The scenario and the two tests, run as a suite would run them; the second's failure report is
    the README's, but for the namespace and the timing."""
    (pytester.path / "tests" / "scenarios").mkdir(parents=True)
    (pytester.path / "tests" / "scenarios" / "quota.yaml").write_text(QUOTA_YAML)
    (pytester.path / "tests" / "test_backoff.py").write_text(BACKOFF_TESTS)
    os.environ.pop("PYTEST_XDIST_WORKER", None)
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:cacheprovider", "tests")
    result.assert_outcomes(passed=2)
    # The report the second test expects, as pytest.raises saw it: the README's, line by line.
    probe = BACKOFF_TESTS.replace(
        '    with pytest.raises(AssertionError, match="came sooner than retry-after asked"):\n'
        "        mockllm.assert_backoff_honoured()",
        "    mockllm.assert_backoff_honoured()",
    )
    (pytester.path / "tests" / "test_backoff.py").write_text(probe)
    failed = pytester.runpytest("-p", "no:xdist", "-p", "no:cacheprovider", "tests", "-k", "impatient")
    failed.assert_outcomes(failed=1)
    first, second = BACKOFF_REPORT.splitlines()
    failed.stdout.fnmatch_lines(
        [
            f"*{first}",
            "*" + second.replace("t2-L1lsgcPRjOEAcHfDnGYlMA", "*").replace("0.001s", "*s").lstrip(),
        ]
    )
