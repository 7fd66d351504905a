# ruff: noqa: E501 (the README's blocks are quoted verbatim, long lines and all)
"""README.md's API examples, run as written against a served engine of the bundled scenarios
(what `mockllm serve` serves), each in a process of its own, with only the README's base URL
(http://127.0.0.1:8000/v1) swapped for the test server's.

The blocks below are the README's, verbatim: `test_the_readme_shows_these_examples` fails when
the two drift apart. The Agents SDK block runs where `agents` imports (.venv3, openai 3.x); the
openai SDK blocks in both environments (openai 2.x and 3.x).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any

import httpx
import pytest
from helpers import ROOT, SCENARIOS

README = ROOT / "README.md"
URL = "http://127.0.0.1:8000/v1"
HUNDRED = ", ".join(str(n) for n in range(1, 101))

# -- the README's blocks ------------------------------------------------------------------------

CHAT_CURL_EXAMPLE = """\
curl http://127.0.0.1:8000/v1/chat/completions \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer test" \\
  -d '{
    "model": "gpt-4o",
    "messages": [
      {"role": "system", "content": "You are a helpful assistant."},
      {"role": "user", "content": "Hello!"}
    ],
    "stream": true,
    "stream_options": {"include_usage": true}
  }'
"""

CHAT_CURL_OUTPUT = """\
data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":"gpt-4o","service_tier":"default","system_fingerprint":"fp_…","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null,"obfuscation":"…"}

data: {…,"choices":[{"index":0,"delta":{"content":"Thus"},"finish_reason":null}],"usage":null,…}

…

data: {…,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null,…}

data: {…,"choices":[],"usage":{"prompt_tokens":17,"completion_tokens":17,"total_tokens":34,…},…}

data: [DONE]
"""

CHAT_SDK_EXAMPLE = """\
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="test")

# A streamed chat completion: "", "Two", ".", then the finish chunk (content None).
response = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}],
    temperature=0,
    stream=True,
)
for chunk in response:
    print(chunk.choices[0].delta.content)

# Counting to 100: 298 chunks ("1", ",", " ", "2", ...), as the real stream cut them.
response = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."}],
    temperature=0,
    stream=True,
)
print("".join(c.choices[0].delta.content or "" for c in response))

# Usage on a stream: usage is None on every chunk, then one chunk with choices == [] and
# the totals (18 prompt + 2 completion tokens, as the notebook shows).
response = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in response:
    print(f"choices: {chunk.choices}\\nusage: {chunk.usage}")
"""

CURL_EXAMPLE = """\
curl http://127.0.0.1:8000/v1/responses \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer test" \\
  -d '{
    "model": "gpt-4o",
    "instructions": "You are a helpful assistant.",
    "input": "Hello!",
    "stream": true
  }'
"""

CURL_OUTPUT = """\
event: response.created
data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_…","object":"response","created_at":…,"status":"in_progress",…,"output":[],…,"usage":null,…}}

event: response.in_progress
data: {"type":"response.in_progress","sequence_number":1,…}

event: response.output_item.added
data: {"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_…","type":"message","status":"in_progress","content":[],"role":"assistant"}}

event: response.content_part.added
data: {"type":"response.content_part.added","sequence_number":3,"item_id":"msg_…","output_index":0,"content_index":0,"part":{"type":"output_text","annotations":[],"logprobs":[],"text":""}}

event: response.output_text.delta
data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_…","output_index":0,"content_index":0,"delta":"Thus","logprobs":[],"obfuscation":"…"}

…

event: response.output_text.done
data: {"type":"response.output_text.done",…,"text":"Thus war money industry. …","logprobs":[]}

event: response.content_part.done
data: {"type":"response.content_part.done",…}

event: response.output_item.done
data: {"type":"response.output_item.done",…,"item":{"id":"msg_…","type":"message","status":"completed",…}}

