"""Who may use the control API (loopback, or the admin token beyond it), and `--require-api-key`: each SDK
gets its provider's own auth error. Real servers, real clients, loopback connections only (a server bound
to 0.0.0.0 is reached at 127.0.0.1)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from mockllm import Engine
from mockllm.server import BackgroundServer

KEY = "sk-abcdefghijklmnopxyz"
TOKEN = "admin-s3cret"
RULE = {"name": "hi", "reply": {"content": "Hello."}}
MESSAGES = [{"role": "user", "content": "hi"}]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    method: str, url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _NO_PROXY.open(request, timeout=10) as response:
            status, got, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, exc.headers, exc.read()
        exc.close()
    return status, {k.lower(): v for k, v in got.items()}, json.loads(raw) if raw.startswith((b"{", b"[")) else raw


def loopback_url(server: BackgroundServer) -> str:
    return f"http://127.0.0.1:{server.port}"


# -- the guard ------------------------------------------------------------------------------------


def test_on_loopback_without_a_token_the_control_api_is_open() -> None:
    with BackgroundServer(Engine()) as server:
        assert call("GET", f"{server.url}/_mockllm/rules")[:3:2] == (200, {"rules": []})
        assert call("POST", f"{server.url}/_mockllm/reset")[0] == 200


def test_beyond_loopback_without_a_token_every_control_route_is_403() -> None:
    engine = Engine(time_scale=0)
    engine.add(RULE)
    with BackgroundServer(engine, host="0.0.0.0") as server:
        url = loopback_url(server)
        for method, path in (("GET", "rules"), ("GET", "journal"), ("POST", "reset"), ("GET", "version")):
            status, _, body = call(method, f"{url}/_mockllm/{path}")
            assert status == 403, (path, body)
            assert body["error"]["code"] == "admin_token_required" and "--admin-token" in body["error"]["message"]
        assert call("GET", f"{url}/_mockllm/ns/anything/rules")[0] == 403  # namespaces are not revealed either
        # health says nothing, and containers poll it: it answers. So do the inspector's page and files,
        # which hold no data (the page's own requests for it are refused).
        assert call("GET", f"{url}/_mockllm/health")[:3:2] == (200, {"status": "ok"})
        for path in ("", "inspector/inspector.js"):
            assert urllib.request.urlopen(f"{url}/_mockllm/{path}").status == 200
        assert len(engine.router.rules) == 1  # the reset was refused
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="any", max_retries=0)  # the provider routes answer
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "Hello."  # type: ignore[arg-type]


def test_beyond_loopback_the_admin_token_opens_it() -> None:
    with BackgroundServer(Engine(), host="0.0.0.0", admin_token=TOKEN) as server:
        url = f"{loopback_url(server)}/_mockllm/rules"
        status, headers, body = call("GET", url)
        assert (status, body["error"]["code"], headers["www-authenticate"]) == (401, "admin_token_invalid", "Bearer")
        assert "no Authorization header" in body["error"]["message"]
        status, _, body = call("GET", url, headers={"authorization": "Bearer wrong"})
        assert status == 401 and "a wrong admin token" in body["error"]["message"]
        assert call("GET", url, headers={"authorization": TOKEN})[0] == 401  # not a Bearer
        assert call("GET", url, headers={"authorization": f"Bearer {TOKEN}"})[:3:2] == (200, {"rules": []})
        server.namespaces["ns1"] = Engine()
        bearer = {"authorization": f"Bearer {TOKEN}"}
        assert call("GET", f"{loopback_url(server)}/_mockllm/ns/ns1/journal", headers=bearer)[0] == 200


def test_on_loopback_a_token_is_asked_for_too() -> None:
    with BackgroundServer(Engine(), admin_token=TOKEN) as server:
        assert call("GET", f"{server.url}/_mockllm/journal")[0] == 401
        assert call("GET", f"{server.url}/_mockllm/journal", headers={"authorization": f"bearer {TOKEN}"})[0] == 200


# -- --require-api-key ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed() -> Iterator[BackgroundServer]:
    engine = Engine(time_scale=0, api_key=KEY)
    engine.add(RULE)
    with BackgroundServer(engine) as server:
        yield server


def test_openai_sdk_wrong_key_is_its_authentication_error(keyed: BackgroundServer) -> None:
    client = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="sk-wrongwrongwrongyz", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
    error = caught.value
    assert error.status_code == 401 and error.code == "invalid_api_key" and error.type == "invalid_request_error"
    assert error.body == {
        "message": "Incorrect API key provided: sk-wr***yz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert keyed.engine.journal.last.status == 401 and keyed.engine.journal.last.rule is None
    right = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY, max_retries=0)
    assert right.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "Hello."  # type: ignore[arg-type]
    # Every OpenAI API: Responses, legacy completions, embeddings.
    with pytest.raises(openai.AuthenticationError):
        client.responses.create(model="m", input="hi")
    with pytest.raises(openai.AuthenticationError):
        client.completions.create(model="m", prompt="hi")
    with pytest.raises(openai.AuthenticationError):
        client.embeddings.create(model="m", input="hi")
    assert right.responses.create(model="m", input="hi").output_text == "Hello."


def test_a_missing_key_says_so(keyed: BackgroundServer) -> None:
    status, _, body = call("POST", f"{keyed.url}/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert status == 401 and body["error"]["code"] is None and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("You didn't provide an API key. You need to provide your API key in an ")


def test_azure_sends_the_key_as_api_key(keyed: BackgroundServer) -> None:
    for key, works in ((KEY, True), ("wrong-key-here", False)):
        azure = openai.AzureOpenAI(azure_endpoint=keyed.url, api_key=key, api_version="2024-10-21", max_retries=0)
        if works:
            assert azure.chat.completions.create(model="dep", messages=MESSAGES).choices[0].message.content == "Hello."  # type: ignore[arg-type]
        else:
            with pytest.raises(openai.AuthenticationError):
                azure.chat.completions.create(model="dep", messages=MESSAGES)  # type: ignore[arg-type]


def test_anthropic_sdk(keyed: BackgroundServer) -> None:
    wrong = anthropic.Anthropic(base_url=keyed.url, api_key="sk-ant-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        wrong.messages.create(model="claude-x", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 401
    body = caught.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["error"]) == ("error", {"type": "authentication_error", "message": "invalid x-api-key"})
    for client in (
        anthropic.Anthropic(base_url=keyed.url, api_key=KEY, max_retries=0),
        anthropic.Anthropic(base_url=keyed.url, auth_token=KEY, max_retries=0),  # Authorization: Bearer
    ):
        reply = client.messages.create(model="claude-x", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        assert reply.content[0].text == "Hello."  # type: ignore[union-attr]


def test_google_genai(keyed: BackgroundServer) -> None:
    def client(key: str) -> genai.Client:
        return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=keyed.url))

    right = client(KEY)
    assert right.models.generate_content(model="gemini-2.0-flash", contents="hi").text == "Hello."
    wrong = client("AIza-wrong")
    # Google answers a bad key 400 INVALID_ARGUMENT, not 401.
    with pytest.raises(genai_errors.ClientError) as caught:
        wrong.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert caught.value.details["error"]["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
    ]
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = f"{keyed.url}/v1beta/models/gemini-2.0-flash:generateContent"
    assert call("POST", f"{path}?key={KEY}", body)[0] == 200  # the REST way: ?key=
    status, _, answer = call("POST", path, body)
    assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED")


# -- the command line's flags ----------------------------------------------------------------------


def serve(*args: str) -> tuple[subprocess.Popen[str], int, str]:
    """`python -m mockllm serve --port 0 ...`; its port, read from the URL it prints, and what it printed before."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--time-scale", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "OPENAI_BASE_URL=" in line:
            return proc, int(line.rsplit(":", 1)[1].split("/")[0]), "".join(seen)
    proc.wait(10)
    raise AssertionError(f"mockllm serve did not start: {''.join(seen)}")


