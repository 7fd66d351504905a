"""Scenario `limits`: quotas that count down as a provider's do, each API's 429, and backoff verdicts.

The arithmetic runs on an Engine with an injected clock (no waiting); the SDK tests run the real
clients against the fixture's server with a 1-second window, so the one retry they wait is 1 s.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mockllm import Answer, Engine, Remote, ScenarioError, load_text
from mockllm.backoff import TOLERANCE, unhonoured_report
from mockllm.quota import duration, rfc3339

CHAT = "/v1/chat/completions"
KEY_A = {"authorization": "Bearer key-a"}
KEY_B = {"authorization": "Bearer key-b"}


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine_with(limits: str, rules: str = "rules: [{reply: {content: hi}}]") -> tuple[Engine, Clock]:
    clock = Clock()
    engine = Engine(clock=clock)
    engine.use(load_text(f"version: 1\nlimits:\n{limits}\n{rules}\n", "q.yaml"))
    return engine, clock


def chat(model: str = "gpt-4o", text: str = "hello", max_tokens: int | None = None) -> bytes:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return json.dumps(body).encode()


def send(engine: Engine, body: bytes, headers: dict[str, str] | None = None, path: str = CHAT) -> Answer:
    return engine.handle("POST", path, headers if headers is not None else KEY_A, body)


def rate(answer: Answer) -> dict[str, str]:
    """The answer's rate-limit and retry headers."""
    return {
        k.decode(): v.decode()
        for k, v in answer.headers
        if b"ratelimit" in k or k in (b"retry-after", b"retry-after-ms", b"x-should-retry")
    }


# -- the arithmetic --------------------------------------------------------------------------------


