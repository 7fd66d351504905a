"""The README's "Testing with pytest" examples, run as written (through pytester), in both modes.

The blocks below are the README's, verbatim: `test_the_readme_shows_these_examples` fails when
the two drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from plugin_helpers import MODES, warm_up

pytest_plugins = ["pytester"]
warm_up()

README = Path(__file__).resolve().parents[2] / "README.md"

# -- the README's blocks, in order ---------------------------------------------------------------

FIRST_EXAMPLE = """\
def test_greeting(mockllm):
    mockllm.reply("Hi there!", when_user_contains="hello")
    client = mockllm.client()  # an openai.OpenAI pointed at the fake

    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )

    assert answer.choices[0].message.content == "Hi there!"
    assert mockllm.requests[-1].json["messages"][0]["content"] == "hello"
"""

SUMMARY_YAML = """\
# tests/scenarios/summary.yaml
version: 1
rules:
  - name: summary
    match: {user: {contains: "Summarize:"}}
    reply:
      content: "A short summary."
      timing: {ttft_ms: 200, chunk_ms: 20}
"""

ENV_EXAMPLE = '''\
import openai
import pytest


def summarize(text: str) -> str:
    """Application code: it builds its own client, configured by the environment."""
    client = openai.OpenAI()
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Summarize: {text}"}]
    )
    return answer.choices[0].message.content


@pytest.mark.mockllm("scenarios/summary.yaml", env=True)
def test_summarize(mockllm):
    assert summarize("a long text") == "A short summary."
    assert mockllm.last_user_message == "Summarize: a long text"
'''

CLIENTS_EXAMPLE = """\
import pytest


@pytest.mark.mockllm("scenarios/summary.yaml")
def test_claude_and_gemini(mockllm):
    claude = mockllm.anthropic_client()  # an anthropic.Anthropic pointed at the fake
    message = claude.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "Summarize: x"}]
    )
    assert message.content[0].text == "A short summary."

    gemini = mockllm.gemini_client()  # a google.genai.Client (gemini.aio: its async twin)
    answer = gemini.models.generate_content(model="gemini-2.5-flash", contents="Summarize: y")
    assert answer.text == "A short summary."

    assert [entry.endpoint for entry in mockllm.requests] == ["anthropic", "gemini"]
"""

CLIENTS_ENV_EXAMPLE = '''\
import anthropic
import pytest
from google import genai


def summarize(text: str) -> tuple[str, str]:
    """Application code: its clients are configured by the environment."""
    prompt = f"Summarize: {text}"
    claude = anthropic.Anthropic().messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": prompt}]
    )
    gemini = genai.Client()  # keep a reference: a dropped Client closes its connections
    answer = gemini.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    return claude.content[0].text, answer.text


@pytest.mark.mockllm("scenarios/summary.yaml", env=True)
def test_summarize(mockllm):
    assert summarize("a long text") == ("A short summary.", "A short summary.")
'''

MODE_EXAMPLE = """\
import pytest


@pytest.mark.mockllm("scenarios/summary.yaml", mode="inprocess", time_scale=1)
def test_streams_chunk_by_chunk(mockllm):
    with mockllm.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarize: x"}], stream=True
    ) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "A short summary."
    assert mockllm.requests[-1].sent[0] >= 0.2  # the first token left after ttft_ms
"""

RETRY_YAML = """\
# tests/scenarios/retry.yaml
version: 1
rules:
  - name: flaky
    match: {user: {contains: "retry"}}
    replies:                  # one per call, in order
      - error: {status: 429, headers: {retry-after-ms: "10"}}
      - content: "ok"
"""

JOURNAL_EXAMPLE = """\
import pytest


@pytest.mark.mockllm("scenarios/retry.yaml")
def test_the_sdk_retries_a_rate_limit(mockllm):
    client = mockllm.client(max_retries=1)
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "retry please"}]
    )
    assert answer.choices[0].message.content == "ok"
    assert [entry.status for entry in mockllm.requests] == [429, 200]
    assert mockllm.requests[1].headers["x-stainless-retry-count"] == "1"
    mockllm.assert_called(times=2, rule="flaky")
"""

UNMATCHED_REPORT = """\
______________________ ERROR at teardown of test_summary _______________________
mockllm: 1 request matched no rule (answered 418 no_rule_matched, which the code under test may have swallowed):

#0 POST /ns/t0/v1/chat/completions -> 418 (no rule)
mockllm: no rule matched this chat request
  request: model='gpt-4o-mini' stream=false user='Sum up: a long text'
  nearest rules (of 1):
    - summary (scenarios/summary.yaml:4): user: 'Sum up: a long text' does not contain 'Summarize:'
  Add a rule that matches this request, or loosen the conditions of one above.

If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True).
"""

PYPROJECT = """\
[tool.pytest.ini_options]
mockllm_mode = "inprocess"
mockllm_scenarios = "tests/scenarios"
mockllm_seed = 7
mockllm_assert_all_used = true
"""

# -- the rules-in-Python and session-check blocks ---------------------------------------------

PYTHON_RULES_EXAMPLE = """\
from mockllm import Request


