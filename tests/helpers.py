"""What several test modules share: paths, installed releases, wire shapes and the same-bytes reference.

A plain module, imported as `helpers` (pytest puts tests/ on sys.path for tests/conftest.py):
test modules import from here, never from conftest (whose fixtures pytest hands out) nor from
one another (importing a test module runs its module-level code and re-collects nothing).
"""

from __future__ import annotations

import copy
import json
import re
import socket
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "LITELLM_FAILS_WITHOUT_FINISH",
    "PLUGIN_SCENARIOS",
    "README",
    "RESPONSE_EVENT_SCHEMAS",
    "ROOT",
    "SCENARIOS",
    "TRANSPORT_HEADERS",
    "asking",
    "bundled_rules",
    "chat_usage",
    "faulted",
    "fetch_bytes",
    "http_chunks",
    "openai_schema_defs",
    "readme_blocks",
    "reference_bytes",
    "release",
]

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"  # the bundled scenarios, what `mockllm serve` serves
PLUGIN_SCENARIOS = ROOT / "tests" / "plugin" / "scenarios"
README = ROOT / "README.md"


def release(package: str) -> tuple[int, ...]:
    """The installed release of `package` as numbers (1.109.2 -> (1, 109, 2)); () if not installed."""
    try:
        text = version(package)
    except PackageNotFoundError:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


# litellm 1.109 stopped inventing a "stop" for a stream that ends with no finish_reason at all: it
# raises MidStreamFallbackError("... Stream ended before a finish_reason was received") instead.
LITELLM_FAILS_WITHOUT_FINISH = release("litellm") >= (1, 109)


def chat_usage(prompt: int, completion: int) -> dict[str, Any]:
    """A Chat Completions `usage` object as OpenAI sends it (the details zero)."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def readme_blocks(title: str) -> list[str]:
    """The fenced code blocks of README.md's `## title` section, in order, as written."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, f"README.md has no '## {title}' section"
    return re.findall(r"```\w*\n(.*?)```", found.group(1), re.S)


# -- the same bytes through every adapter (tests/plugin/test_same_bytes.py, test_httpx2.py) -----------

# Headers the HTTP layer adds or frames differently, not the Engine's.
TRANSPORT_HEADERS = {"date", "server", "transfer-encoding", "content-length"}


def _same_bytes_request(stream: bool) -> bytes:
    body: dict[str, object] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "same bytes please"}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def reference_bytes(stream: bool) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    """What the Engine itself answers to the same-bytes request (tests/plugin/scenarios/bytes.yaml):
    status, headers and the body write by write."""
    from mockllm import Engine

    engine = Engine(PLUGIN_SCENARIOS / "bytes.yaml", seed=0, time_scale=0)
    answer = engine.chat(_same_bytes_request(stream), {"content-type": "application/json"})
    writes = [w.data for w in answer.writes] if answer.writes is not None else [answer.body]
    return answer.status, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.headers], writes


def fetch_bytes(client: Any, base_url: str, stream: bool) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    """The same-bytes request sent by an httpx or httpx2 client: status, headers (but the transport's)
    and body chunks."""
    url = f"{base_url}/chat/completions"
    content = _same_bytes_request(stream)
    with client.stream("POST", url, content=content, headers={"content-type": "application/json"}) as response:
        chunks = [c for c in response.iter_raw() if c]
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in TRANSPORT_HEADERS]
    return response.status_code, headers, chunks


FAULT_TEXT = "one two three four five"  # five chunks: "one", " two", " three", " four", " five"


def faulted(kind: str, after: int = 0, **extra: Any) -> dict[str, Any]:
    """A scenario: model "faulty" streams FAULT_TEXT with the fault; model "healthy" answers normally
    (every API: the rules name no endpoint)."""
    return {
        "rules": [
            {
                "name": "faulty",
                "match": {"model": "faulty"},
                "reply": {"content": FAULT_TEXT, "fault": {"kind": kind, "after_chunks": after, **extra}},
            },
            {"name": "healthy", "match": {"model": "healthy"}, "reply": {"content": "all good"}},
        ]
    }


