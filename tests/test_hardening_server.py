"""The server's edges (issue 11): the request body limit, shutdown on a signal, exposure beyond
loopback, and the headers of every error. Real clients against a real server (or a real
`mockllm serve` process); every wait is bounded."""

from __future__ import annotations

import json
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockllm import Engine
from mockllm.cli import base_url, exposure_warning
from mockllm.engine import DEFAULT_MAX_BODY_SIZE
from mockllm.server import BackgroundServer
from mockllm.transport import HOST, transport

USER = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": USER}
REQUEST_ID = re.compile(r"req_[0-9a-f]{32}")
LIMIT = 4096


@pytest.fixture
def limited(server: BackgroundServer) -> Iterator[tuple[str, Engine]]:
    """An engine with a 4 KiB body limit under a namespace of the session's server: (its /v1 URL, it)."""
    engine = Engine(time_scale=0, max_body_size=LIMIT)
    engine.add({"name": "hello", "reply": {"content": "hello"}})
    name = f"limit-{secrets.token_hex(8)}"
    server.namespaces[name] = engine
    yield f"{server.url}/ns/{name}/v1", engine
    server.namespaces.pop(name, None)


def chat_body(size: int) -> bytes:
    """A valid chat request of exactly `size` bytes."""
    head = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": ""}]}).encode()
    return head.replace(b'"content": ""', b'"content": "' + b"x" * (size - len(head)) + b'"')


def raw_exchange(url: str, head: bytes, parts: Sequence[bytes] = (), pause: float = 0.0) -> bytes:
    """Send `head` (the request line and headers) and `parts` over a socket, and read the answer
    until the server closes the connection (10 s at most)."""
    address = httpx.URL(url)
    with socket.create_connection((address.host, address.port), timeout=10) as sock:
        sock.sendall(head)
        for part in parts:
            time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed: what it sent is still to read
                break
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def head_of(url: str, path: str, headers: dict[str, str]) -> bytes:
    address = httpx.URL(url)
    lines = [f"POST {address.path}{path} HTTP/1.1", f"Host: {address.host}:{address.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_and_body(answer: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower(), body


# -- 1. the request body limit -----------------------------------------------------------------


def test_the_default_limit_is_32_mib() -> None:
    assert DEFAULT_MAX_BODY_SIZE == Engine().max_body_size == 32 * 1024 * 1024
    with pytest.raises(ValueError, match="max_body_size must be 0 or more bytes, got -1"):
        Engine(max_body_size=-1)


def test_a_body_at_the_limit_is_answered_one_past_it_is_refused_413(limited: tuple[str, Engine]) -> None:
    url, engine = limited
    at = httpx.post(url + "/chat/completions", content=chat_body(LIMIT), timeout=10)
    assert at.status_code == 200 and at.json()["choices"][0]["message"]["content"] == "hello"
    over = httpx.post(url + "/chat/completions", content=chat_body(LIMIT + 1), timeout=10)
    assert over.status_code == 413
    error = over.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "request_too_large", None)
    assert f"{LIMIT + 1} bytes, over mockllm's limit of {LIMIT} bytes" in error["message"]
    assert "--max-body-size" in error["message"]  # what to do about it
    assert over.headers["connection"] == "close"  # the rest of a refused body is never read
    # the journal has the refusal, without the body
    entry = engine.journal.last
    assert (entry.status, entry.body, entry.endpoint) == (413, b"", "chat")


def test_the_openai_sdk_sees_413_without_retrying(limited: tuple[str, Engine]) -> None:
    url, engine = limited
    with (
        openai.OpenAI(base_url=url, api_key="test", max_retries=2) as client,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 10_000}])
    assert caught.value.status_code == 413
    assert "Request body too large" in caught.value.message
    assert len(engine.journal) == 1  # 413 is no status the SDK retries


def test_responses_api_413_is_in_its_own_envelope(limited: tuple[str, Engine]) -> None:
    url, _ = limited
    over = httpx.post(url + "/responses", json={"model": "gpt-4o-mini", "input": "x" * 5000}, timeout=10)
    assert over.status_code == 413
    assert over.text.startswith('{\n    "error": {\n')  # the Responses API pretty-prints its errors
    assert over.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("declared", [10_000_000, LIMIT + 1])
@pytest.mark.parametrize("last", [True, False], ids=["length-last", "length-first"])
def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    limited: tuple[str, Engine], last: bool, declared: int
) -> None:
    """Content-Length says more than the limit and no body byte is sent: the answer comes at once (it would
    wait for the body if the server read it first). httpx sends the length last; other clients elsewhere."""
    url, _ = limited
    headers = {"Content-Length": str(declared), "Content-Type": "application/json"}
    if last:
        headers = dict(reversed(headers.items()))
    started = time.monotonic()
    answer = raw_exchange(url, head_of(url, "/chat/completions", headers))
    status, head, body = status_and_body(answer)
    assert status == 413 and b"connection: close" in head
    assert f"{declared} bytes, over mockllm's limit of 4096 bytes".encode() in body
    assert time.monotonic() - started < 5