def test_rules_in_python(mockllm):
    mockllm.reply("Bonjour !", when_user_contains="French", model="gpt-4o-2024-08-06")
    mockllm.add(match={"model": "o*"}, replies=["Let me think.", "Done."])

    def is_question(request: Request) -> bool:
        return (request.user_text or "").endswith("?")

    def echo(request: Request) -> str:
        return f"You asked {request.model}: {request.user_text}"

    mockllm.add(match=is_question, reply=echo)
    client = mockllm.client()

    def ask(text, model="gpt-4o-mini"):
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}]
        )

    french = ask("Hello in French")
    assert french.choices[0].message.content == "Bonjour !"
    assert french.model == "gpt-4o-2024-08-06"  # model=: the model the answer reports
    assert ask("Plan it", model="o3").choices[0].message.content == "Let me think."
    assert ask("Why?").choices[0].message.content == "You asked gpt-4o-mini: Why?"
"""

SESSION_PYPROJECT = """\
[tool.pytest.ini_options]
mockllm_scenarios = "tests/scenarios"
mockllm_assert_all_used = "session"
"""

SESSION_REPORT = """\
============= mockllm: assert_all_used=session: rules no test used =============
mockllm: 1 rule never used by any test (assert_all_used=session):
  - flaky (tests/scenarios/retry.yaml:4)

Use them, remove them, or mark them `optional: true`.
"""

BLOCKS = [
    FIRST_EXAMPLE,
    SUMMARY_YAML,
    ENV_EXAMPLE,
    PYTHON_RULES_EXAMPLE,
    CLIENTS_EXAMPLE,
    CLIENTS_ENV_EXAMPLE,
    MODE_EXAMPLE,
    RETRY_YAML,
    JOURNAL_EXAMPLE,
    UNMATCHED_REPORT,
    SESSION_PYPROJECT,
    SESSION_REPORT,
    PYPROJECT,
]


def test_the_readme_shows_these_examples() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^## Testing with pytest\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, "README.md has no '## Testing with pytest' section"
    assert re.findall(r"```\w*\n(.*?)```", found.group(1), re.S) == BLOCKS


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project laid out as the README says: tests next to a scenarios/ folder."""
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "summary.yaml").write_text(SUMMARY_YAML)
    (pytester.path / "scenarios" / "retry.yaml").write_text(RETRY_YAML)
    return pytester


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "example",
    [
        FIRST_EXAMPLE,
        ENV_EXAMPLE,
        CLIENTS_EXAMPLE,
        CLIENTS_ENV_EXAMPLE,
        MODE_EXAMPLE,
        JOURNAL_EXAMPLE,
        PYTHON_RULES_EXAMPLE,
    ],
    ids=["first", "env", "clients", "clients-env", "mode", "journal", "python-rules"],
)
def test_examples_pass(project: pytest.Pytester, example: str, mode: str) -> None:
    project.makepyfile(test_example=example)
    project.runpytest(f"--mockllm-mode={mode}", "--strict-markers").assert_outcomes(passed=1)


def test_the_unmatched_report_is_what_pytest_prints(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_app="""
        import pytest

        @pytest.mark.mockllm("scenarios/summary.yaml")
        def test_summary(mockllm):
            try:  # the code under test swallows the error
                mockllm.client().chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Sum up: a long text"}]
                )
            except Exception:
                pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    lines = UNMATCHED_REPORT.splitlines()
    expected = ["*ERROR at teardown of test_summary*"] + [
        line.replace("/ns/t0/", "/ns/t*/").replace("[", "?").replace("]", "?") for line in lines[1:]
    ]
    result.stdout.fnmatch_lines(expected, consecutive=True)


def test_the_pyproject_settings(project: pytest.Pytester) -> None:
    project.makefile(".toml", pyproject=PYPROJECT)
    (project.path / "tests").mkdir()
    (project.path / "scenarios").rename(project.path / "tests" / "scenarios")
    (project.path / "tests" / "test_retry.py").write_text(JOURNAL_EXAMPLE)
    result = project.runpytest()
    result.stdout.fnmatch_lines(
        ["mockllm: mode=inprocess, scenarios=*tests/scenarios, seed=7, time_scale=0, assert_all_used=true"]
    )
    # assert_all_used is on and the test leaves the summary rule unused: it fails at teardown, and says so.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["mockllm: 1 rule never used (assert_all_used is on):", "  - summary (tests/scenarios/summary.yaml:4)"]
    )


def test_the_session_report_is_what_pytest_prints(project: pytest.Pytester) -> None:
    project.makefile(".toml", pyproject=SESSION_PYPROJECT)
    (project.path / "tests").mkdir()
    (project.path / "scenarios").rename(project.path / "tests" / "scenarios")
    (project.path / "tests" / "test_summarize.py").write_text(ENV_EXAMPLE)  # uses the summary, not the retry
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = SESSION_REPORT.splitlines()
    result.stdout.fnmatch_lines(
        ["*= mockllm: assert_all_used=session: rules no test used =*", *lines[1:]], consecutive=True
    )