def http_chunks(url: str, body: dict[str, Any]) -> list[bytes]:
    """The HTTP/1.1 chunks of the answer to POST `body` at `url`, one per network write, read with
    a bare socket (a client library would join or split them)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    payload = json.dumps(body).encode()
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + payload)
        data = bytearray()
        while piece := sock.recv(65536):
            data += piece
    headers, _, rest = bytes(data).partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in headers.lower()
    chunks: list[bytes] = []
    while rest:  # empty before the last chunk: the server dropped the connection (a fault)
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return chunks
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    return chunks


# -- the bundled rules, as written, and a request each one answers ------------------------------------

# A text each regex rule's `match.user` accepts (a rule added without one fails the tests using these).
REGEX_EXAMPLES = {"count-to-100": "Please COUNT TO 100 for me"}


def bundled_rules(endpoint: str) -> list[tuple[str, dict[str, Any]]]:
    """(file, rule) of every bundled rule whose `match.endpoint` leaves `endpoint` in, from the YAML
    as written (yaml.safe_load: the test does not read them through the code it tests)."""
    import yaml

    found = []
    for path in sorted(p for p in SCENARIOS.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        for rule in yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]:
            named = (rule.get("match") or {}).get("endpoint")
            if named is None or endpoint in ([named] if isinstance(named, str) else named):
                found.append((path.relative_to(SCENARIOS).as_posix(), rule))
    return found


def asking(rule: dict[str, Any], default_model: str) -> tuple[str, str]:
    """The model and the user text that select `rule` (other conditions are not used by bundled rules)."""
    match: dict[str, Any] = rule.get("match") or {}
    model = str(match.get("model") or default_model)
    user: dict[str, str] = match.get("user") or {}
    if "regex" in user:
        assert rule["name"] in REGEX_EXAMPLES, f"give REGEX_EXAMPLES in tests/helpers.py a text for {rule['name']}"
        return model, REGEX_EXAMPLES[str(rule["name"])]
    return model, user.get("equals") or user.get("contains") or "Tell me about the weather."


# -- OpenAI's schemas, as live traffic reads them --------------------------------------------------


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


@cache
def openai_schema_defs() -> dict[str, Any]:
    """The $defs of tests/data/openai-schemas.json (OpenAI's OpenAPI description, extracted), with the few
    changes where live traffic and the OAS disagree."""
    defs = copy.deepcopy(json.loads((ROOT / "tests" / "data" / "openai-schemas.json").read_text())["$defs"])
    # Where the 2026 OAS and live traffic disagree, live traffic wins (dialects.md section 1):
    # - "Usage": terminal objects only, else `"usage": null`; the OAS Response.usage is not nullable.
    # - "Usage": input_tokens_details is {"cached_tokens": 0}; the OAS also requires cache_write_tokens.
    # - the body's key list has `user`, null when not sent (live: `"user":null`); the OAS has `user: string`.
    response = defs["Response"]["allOf"][2]["properties"]
    response["usage"] = _allow_null(response["usage"])
    defs["ModelResponseProperties"]["properties"]["user"] = _allow_null(
        defs["ModelResponseProperties"]["properties"]["user"]
    )
    details = defs["ResponseUsage"]["properties"]["input_tokens_details"]
    details["required"] = [name for name in details["required"] if name != "cache_write_tokens"]
    # - response.function_call_arguments.done has no `name` in live traffic (pydantic-ai's 2026 capture
    #   tests/models/cassettes/test_openai_responses/test_openai_responses_stream.yaml; openai 3.x's
    #   type dropped it too), though the OAS (and openai 2.x's type) require it.
    done = defs["ResponseFunctionCallArgumentsDoneEvent"]
    done["required"] = [name for name in done["required"] if name != "name"]
    return defs


# The Responses API's events, by name, and the OAS schema of each.
RESPONSE_EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    # "error" is left out: the OAS documents a flat {"type":"error","code","message",...}, live
    # traffic (and this fake) sends the nested {"type":"error","error":{...}} (dialects.md section 1).
}