def test_requests_count_down_and_retry_after_is_when_the_window_frees() -> None:
    engine, clock = engine_with('  - {model: "gpt-4o*", requests_per_minute: 3, window_s: 10}')
    remaining = []
    for _ in range(3):
        answer = send(engine, chat())
        assert answer.status == 200
        remaining.append(rate(answer)["x-ratelimit-remaining-requests"])
        clock.now += 2.5
    assert remaining == ["2", "1", "0"]
    # The window started with the first request (t=1000) and frees at 1010; it is now 1007.5.
    refused = send(engine, chat())
    assert refused.status == 429
    assert rate(refused) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2.5s",
        "retry-after": "3",  # 2.5 s rounded up: waiting it is enough
    }
    assert json.loads(refused.body) == {
        "error": {
            "message": "Rate limit reached for gpt-4o in organization org-mockllm on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1. Please try again in 2.5s. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    clock.now = 1009.999  # a millisecond before the window frees: still refused, and it says so
    almost = send(engine, chat())
    assert (almost.status, rate(almost)["x-ratelimit-reset-requests"], rate(almost)["retry-after"]) == (429, "1ms", "1")
    clock.now = 1010.0  # the moment it frees: admitted, into a new window
    freed = send(engine, chat())
    assert freed.status == 200
    assert rate(freed)["x-ratelimit-remaining-requests"] == "2"
    assert rate(freed)["x-ratelimit-reset-requests"] == "10s"
    assert [e.status for e in engine.journal] == [200, 200, 200, 429, 429, 200]
    assert engine.journal[3].error == "over the limit at q.yaml:3: 3 requests per 10 s (3 used, 1 requested)"


def test_refused_requests_are_not_counted_and_no_rule_sees_them() -> None:
    engine, clock = engine_with(
        "  - {requests_per_minute: 1, window_s: 5}", "rules: [{name: seq, replies: [{content: one}, {content: two}]}]"
    )
    assert json.loads(send(engine, chat()).body)["choices"][0]["message"]["content"] == "one"
    for _ in range(3):
        assert send(engine, chat()).status == 429
    clock.now += 5
    answer = send(engine, chat())
    assert json.loads(answer.body)["choices"][0]["message"]["content"] == "two"  # the sequence did not move
    assert [e.rule for e in engine.journal] == ["seq", None, None, None, "seq"]


def test_tokens_count_the_prompt_and_the_output_asked_for() -> None:
    engine, clock = engine_with("  - {tokens_per_minute: 100, window_s: 60}")
    first = send(engine, chat(max_tokens=40))  # "hello": 7 prompt tokens (3 per message + 3 + 1), + 40
    assert first.status == 200
    assert rate(first) == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "53",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    clock.now += 30
    refused = send(engine, chat(max_tokens=50))
    assert refused.status == 429
    error = json.loads(refused.body)["error"]
    assert error["type"] == "tokens"
    assert error["message"].startswith(
        "Rate limit reached for gpt-4o in organization org-mockllm on tokens per min (TPM): "
        "Limit 100, Used 47, Requested 57. Please try again in 30s."
    )
    assert rate(refused)["retry-after"] == "30"
    assert send(engine, chat(max_tokens=46)).status == 200  # 53 fits exactly
    assert rate(send(engine, chat()))["x-ratelimit-remaining-tokens"] == "0"  # 7 more: over


def test_a_request_bigger_than_the_whole_quota_is_told_it_can_never_pass() -> None:
    engine, _ = engine_with("  - {tokens_per_minute: 100}")
    answer = send(engine, chat(max_tokens=500))
    assert answer.status == 429
    assert "retry-after" not in rate(answer)
    assert rate(answer)["x-should-retry"] == "false"
    assert json.loads(answer.body)["error"]["message"].startswith(
        "Request too large for gpt-4o in organization org-mockllm on tokens per min (TPM): Limit 100, Requested 507. "
        "The input or output tokens must be reduced in order to run successfully."
    )
    assert engine.journal[0].retry_after is None
    assert send(engine, chat(max_tokens=10)).status == 200  # it counted nothing


def test_per_model_each_model_has_its_own_window_and_the_glob_picks_them() -> None:
    engine, _ = engine_with('  - {model: "gpt-4o*", requests_per_minute: 1}')
    assert send(engine, chat("gpt-4o")).status == 200
    assert send(engine, chat("gpt-4o-mini")).status == 200  # a window of its own
    assert send(engine, chat("gpt-4o", "again")).status == 429
    assert send(engine, chat("gpt-4o", "again"), KEY_B).status == 429  # per model: whoever asks
    other = send(engine, chat("o3"))
    assert other.status == 200
    assert rate(other)["x-ratelimit-limit-requests"] == "500"  # no limit applies: the usual placeholder headers


def test_per_api_key_each_key_has_its_own_window_over_every_model() -> None:
    engine, _ = engine_with("  - {per: api_key, requests_per_minute: 2}")
    assert send(engine, chat("gpt-4o"), KEY_A).status == 200
    assert send(engine, chat("o3"), KEY_A).status == 200
    assert send(engine, chat("gpt-4o-mini"), KEY_A).status == 429  # the key's two, over any model
    assert send(engine, chat("gpt-4o"), KEY_B).status == 200
    assert send(engine, chat("gpt-4o"), {"x-api-key": "key-a"}).status == 429  # the same key, Anthropic's header
    assert send(engine, chat("gpt-4o"), {}).status == 200  # no key: the keyless share one window


def test_every_applicable_limit_must_admit_and_the_headers_say_the_tightest() -> None:
    engine, clock = engine_with(
        "  - {per: api_key, requests_per_minute: 10, tokens_per_minute: 1000, window_s: 60}\n"
        '  - {model: "gpt-4o", requests_per_minute: 2, window_s: 20}'
    )
    first = rate(send(engine, chat()))
    assert (first["x-ratelimit-remaining-requests"], first["x-ratelimit-remaining-tokens"]) == ("1", "993")
    assert first["x-ratelimit-reset-requests"] == "20s"
    send(engine, chat())
    clock.now += 5
    refused = send(engine, chat())
    assert (refused.status, rate(refused)["retry-after"]) == (429, "15")  # the model's window frees at 20 s
    assert send(engine, chat("gpt-4o-mini")).status == 200  # the key's limit still had room, and counted only admits
    assert rate(send(engine, chat("gpt-4o-mini")))["x-ratelimit-remaining-requests"] == "6"


def test_reset_frees_every_window() -> None:
    engine, _ = engine_with("  - {requests_per_minute: 1}")
    send(engine, chat())
    assert send(engine, chat()).status == 429
    engine.reset()
    assert send(engine, chat()).status == 200


def test_a_million_keys_keep_a_bounded_number_of_windows() -> None:
    engine, _ = engine_with("  - {per: api_key, requests_per_minute: 1}")
    engine.quotas.max_keys = 100
    kept = {"authorization": "Bearer kept"}
    send(engine, chat(), kept)
    for n in range(2000):
        send(engine, chat(), {"authorization": f"Bearer k{n}"})
        if n % 50 == 0:
            assert send(engine, chat(), kept).status == 429  # used recently: its window is kept
    assert len(engine.quotas) == 100
    assert send(engine, chat(), {"authorization": "Bearer k0"}).status == 200  # dropped long ago: a fresh window


def test_concurrent_requests_are_counted_exactly() -> None:
    engine, _ = engine_with("  - {requests_per_minute: 100}")
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(40):
            status = send(engine, chat()).status
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (statuses.count(200), statuses.count(429)) == (100, 140)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.12, "120ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (20.0871, "20.088s"),
        (360, "6m0s"),
        (90.5, "1m30.5s"),
        (3600, "1h0m0s"),
    ],
)
def test_reset_durations_read_as_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_anthropic_headers_and_envelope() -> None:
    engine, clock = engine_with("  - {requests_per_minute: 1, tokens_per_minute: 5000, window_s: 30}")
    body = json.dumps({"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    before = time.time()
    ok = send(engine, body.encode(), {"x-api-key": "a"}, "/v1/messages")
    headers = rate(ok)
    assert {k: v for k, v in headers.items() if not k.endswith("-reset")} == {
        "anthropic-ratelimit-requests-limit": "1",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-tokens-limit": "5000",
        "anthropic-ratelimit-tokens-remaining": "4893",
    }
    reset = datetime.strptime(headers["anthropic-ratelimit-requests-reset"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert before + 30 <= reset <= time.time() + 31  # RFC 3339, rounded up to the second
    clock.now += 10
    refused = send(engine, body.encode(), {"x-api-key": "a"}, "/v1/messages")
    assert (refused.status, rate(refused)["retry-after"]) == (429, "20")
    envelope = json.loads(refused.body)
    assert envelope["type"] == "error" and envelope["error"]["type"] == "rate_limit_error"
    assert "of 1 requests per minute" in envelope["error"]["message"]
    assert envelope["request_id"].startswith("req_")


def test_gemini_sends_no_headers_and_a_resource_exhausted_with_its_details() -> None:
    engine, clock = engine_with("  - {requests_per_minute: 1, window_s: 10}")
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
    assert rate(send(engine, body, {"x-goog-api-key": "g"}, path)) == {}
    clock.now += 8.5
    refused = send(engine, body, {"x-goog-api-key": "g"}, path)
    assert (refused.status, rate(refused)) == (429, {})
    error = json.loads(refused.body)["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert error["message"].endswith("limit: 1, model: gemini-2.5-flash\nPlease retry in 1.5s.")
    help_link, failure, retry = error["details"]
    assert help_link["@type"] == "type.googleapis.com/google.rpc.Help"
    assert failure["violations"][0]["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
    assert failure["violations"][0]["quotaDimensions"] == {"location": "global", "model": "gemini-2.5-flash"}
    assert retry == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
    assert engine.journal[1].retry_after == 2.0


def test_responses_errors_keep_their_own_layout() -> None:
    engine, _ = engine_with("  - {requests_per_minute: 1}")
    body = json.dumps({"model": "gpt-4o", "input": "hi"}).encode()
    send(engine, body, path="/v1/responses")
    refused = send(engine, body, path="/v1/responses")
    assert refused.status == 429
    assert refused.body.startswith(b'{\n    "error": {')  # the Responses API's 4-space errors
    assert json.loads(refused.body)["error"]["code"] == "rate_limit_exceeded"


# -- scenario errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (
            "  - {requests_per_minut: 3}",
            "bad.yaml:3: limits[0].requests_per_minut: unknown key (did you mean 'requests_per_minute'?); "
            "expected one of: model, per, requests_per_minute, tokens_per_minute, window_s",
        ),
        ("  - {model: gpt-4o}", "bad.yaml:3: limits[0]: expected requests_per_minute, tokens_per_minute or both"),
        (
            "  - requests_per_minute: 3\n    window_s: 0",
            "bad.yaml:4: limits[0].window_s: expected a number > 0.0, got 0",
        ),
        (
            "  - {requests_per_minute: 1}\n  - {requests_per_minute: 3, per: org}",
            "bad.yaml:4: limits[1].per: expected 'model' or 'api_key', got 'org'",
        ),
        ("  - {requests_per_minute: 0}", "bad.yaml:3: limits[0].requests_per_minute: expected a number >= 1, got 0"),
    ],
)
def test_a_bad_limit_names_file_line_and_key(limits: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(f"version: 1\nlimits:\n{limits}\nrules: [{{reply: {{content: hi}}}}]\n", "bad.yaml")
    assert str(info.value) == expected


def test_limits_after_the_rules_load_too() -> None:
    scenario = load_text("version: 1\nrules: [{reply: {content: hi}}]\nlimits: [{requests_per_minute: 2}]\n", "a.yaml")
    (limit,) = scenario.limits
    assert (limit.requests, limit.window, limit.per, limit.origin) == (2, 60, "model", "a.yaml:3")


# -- backoff verdicts, on the injected clock ------------------------------------------------------


def test_a_retry_is_judged_against_what_the_refusal_asked() -> None:
    engine, clock = engine_with("  - {requests_per_minute: 1, window_s: 4}")
    send(engine, chat())
    clock.now += 1
    assert send(engine, chat()).status == 429  # asks 3 s
    clock.now += 0.5
    assert send(engine, chat("gpt-4o", "another question")).status == 429  # not the same request: no verdict
    clock.now += 1
    assert send(engine, chat()).status == 429  # the retry, 1.5 s after: too soon, and refused again
    clock.now += 3 - TOLERANCE / 2
    assert send(engine, chat()).status == 200  # within the tolerance of the 3 s the last refusal asked
    journal = list(engine.journal)
    assert [e.retry_after for e in journal] == [None, 3.0, 3.0, 2.0, None]
    assert [e.backoff for e in journal] == [
        None,
        None,
        None,
        {"after": 1, "asked": 3.0, "waited": 1.5, "honoured": False},
        {"after": 3, "asked": 2.0, "waited": 2.975, "honoured": True},
    ]


def test_scripted_errors_that_ask_for_a_wait_are_judged_too() -> None:
    clock = Clock()
    engine = Engine(clock=clock, time_scale=0)
    engine.add(
        {
            "match": {"user": {"contains": "flaky"}},
            "replies": [
                {"error": {"status": 503, "headers": {"retry-after": "2"}}},
                {"error": {"status": 429, "headers": {"retry-after-ms": "500", "retry-after": "9"}}},
                {"error": {"status": 429}},  # OpenAI's default retry-after: 1
                {"content": "ok"},
            ],
        }
    )
    body = chat(text="flaky")
    for wait in (0, 2.5, 0.1, 0.2):
        clock.now += wait
        send(engine, body)
    assert [e.status for e in engine.journal] == [503, 429, 429, 200]
    assert [e.retry_after for e in engine.journal] == [2.0, 0.5, 1.0, None]  # retry-after-ms first, as the SDKs
    assert [e.backoff["honoured"] if e.backoff else None for e in engine.journal] == [None, True, False, False]
    report = unhonoured_report([_plain(e) for e in engine.journal])
    assert report is not None
    assert report.splitlines()[1:] == [
        "  #2 chat /v1/chat/completions: waited 0.100s, asked 0.500s by #1 (429: <inline>:rules[0])",
        "  #3 chat /v1/chat/completions: waited 0.200s, asked 1.000s by #2 (429: <inline>:rules[0])",
    ]


def _plain(entry: Any) -> dict[str, Any]:
    return {k: getattr(entry, k) for k in ("index", "endpoint", "path", "status", "rule", "error", "retry_after")} | {
        "backoff": entry.backoff
    }


def test_no_retry_at_all_is_reported_unless_allowed() -> None:
    engine, _ = engine_with("  - {requests_per_minute: 1}")
    send(engine, chat())
    send(engine, chat("gpt-4o", "other"))
    entries = [_plain(e) for e in engine.journal]
    report = unhonoured_report(entries)
    assert report is not None and report.startswith("mockllm: no request retried a refused one: #1 (429, retry-after")
    assert unhonoured_report(entries, allow_none=True) is None


# -- real clients ---------------------------------------------------------------------------------

QUOTA = {
    "version": 1,
    "limits": [{"requests_per_minute": 1, "window_s": 1}],
    "rules": [{"name": "answer", "reply": {"content": "fine"}}],
}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_the_openai_sdk_raises_rate_limit_error_with_the_headers(mockllm: Any) -> None:
    import openai

    mockllm.add(QUOTA)
    client = mockllm.client(max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=user("one"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o", messages=user("two"))
    error = info.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.body["type"] == "requests" and error.body["code"] == "rate_limit_exceeded"
    assert error.request_id is not None


@pytest.mark.parametrize("mode", [pytest.param(m, marks=pytest.mark.mockllm(mode=m)) for m in ("server", "inprocess")])
def test_the_openai_sdk_waits_retry_after_and_the_verdict_says_it_honoured(mockllm: Any, mode: str) -> None:
    mockllm.add(QUOTA)
    client = mockllm.client(max_retries=2)
    client.chat.completions.create(model="gpt-4o", messages=user("one"))
    started = time.monotonic()
    answer = client.chat.completions.create(model="gpt-4o", messages=user("two"))  # 429, then the SDK's retry
    elapsed = time.monotonic() - started
    assert answer.choices[0].message.content == "fine"
    assert elapsed >= 1.0  # the retry-after it was given
    statuses = [e.status for e in mockllm.requests]
    assert statuses == [200, 429, 200]
    retry = mockllm.requests[2]
    assert retry.headers["x-stainless-retry-count"] == "1"
    assert retry.backoff["after"] == 1 and retry.backoff["asked"] == 1.0 and retry.backoff["honoured"]
    assert retry.backoff["waited"] >= 1.0
    mockllm.assert_backoff_honoured()


def test_an_app_that_ignores_retry_after_fails_the_verdict(mockllm: Any) -> None:
    mockllm.add(QUOTA)
    body = {"model": "gpt-4o", "messages": user("impatient")}
    with httpx.Client(base_url=mockllm.base_url, headers={"authorization": "Bearer k"}) as raw:
        statuses = [raw.post("/chat/completions", json=body).status_code for _ in range(3)]  # no wait at all
    assert statuses == [200, 429, 429]
    with pytest.raises(AssertionError) as info:
        mockllm.assert_backoff_honoured()
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "mockllm: 1 of 1 retried request(s) came sooner than retry-after asked "
        "(a retry must wait at least what the refused answer asked, less 50 ms):"
    )
    # The limit's origin is where the test added it (mockllm.add names its caller's file:line).
    assert re.fullmatch(
        r"  #2 chat \S*/v1/chat/completions: waited \d\.\d{3}s, asked 1\.000s by #1 "
        r"\(429: over the limit at test_quotas\.py:\d+: 1 requests per 1 s \(1 used, 1 requested\)\)",
        lines[1],
    ), lines[1]
    assert len(lines) == 2  # #2 was the one retry (of #1); nothing retried #2
    assert mockllm.requests[2].backoff["waited"] < 1.0 - TOLERANCE


def test_the_anthropic_sdk_raises_rate_limit_error_with_its_headers(mockllm: Any) -> None:
    import anthropic

    mockllm.add(QUOTA)
    client = mockllm.anthropic_client(max_retries=0)
    client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=user("one"))
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=user("two"))
    error = info.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    reset = error.response.headers["anthropic-ratelimit-requests-reset"]
    assert datetime.strptime(reset, "%Y-%m-%dT%H:%M:%S%z").tzinfo == UTC
    assert error.body["error"]["type"] == "rate_limit_error"


def test_google_genai_raises_resource_exhausted_with_retry_info(mockllm: Any) -> None:
    from google.genai import errors

    mockllm.add(QUOTA)
    client = mockllm.gemini_client()
    client.models.generate_content(model="gemini-2.5-flash", contents="one")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="two")
    error = info.value
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    details = error.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"} in details


def test_the_control_api_asserts_the_verdict_too(server: Any) -> None:
    engine = Engine()
    engine.add(QUOTA)
    server.namespaces["quota-remote"] = engine
    try:
        body = {"model": "gpt-4o", "messages": user("hi")}
        url = f"{server.url}/ns/quota-remote/v1/chat/completions"
        assert [httpx.post(url, json=body).status_code for _ in range(3)] == [200, 429, 429]
        with pytest.raises(AssertionError, match=r"#2 chat /ns/quota-remote/v1/chat/completions: waited"):
            Remote(server.url, namespace="quota-remote").assert_backoff_honoured()
    finally:
        del server.namespaces["quota-remote"]


def test_rfc3339_is_utc_and_whole_seconds() -> None:
    text = rfc3339(0.2)
    assert text.endswith("Z") and len(text) == len("2025-01-01T00:00:01Z")


def test_a_gemini_key_in_the_query_names_its_window(mockllm: Any) -> None:
    """google-genai sends `x-goog-api-key`, other Gemini clients `?key=`: either names the key's window."""
    import httpx

    mockllm.add({**QUOTA, "limits": [{"per": "api_key", "requests_per_minute": 1}]})
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    url = f"{mockllm.gemini_base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    with httpx.Client() as http:
        assert http.post(f"{url}?key=one", json=body).status_code == 200
        assert http.post(f"{url}?key=one", json=body).status_code == 429
        assert http.post(f"{url}?key=two", json=body).status_code == 200
        assert http.post(url, json=body, headers={"x-goog-api-key": "two"}).status_code == 429