event: response.completed
data: {"type":"response.completed",…,"response":{"id":"resp_…",…,"status":"completed",…,"usage":{"input_tokens":17,"input_tokens_details":{"cached_tokens":0},"output_tokens":17,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":34},…}}
"""

SDK_EXAMPLE = """\
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="test")

# Not streamed: the response object, its text joined in output_text.
response = client.responses.create(model="gpt-4o-mini", input="What's 1+1? Answer in one word.")
print(response.status, response.output_text, response.usage.input_tokens, response.usage.output_tokens)
# completed Two. 18 2

# Streamed: every event has a type and a sequence_number (0, 1, 2, ...); the text comes in
# response.output_text.delta events ("Two", "."), the whole response in response.completed.
stream = client.responses.create(model="gpt-4o-mini", input="What's 1+1? Answer in one word.", stream=True)
for event in stream:
    print(event.sequence_number, event.type, getattr(event, "delta", ""))

# The helper: the events as they arrive, then the final response.
with client.responses.stream(
    model="gpt-4o-mini",
    input="Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ...",
) as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            print(event.delta, end="")  # 298 deltas: "1", ",", " ", "2", ...
    print()
    final = stream.get_final_response()
print(final.status, final.usage.output_tokens)  # completed 298

# A conversation: previous_response_id makes the earlier turns part of the request.
follow_up = client.responses.create(model="gpt-4o-mini", input="And 2+2?", previous_response_id=response.id)
print(follow_up.previous_response_id == response.id, client.responses.retrieve(response.id).output_text)
# True Two.
"""

AGENTS_EXAMPLE = """\
import asyncio

from agents import Agent, Runner, set_default_openai_client, set_tracing_disabled
from openai import AsyncOpenAI

set_tracing_disabled(True)
set_default_openai_client(AsyncOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="test"))


async def main():
    agent = Agent(name="Assistant", instructions="You are a helpful assistant.")
    result = await Runner.run(agent, "What's 1+1? Answer in one word.")
    print(result.final_output)  # Two.


asyncio.run(main())
"""

# What each block prints (trailing spaces dropped).
SDK_OUTPUT = f"""\
completed Two. 18 2
0 response.created
1 response.in_progress
2 response.output_item.added
3 response.content_part.added
4 response.output_text.delta Two
5 response.output_text.delta .
6 response.output_text.done
7 response.content_part.done
8 response.output_item.done
9 response.completed
{HUNDRED}
completed 298
True Two.
"""

AGENTS_OUTPUT = "Two.\n"


def section(title: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, f"README.md has no '## {title}' section"
    return re.findall(r"```\w*\n(.*?)```", found.group(1), re.S)


def test_the_readme_shows_these_examples() -> None:
    assert section("The Responses API") == [CURL_EXAMPLE, CURL_OUTPUT, SDK_EXAMPLE, AGENTS_EXAMPLE]
    assert section("Chat Completions")[:3] == [CHAT_CURL_EXAMPLE, CHAT_CURL_OUTPUT, CHAT_SDK_EXAMPLE]


# -- running them -------------------------------------------------------------------------------


def run(args: list[str], served: Any) -> str:
    """Run a README block (the README's URL swapped for the served engine's); its stdout."""
    args = [arg.replace(URL, served.base_url) for arg in args]
    env = {**os.environ, "OPENAI_API_KEY": "test", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return "\n".join(line.rstrip() for line in done.stdout.splitlines()) + "\n"


# Run before each Python block, in its process: a connection or name lookup beyond loopback fails
# the block (the Agents SDK must not send traces or anything else out).
LOOPBACK_ONLY = """\
import socket, sys
_connect, _lookup = socket.socket.connect, socket.getaddrinfo
def _check(host):
    if host not in ("127.0.0.1", "::1", "localhost"):
        sys.stderr.write(f"README block reached beyond loopback: {host!r}\\n")
        raise SystemExit(3)
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address[0])
    return _connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    _check(host)
    return _lookup(host, *args, **kwargs)
socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
"""


def python(block: str, served: Any) -> str:
    code = f"{LOOPBACK_ONLY}\nexec(compile({block!r}, 'README.md', 'exec'), {{'__name__': '__main__'}})\n"
    return run([sys.executable, "-c", code], served)


def test_the_chat_sdk_example(serve) -> None:
    served = serve(SCENARIOS)
    out = python(CHAT_SDK_EXAMPLE, served).splitlines()
    assert out[:5] == ["", "Two", ".", "None", HUNDRED]
    usage = out[5:]  # "choices: [...]" / "usage: ..." per chunk
    assert [line.startswith("choices: [Choice(") for line in usage[:-2:2]] == [True] * 4
    assert usage[1:-2:2] == ["usage: None"] * 4
    assert usage[-2] == "choices: []"
    assert usage[-1].startswith("usage: CompletionUsage(completion_tokens=2, prompt_tokens=18, total_tokens=20,")
    assert [(e.endpoint, e.rule) for e in served.journal] == [
        ("chat", "one-plus-one"),
        ("chat", "count-to-100"),
        ("chat", "one-plus-one"),
    ]


def test_the_chat_curl_example_prints_what_the_readme_shows(serve) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    served = serve(SCENARIOS)
    assert matches(CHAT_CURL_OUTPUT, run(["bash", "-c", CHAT_CURL_EXAMPLE], served))
    (entry,) = served.journal
    assert (entry.endpoint, entry.rule, entry.stream, entry.status) == ("chat", "generated-text", True, 200)


def test_the_curl_example_prints_what_the_readme_shows(serve) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    served = serve(SCENARIOS)
    out = run(["bash", "-c", CURL_EXAMPLE], served)
    assert matches(CURL_OUTPUT, out)
    (entry,) = served.journal
    assert (entry.endpoint, entry.rule, entry.stream, entry.status) == ("responses", "generated-text", True, 200)


def test_the_responses_sdk_example(serve) -> None:
    served = serve(SCENARIOS)
    assert python(SDK_EXAMPLE, served) == SDK_OUTPUT
    entries = list(served.journal)
    assert [(e.endpoint, e.rule, e.stream) for e in entries] == [
        ("responses", "one-plus-one", False),
        ("responses", "one-plus-one", True),
        ("responses", "count-to-100", True),
        ("responses", "generated-text", False),  # "And 2+2?" after the chain's "What's 1+1?"
    ]  # (the GET of /v1/responses/{id} is not a request the rules answer: not journaled)
    assert all(e.status == 200 for e in entries)


def test_the_agents_sdk_example(serve) -> None:
    pytest.importorskip("agents")
    served = serve(SCENARIOS)
    assert python(AGENTS_EXAMPLE, served) == AGENTS_OUTPUT
    (entry,) = served.journal
    assert (entry.endpoint, entry.rule, entry.status) == ("responses", "one-plus-one", 200)
    assert entry.json["instructions"] == "You are a helpful assistant."


# -- the curl output's "…" ------------------------------------------------------------------------


def matches(shown: str, printed: str) -> bool:
    """Whether `printed` (an event stream) is what `shown` shows: each shown event a pattern in
    which "…" stands for any text; a "…" event alone stands for any number of events."""
    events = printed.strip("\n").split("\n\n")
    at, gap = 0, False
    for block in shown.strip("\n").split("\n\n"):
        if block == "…":
            gap = True
            continue
        pattern = re.compile("\n".join(".*?".join(map(re.escape, line.split("…"))) for line in block.split("\n")))
        while at < len(events) and not pattern.fullmatch(events[at]):
            assert gap, f"event {at} is not what the README shows:\n{events[at]}\n!=\n{block}"
            at += 1
        assert at < len(events), f"the README shows an event that never came:\n{block}"
        at, gap = at + 1, False
    assert at == len(events), f"events after the last one the README shows: {events[at:]}"
    return True


# -- "When nothing matches": the README's scenario, a Responses request, the README's message ---------

NO_MATCH = """\
mockllm: no rule matched this responses request
  request: model='gpt-4o' stream=true user='Hello!'
  nearest rules (of 2):
    - flaky-then-fine (scenarios/basic.yaml:15): user: 'Hello!' does not contain 'retry'
    - one-word-answer (scenarios/basic.yaml:6): endpoint: wanted chat, got responses; user: 'Hello!' does not contain '1+1'
  Add a rule that matches this request, or loosen the conditions of one above.
"""


def test_the_no_match_message_is_what_the_readme_shows(serve, tmp_path, monkeypatch) -> None:
    (scenario,) = [b for b in section("Scenario files") if b.startswith("version: 1\ndefaults:")]
    assert NO_MATCH in section("When nothing matches")
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "basic.yaml").write_text(scenario)
    monkeypatch.chdir(tmp_path)
    served = serve("scenarios/basic.yaml")
    answer = httpx.post(f"{served.base_url}/responses", json={"model": "gpt-4o", "input": "Hello!", "stream": True})
    assert answer.status_code == 418
    assert answer.headers["x-should-retry"] == "false"
    error = answer.json()["error"]
    assert error["code"] == "no_rule_matched"
    assert error["message"] + "\n" == NO_MATCH
