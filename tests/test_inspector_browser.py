"""The inspector (/_mockllm/) in a real browser: Chromium driven by Playwright, against a real server
answering the real openai SDK; and its files, as the package serves them.

Playwright's own sync API, not pytest-playwright: that plugin wraps every test of the session in a
soft-assertion scope, and the plugin's pytester tests (a pytest run inside a test) then fail on
"nested soft assertion scopes are not supported".

Playwright's own browser download cannot be reached from CI's machines: the tests launch Debian's
`chromium` (.ci/run installs it). Without it or Playwright they skip locally, and fail under CI=true.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from mockllm import Engine
from mockllm.inspector import FILES, page
from mockllm.server import BackgroundServer

CHROMIUM = os.environ.get("MOCKLLM_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium calls home at start, and this closed network
# refuses it; QUIC and the GPU are of no use to a page on loopback.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

SCENARIO = """\
version: 1
rules:
  - name: weather-stream
    match: {model: gpt-4o-mini, user: {contains: weather}}
    reply:
      chunks: ["It is", " sunny", " in", " Paris", " today", "."]
      # gaps of 20 ms, then a stall of 250 ms before " Paris"
      timing: {ttft_ms: 30, chunk_ms: [20, 20, 250, 20]}
  - name: flaky
    match: {model: flaky}
    reply:
      content: "one two three four five six"
      timing: {ttft_ms: 10, chunk_ms: 20}
      fault: {kind: disconnect, after_chunks: 2}
  - name: busy
    match: {model: busy}
    reply:
      error: {status: 429}