def test_the_default_limit_over_the_server(server: BackgroundServer) -> None:
    declared = str(DEFAULT_MAX_BODY_SIZE + 1)
    answer = raw_exchange(
        server.url + "/v1", head_of(server.url + "/v1", "/chat/completions", {"Content-Length": declared})
    )
    assert status_and_body(answer)[0] == 413


def test_a_chunked_body_is_refused_once_past_the_limit(limited: tuple[str, Engine]) -> None:
    """Chunks of 1 KiB, without end: the server answers once it has more than 4 KiB, reading no more."""
    url, _ = limited
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    head = head_of(url, "/chat/completions", {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    answer = raw_exchange(url, head, [chunk] * 64, pause=0.01)  # never the last chunk: the body has no end
    status, head_bytes, body = status_and_body(answer)
    assert status == 413 and b"connection: close" in head_bytes
    assert b"more than 4096 bytes (sent in chunks)" in body


def test_chunked_bodies_under_the_limit_are_read_whole(limited: tuple[str, Engine]) -> None:
    url, _ = limited

    def parts() -> Iterator[bytes]:
        body = chat_body(3000)
        for at in range(0, len(body), 500):
            yield body[at : at + 500]

    answer = httpx.post(url + "/chat/completions", content=parts(), timeout=10)
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"] == "hello"


@pytest.mark.parametrize("library", ["httpx", "httpx2"])
def test_in_process_transports_refuse_it_too(library: str) -> None:
    lib = pytest.importorskip(library)
    engine = Engine(time_scale=0, max_body_size=LIMIT)
    engine.add({"reply": {"content": "hello"}})
    with lib.Client(transport=transport(engine, library=library), base_url=f"http://{HOST}/v1") as client:
        assert client.post("/chat/completions", content=chat_body(LIMIT)).status_code == 200
        over = client.post("/chat/completions", content=chat_body(LIMIT + 1))
    assert over.status_code == 413 and over.json()["error"]["code"] == "request_too_large"
    # Engine.handle is where they all go through; a model lookup is refused in OpenAI's envelope too
    models = engine.handle("GET", "/v1/models", {}, b"x" * (LIMIT + 1))
    assert models.status == 413 and json.loads(models.body)["error"]["code"] == "request_too_large"


# -- 4. the headers of every answer ------------------------------------------------------------


def wire_headers(response: httpx.Response) -> tuple[str, str]:
    request_id = response.headers.get("x-request-id", "")
    assert REQUEST_ID.fullmatch(request_id), f"{response.request.url} -> {response.status_code}: {response.headers}"
    return request_id, response.headers.get("openai-version", "")


def test_every_error_and_the_models_carry_request_id_and_version(server: BackgroundServer) -> None:
    engine = Engine(time_scale=0, max_body_size=LIMIT)
    engine.add({"name": "limited", "match": {"model": "limited"}, "times": 1, "reply": {"content": "once"}})
    engine.add({"name": "rate", "match": {"model": "rate"}, "reply": {"error": {"status": 429}}})
    engine.add({"name": "boom", "match": {"model": "boom"}, "reply": {"error": {"status": 500}}})
    name = f"wire-{secrets.token_hex(8)}"
    server.namespaces[name] = engine
    root = f"{server.url}/ns/{name}/v1"
    try:
        answers = {
            "400 bad json": httpx.post(root + "/chat/completions", content=b"{"),
            "413": httpx.post(root + "/chat/completions", content=chat_body(LIMIT + 1)),
            "418 no rule": httpx.post(root + "/chat/completions", json={**CHAT, "model": "other"}),
            "429 scripted": httpx.post(root + "/chat/completions", json={**CHAT, "model": "rate"}),
            "500 scripted": httpx.post(root + "/chat/completions", json={**CHAT, "model": "boom"}),
            "405": httpx.get(root + "/chat/completions"),
            "404 model": httpx.get(root + "/models/nope"),
            "404 stored response": httpx.get(root + "/responses/resp_nope"),
            "404 responses chain": httpx.post(
                root + "/responses", json={"model": "m", "input": "x", "previous_response_id": "resp_x"}
            ),
            "404 unknown path": httpx.get(server.url + "/v2/nothing"),
            "404 unknown namespace": httpx.get(f"{server.url}/ns/not-{name}/v1/models"),
            "200 models": httpx.get(root + "/models"),
            "200 model": httpx.get(root + "/models/limited"),
        }
    finally:
        server.namespaces.pop(name, None)
    statuses = {label: response.status_code for label, response in answers.items()}
    assert statuses == {label: int(label.split()[0]) for label in answers}
    ids = {label: wire_headers(response) for label, response in answers.items()}
    assert {label: version for label, (_, version) in ids.items()} == dict.fromkeys(answers, "2020-10-01")
    # one of its own each, from the engine that answered (ids are deterministic per engine: the session
    # server's default engine answers the unknown path and namespace)
    for labels in (
        [label for label in answers if "unknown" not in label],
        ["404 unknown path", "404 unknown namespace"],
    ):
        assert len({ids[label][0] for label in labels}) == len(labels)
    for label, response in answers.items():
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}, label


def test_405_says_what_the_path_takes(server: BackgroundServer) -> None:
    for method, path, allowed in [("GET", "/chat/completions", "POST"), ("DELETE", "/models", "GET")]:
        answer = httpx.request(method, f"{server.url}/v1{path}")
        assert (answer.status_code, answer.headers.get("allow")) == (405, allowed)
        assert answer.json()["error"]["code"] == "method_not_allowed"
        assert f"takes {allowed}" in answer.json()["error"]["message"]
    in_process = Engine().handle("PUT", "/v1/responses/resp_1", {}, b"")
    assert in_process.status == 405 and (b"allow", b"GET") in in_process.headers


def test_request_ids_of_errors_are_unique_and_the_same_on_every_run() -> None:
    def ids() -> list[str]:
        engine = Engine()
        return [
            dict(engine.handle("GET", path, {}, b"").headers)[b"x-request-id"].decode()
            for path in ["/v1/models/nope", "/v1/models/nope", "/v1/nothing", "/v1/models", "/v1/models/nope"]
        ]

    first = ids()
    assert len(set(first)) == len(first)  # before: every lookup of an unknown model had one id
    assert ids() == first  # deterministic, as every value the fake makes


# -- 3. exposure -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_hosts_need_no_warning(host: str) -> None:
    assert exposure_warning(host, 8000) is None


@pytest.mark.parametrize(
    ("host", "where"),
    [
        ("0.0.0.0", "every network interface"),
        ("::", "every network interface"),
        ("192.168.1.20", "the network of 192.168.1.20"),
        ("fe80::1%eth0", "the network of fe80::1%eth0"),
    ],
)
def test_other_hosts_get_one_line_saying_what_is_exposed(host: str, where: str) -> None:
    warning = exposure_warning(host, 8000)
    assert warning is not None and "\n" not in warning
    shown = f"[{host}]:8000" if ":" in host else f"{host}:8000"
    assert warning.startswith(f"mockllm: warning: listening on {shown}, {where}")
    assert "anyone who can reach this port gets answers" in warning and "checks no API key" in warning
    assert "--host 127.0.0.1" in warning  # how to restrict it
    keyed = exposure_warning(host, 8000, checks_key=True)
    assert keyed is not None and "checks no API key" not in keyed
    assert "anyone who can reach this port gets answers, and mockllm asks for the --require-api-key key" in keyed


def test_ipv6_urls_are_bracketed() -> None:
    assert base_url("::1", 8000) == "http://[::1]:8000/v1"
    assert base_url("::", 9) == "http://[::]:9/v1"
    assert base_url("127.0.0.1", 8000) == "http://127.0.0.1:8000/v1"


def test_plugin_namespaces_are_unguessable(mockllm: Any, mockllm_server: BackgroundServer) -> None:
    name = mockllm.base_url.split("/ns/", 1)[1].split("/", 1)[0]
    assert re.fullmatch(r"t\d+-[A-Za-z0-9_-]{22}", name), name  # readable first part, 128 random bits
    number = name.split("-", 1)[0]
    guessed = httpx.get(f"{mockllm_server.url}/ns/{number}/v1/models")  # the old, sequential name
    assert guessed.status_code == 404 and guessed.json()["error"]["code"] == "unknown_namespace"
    # what reaches the session server outside any namespace is not kept
    assert httpx.post(f"{mockllm_server.url}/v1/chat/completions", json=CHAT).status_code == 418
    assert len(mockllm_server.engine.journal) == 0


# -- 2. shutdown, and the command line's flags, with a real `mockllm serve` ----------------------

SLOW = """\
version: 1
rules:
  - name: short
    match: {user: {equals: short}}
    reply: {chunks: [a, b, c], timing: {ttft_ms: 50, chunk_ms: 250}}
  - name: long
    reply: {chunks: [a, b, c, d, e, f, g, h, i, j], timing: {ttft_ms: 50, chunk_ms: 10000}}
"""


class Served:
    """`python -m mockllm serve --port 0 ...` and the URL it printed (10 s to start at most)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        scenario = tmp_path / "slow.yaml"
        scenario.write_text(SLOW)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--scenarios", str(scenario), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.printed: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.printed.append(line)
            if "OPENAI_BASE_URL=" in line:
                self.url = line.strip().split("OPENAI_BASE_URL=", 1)[1]
                return
        self.proc.kill()
        raise AssertionError(f"mockllm serve did not start: {''.join(self.printed)}{self.proc.communicate()[1]}")

    def streams(self, users: list[str]) -> tuple[list[threading.Thread], list[tuple[str, bytes, float]]]:
        """One thread per user text, each streaming a chat answer; results: (how it ended, the bytes, when).
        Returns once every stream has its first bytes (10 s at most): all are in flight."""
        results: list[tuple[str, bytes, float]] = []
        started = threading.Semaphore(0)

        def one(user: str) -> None:
            got = b""
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": user}]}
            try:
                with httpx.stream("POST", self.url + "/chat/completions", json=body, timeout=15) as response:
                    for part in response.iter_raw():
                        if not got:
                            started.release()
                        got += part
                results.append(("end", got, time.monotonic()))
            except httpx.HTTPError as exc:
                results.append((type(exc).__name__, got, time.monotonic()))

        threads = [threading.Thread(target=one, args=(user,), daemon=True) for user in users]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        for _ in threads:
            assert started.acquire(timeout=max(0.0, deadline - time.monotonic())), "streams did not start in 10 s"
        return threads, results

    def wait(self, timeout: float) -> tuple[int | None, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            return None, err
        return self.proc.returncode, "".join(self.printed) + err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_gives_streams_a_grace_then_exits_0(tmp_path: Path, sig: signal.Signals) -> None:
    """20 streams: 10 end within the grace (whole, with [DONE]); 10 would take 100 s and are ended at
    its end, cleanly (the body closed where it stood: no [DONE], no drop, no hang). Before: still
    running 10 s after SIGTERM."""
    served = Served(tmp_path, "--shutdown-grace", "1", "--max-body-size", "2000")
    threads, results = served.streams(["short"] * 10 + ["long"] * 10)
    # the flag reached the engine: the server refuses a longer body (and answers while streaming)
    assert httpx.post(served.url + "/chat/completions", content=chat_body(2001), timeout=5).status_code == 413
    signalled = time.monotonic()
    served.proc.send_signal(sig)
    code, err = served.wait(timeout=8)
    took = time.monotonic() - signalled
    for thread in threads:
        thread.join(5)
    assert code == 0, err
    assert 0.9 < took < 3.0, took  # the grace, then at once
    assert "Traceback" not in err and "CancelledError" not in err and "ERROR" not in err, err
    assert not any(thread.is_alive() for thread in threads)  # no client hangs
    ends = sorted((how, body.endswith(b"data: [DONE]\n\n")) for how, body, _ in results)
    assert ends == [("end", False)] * 10 + [("end", True)] * 10
    assert any(when > signalled for how, _, when in results if how == "end")  # they ended in the grace
    with pytest.raises(httpx.ConnectError):  # and nothing listens any more
        httpx.get(served.url + "/models", timeout=2)


def test_a_second_signal_exits_at_once_and_silently(tmp_path: Path) -> None:
    """Before: a second Ctrl-C exited after printing a CancelledError traceback per stream."""
    served = Served(tmp_path, "--shutdown-grace", "30")
    threads, results = served.streams(["long"] * 20)
    served.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert served.proc.poll() is None  # in its grace
    signalled = time.monotonic()
    served.proc.send_signal(signal.SIGINT)
    code, err = served.wait(timeout=5)
    took = time.monotonic() - signalled
    for thread in threads:
        thread.join(5)
    assert code == -signal.SIGINT, err  # ended by the signal's default action: nothing could hold it
    assert took < 1.0, took
    assert "Traceback" not in err and "CancelledError" not in err, err
    assert [how for how, _, _ in results] == ["RemoteProtocolError"] * 20


def test_serve_on_ipv6_loopback_prints_a_url_that_works(tmp_path: Path) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    served = Served(tmp_path, "--host", "::1")
    try:
        assert re.fullmatch(r"http://\[::1\]:\d+/v1", served.url), served.url
        assert not any("warning" in line for line in served.printed)  # loopback: nothing to warn about
        assert httpx.get(served.url + "/models", timeout=5).json()["object"] == "list"
    finally:
        served.proc.send_signal(signal.SIGTERM)
        code, err = served.wait(timeout=10)
    assert code == 0, err


def test_the_socket_listens_before_the_server_starts() -> None:
    """`mockllm serve` prints its URL once the socket is bound; a client that connects at once must wait in
    the backlog, not be refused (it was, now and then, on IPv6: the server had not called listen yet)."""
    from mockllm.server import listen

    with listen("127.0.0.1", 0) as sock, socket.create_connection(sock.getsockname()[:2], timeout=2):
        pass  # queued: no server has accepted yet, and none needs to for the connection to be made