def test_serve_admin_token_and_require_api_key(tmp_path: Any) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("version: 1\nrules:\n  - name: hi\n    reply: {content: Hello.}\n")
    proc, port, said = serve(
        "--scenarios", str(scenario), "--host", "0.0.0.0", "--admin-token", TOKEN, "--require-api-key", KEY
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert call("GET", f"{url}/_mockllm/rules")[0] == 401
        status, _, body = call("GET", f"{url}/_mockllm/rules", headers={"authorization": f"Bearer {TOKEN}"})
        assert status == 200 and [r["name"] for r in body["rules"]] == ["hi"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-wrong", max_retries=0).chat.completions.create(
                model="m",
                messages=MESSAGES,  # type: ignore[arg-type]
            )
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "Hello."  # type: ignore[arg-type]
        # The journal is kept by default now (the last 100 requests): the control API shows both requests.
        _, _, journal = call("GET", f"{url}/_mockllm/journal", headers={"authorization": f"Bearer {TOKEN}"})
        assert [(e["status"], e["headers"]["authorization"]) for e in journal["entries"]] == [
            (401, "[redacted]"),
            (200, "[redacted]"),
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert "asks for the --require-api-key key" in said and "answers 403" not in said
    assert "Traceback" not in err


def test_serve_beyond_loopback_without_a_token_says_the_control_api_is_closed() -> None:
    proc, port, said = serve("--host", "0.0.0.0")
    try:
        assert call("GET", f"http://127.0.0.1:{port}/_mockllm/journal")[0] == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert "the control API (/_mockllm) answers 403 beyond loopback: --admin-token TOKEN opens it" in said
    assert "Traceback" not in err