"""
WEATHER: Any = [
    {"role": "system", "content": "Answer in one sentence, <b>no markup</b>."},  # shown as text, not HTML
    {"role": "user", "content": "What is the weather in Paris?"},
]
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}
]


def line_of(text: str) -> int:
    """The 1-based line of the scenario that starts the rule named `text`."""
    return SCENARIO.splitlines().index(f"  - name: {text}") + 1


def need_browser() -> None:
    """Skip (locally) or fail (CI=true) when Playwright or Chromium is missing."""
    missing = [name for name in ("playwright",) if importlib.util.find_spec(name) is None]
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"chromium at {CHROMIUM} (apt-get install chromium)")
    if missing:
        reason = f"the inspector's browser tests need {', '.join(missing)}"
        if IN_CI:
            pytest.fail(reason + " (CI=true: they may not be skipped)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, for this module's tests."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


class Served:
    def __init__(self, server: BackgroundServer, engine: Engine, scenario: Path, ns: str | None) -> None:
        self.server, self.engine, self.scenario = server, engine, scenario
        root = f"{server.url}/ns/{ns}" if ns else server.url
        self.page_url = f"{server.url}/_mockllm/ns/{ns}" if ns else f"{server.url}/_mockllm"
        self.client = openai.OpenAI(base_url=f"{root}/v1", api_key="sk-test", max_retries=0)

    def journal(self) -> Any:
        return httpx.get(f"{self.page_url}/journal").json()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    scenario = tmp_path / "inspect.yaml"
    scenario.write_text(SCENARIO)
    with BackgroundServer(Engine(scenario)) as server:
        served = Served(server, server.engine, scenario, None)
        yield served
        served.client.close()


@pytest.fixture
def inspector(browser: Any, served: Served) -> Iterator[Any]:
    """A page of its own browser context, every request beyond loopback refused and recorded (it works offline)."""
    context = browser.new_context()
    browser_page = context.new_page()
    browser_page.set_default_timeout(5000)
    browser_page.beyond = beyond = []

    def only_loopback(route: Any) -> None:
        if re.match(r"^(http://127\.0\.0\.1[:/]|data:)", route.request.url):
            route.continue_()
        else:
            beyond.append(route.request.url)
            route.abort()

    browser_page.route("**/*", only_loopback)
    browser_page.errors = errors = []
    browser_page.on("pageerror", lambda error: errors.append(str(error)))
    yield browser_page
    context.close()


def entries(page_: Any) -> Any:
    return page_.locator("tbody.entry")


def test_requests_appear_live_newest_first_with_rule_timeline_and_request(inspector: Any, served: Served) -> None:
    from playwright.sync_api import expect

    inspector.goto(f"{served.page_url}/")
    expect(inspector.locator("#status")).to_contain_text("live")
    expect(inspector.locator("#empty")).to_be_visible()

    stream = served.client.chat.completions.create(model="gpt-4o-mini", messages=WEATHER, tools=TOOLS, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "It is sunny in Paris today."
    expect(entries(inspector)).to_have_count(1)  # no reload: the page polls
    served.client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}])
    expect(entries(inspector)).to_have_count(2)
    expect(entries(inspector).first).to_have_attribute("data-index", "1")  # newest first
    assert inspector.locator("#empty").is_hidden()

    row = inspector.locator("tbody.entry[data-index='0']")
    # the rule's file:line: the file's name shown, its whole path on hover
    expect(row.locator("td.rule")).to_have_text(f"weather-stream {served.scenario.name}:{line_of('weather-stream')}")
    expect(row.locator("td.rule .origin")).to_have_attribute("title", f"{served.scenario}:{line_of('weather-stream')}")
    expect(row.locator(".badge")).to_have_text("200")
    expect(row.locator(".badge")).to_have_class(re.compile(r"\bs2\b"))
    expect(row.locator(".flag.stream")).to_be_visible()
    # every write of the stream: a tick at its scheduled offset and a dot at its actual one
    writes = served.journal()["entries"][0]["writes"]
    assert len(writes) == len(served.engine.journal[0].sent) > 6
    expect(row.locator(".mark.at")).to_have_count(len(writes))
    expect(row.locator(".mark.sent")).to_have_count(len(writes))
    expect(row.locator(".cut-mark")).to_have_count(0)
    # the stall is the widest space between two dots, before the write of " Paris"
    offsets = row.locator(".mark.sent").evaluate_all("dots => dots.map(d => d.style.left)")
    lefts = [float(left.rstrip("%")) for left in offsets]
    gaps = [b - a for a, b in itertools.pairwise(lefts)]
    widest = gaps.index(max(gaps)) + 1
    assert " Paris" in writes[widest]["text"]
    assert max(gaps) > 3 * sorted(gaps)[len(gaps) // 2]
    assert " Paris" in row.locator(".mark.sent").nth(widest).get_attribute("title")

    # the request: its messages with their roles, the tools it offered
    request_view = row.locator("details.request")
    summary = request_view.locator("> summary")
    expect(summary).to_have_text("request: 2 messages; tools: get_weather")
    summary.click()
    expect(request_view.locator(".role")).to_have_text(["system", "user"])
    expect(request_view.locator("ol.messages pre")).to_have_text([m["content"] for m in WEATHER])
    expect(request_view.locator(".tools code")).to_have_text(["get_weather"])
    expect(inspector.locator("tbody.entry b")).to_have_count(0)
    assert inspector.beyond == [] and inspector.errors == []


def test_cut_stream_no_match_and_error_at_a_namespace_without_slash(inspector: Any, served: Served) -> None:
    from playwright.sync_api import expect

    scenario = served.scenario
    engine = served.server.namespaces["team-a"] = Engine(scenario)
    served = Served(served.server, engine, scenario, "team-a")
    inspector.goto(served.page_url)  # /_mockllm/ns/team-a, no trailing slash
    expect(inspector.locator("#status")).to_contain_text("live")
    expect(inspector.locator("#rules tbody tr")).to_have_count(3)
    expect(inspector.locator("#rules tbody tr").first.locator("td")).to_have_text(
        [f"weather-stream {scenario.name}:{line_of('weather-stream')}", "0", "∞"]
    )

    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for _ in served.client.chat.completions.create(model="flaky", messages=WEATHER, stream=True):
            pass
    with pytest.raises(openai.RateLimitError):
        served.client.chat.completions.create(model="busy", messages=WEATHER)
    with pytest.raises(openai.APIStatusError) as unmatched:
        served.client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "wether"}])
    assert unmatched.value.status_code == 418
    expect(entries(inspector)).to_have_count(3)

    cut = inspector.locator("tbody.entry[data-index='0']")
    expect(cut.locator(".flag.cut")).to_be_visible()
    expect(cut.locator(".cut-mark")).to_have_count(1)
    journal = served.journal()["entries"]
    assert journal[0]["aborted"] is True
    expect(cut.locator(".mark.at")).to_have_count(len(journal[0]["writes"]))

    busy = inspector.locator("tbody.entry[data-index='1']")
    expect(busy.locator(".badge")).to_have_text("429")
    expect(busy.locator(".badge")).to_have_class(re.compile(r"\bs4\b"))
    expect(busy.locator("td.rule")).to_contain_text(f"busy {scenario.name}:{line_of('busy')}")

    missed = inspector.locator("tbody.entry[data-index='2']")
    expect(missed.locator(".badge")).to_have_text("418")
    expect(missed.locator("td.rule")).to_have_text("no rule matched")
    why = served.engine.journal[2].error
    assert why is not None and "does not contain 'weather'" in why
    expect(missed.locator("pre.why")).to_have_text(why)
    assert missed.locator("pre.why").text_content() == why  # as written, line breaks and all
    expect(inspector.locator("#rules tbody tr").nth(1).locator("td").nth(1)).to_have_text("1")  # flaky's calls
    assert inspector.beyond == [] and inspector.errors == []


def test_pause_resume_and_clear_view(inspector: Any, served: Served) -> None:
    from playwright.sync_api import expect

    inspector.goto(served.page_url)
    expect(inspector.locator("#status")).to_contain_text("live")
    served.client.chat.completions.create(model="gpt-4o-mini", messages=WEATHER)
    expect(entries(inspector)).to_have_count(1)

    pause = inspector.get_by_role("button", name="Pause")
    pause.click()
    expect(inspector.locator("#pause")).to_have_attribute("aria-pressed", "true")
    expect(inspector.locator("#status")).to_contain_text("paused")
    served.client.chat.completions.create(model="gpt-4o-mini", messages=WEATHER)
    assert entries(inspector).count() == 1
    inspector.get_by_role("button", name="Resume").click()
    expect(entries(inspector)).to_have_count(2)

    inspector.get_by_role("button", name="Clear view").click()
    expect(entries(inspector)).to_have_count(0)
    expect(inspector.locator("#empty")).to_be_visible()
    served.client.chat.completions.create(model="gpt-4o-mini", messages=WEATHER)
    expect(entries(inspector)).to_have_count(1)
    expect(entries(inspector).first).to_have_attribute("data-index", "2")
    assert len(served.journal()["entries"]) == 3  # the view was cleared, not the server's journal
    assert inspector.beyond == [] and inspector.errors == []


def test_with_an_admin_token_the_page_sends_the_token_from_its_fragment(inspector: Any, served: Served) -> None:
    from playwright.sync_api import expect

    with BackgroundServer(Engine(served.scenario), admin_token="s3cret") as guarded:
        assert httpx.get(f"{guarded.url}/_mockllm/journal").status_code == 401
        inspector.goto(f"{guarded.url}/_mockllm/")
        expect(inspector.locator("#status")).to_contain_text("#token=TOKEN")  # says how to open it
        inspector.goto(f"{guarded.url}/_mockllm/#token=s3cret")
        inspector.reload()  # a new fragment alone does not load the page again
        expect(inspector.locator("#status")).to_contain_text("live")
        with openai.OpenAI(base_url=f"{guarded.url}/v1", api_key="sk-test", max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=WEATHER)
        expect(entries(inspector)).to_have_count(1)
        expect(inspector.locator("#rules tbody tr")).to_have_count(3)
    assert inspector.beyond == [] and inspector.errors == []


# -- the files, as the package serves them (no browser) ------------------------------------------------


def served_file(name: str) -> tuple[bytes, str]:
    found = page(name)
    assert found is not None, name
    return found


def test_page_serves_its_three_files_and_nothing_else() -> None:
    html, html_type = served_file("")
    assert html.startswith(b"<!doctype html>") and html_type == "text/html; charset=utf-8"
    assert served_file("index.html") == (html, html_type)
    assert served_file("inspector.css")[1] == "text/css; charset=utf-8"
    assert served_file("inspector.js")[1] == "text/javascript; charset=utf-8"
    assert b"inspector/inspector.js" in html and b"inspector/inspector.css" in html
    refused = "../__init__.py __init__.py inspector/../index.html ./index.html /etc/passwd INDEX.HTML index.html/ .. ."
    for name in [*refused.split(), "scenario.schema.json", "../scenario.schema.json", "index.html\0"]:
        assert page(name) is None, name


def test_the_files_fetch_nothing_from_elsewhere_and_set_no_journal_text_as_html() -> None:
    for name in FILES:
        text = served_file(name)[0].decode()
        assert not re.search(r"(https?:)?//[a-z0-9]", text.replace("://127.0.0.1", "")), name  # works offline
        assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text, name


def test_the_server_serves_the_page_and_refuses_other_paths(served: Served) -> None:
    root = f"{served.server.url}/_mockllm"
    for url in (root, f"{root}/", f"{served.server.url}/_mockllm/ns/x/"):
        if url.endswith("/ns/x/"):
            served.server.namespaces["x"] = Engine()
        answer = httpx.get(url)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html"), url
        assert answer.content == served_file("")[0]
    for name in ("inspector.css", "inspector.js"):
        answer = httpx.get(f"{root}/inspector/{name}")
        assert answer.status_code == 200 and answer.content == served_file(name)[0], name
    for name in ("..%2F__init__.py", "__init__.py", "index.htm", "%2E%2E%2Fcontrol.py"):
        assert httpx.get(f"{root}/inspector/{name}").status_code == 404, name
