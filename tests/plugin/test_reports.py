"""What a test says when mockllm finds something wrong, through pytester: each problem once, where it helps.

- A request no rule matched, or one a callable of the test's raised for: in the failure of a test
  that failed (once, readable, not again at teardown), else as an error at teardown.
- A bad marker (a missing scenario file): one error at setup, not chained to a second copy.
- `optional: true` rules: never reported by assert_all_used.
- The near-miss lines of the new conditions (tool, tool_result, turn, last_role) and of a predicate.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import openai
import pytest
from mockllm_pytest import MockLLM
from plugin_helpers import MODES, in_both_modes, reported, user, warm_up

pytest_plugins = ["pytester"]
warm_up()

SCENARIO = """\
version: 1
rules:
  - name: greeting
    match: {user: {contains: hello}}
    reply: {content: "Hi!"}
  - name: spare
    optional: true
    match: {user: {contains: spare}}
    reply: {content: "spare"}
"""

UNMATCHED_HEADLINE = "mockllm: 1 request matched no rule (answered 418 no_rule_matched, *"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", scenario=SCENARIO)
    return pytester


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_test_says_its_unmatched_request_once_in_its_failure(project: pytest.Pytester, mode: str) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.mockllm("scenario.yaml")
        def test_not_caught(mockllm):
            mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "bye"}])
        """
    )
    result = project.runpytest(f"--mockllm-mode={mode}")
    result.assert_outcomes(failed=1)  # no error at teardown on top of the failure
    result.stdout.fnmatch_lines(
        [
            "E *openai.APIStatusError: Error code: 418 *",  # the SDK's exception, as the test raised it
            "*- mockllm -*",  # then mockllm's report, in the same failure
            UNMATCHED_HEADLINE,
            "",
            "#0 POST /*v1/chat/completions -> 418 (no rule)*",
        ]
    )
    out = reported(result)
    assert "ERROR at teardown" not in out and out.count("matched no rule (answered") == 1
    # The near-miss report, readable once: in mockllm's section, or in the exception when the SDK
    # writes the error's message out line by line (openai >= 3), the section then pointing at it.
    for line in NEAR_MISS:
        assert readable(out, line) == 1, line
    if readable(out, "#0 POST /*v1/chat/completions -> 418 (no rule): as the error above says"):
        assert int(openai.__version__.split(".")[0]) >= 3


NEAR_MISS = [
    "mockllm: no rule matched this chat request",
    "request: model='m' stream=false user='bye'",
    "nearest rules (of 2):",
    "- greeting (scenario.yaml:3): user: 'bye' does not contain 'hello'",
    "- spare (scenario.yaml:6): user: 'bye' does not contain 'spare'",
]


def readable(out: str, pattern: str) -> int:
    """How many lines of `out` say `pattern` (a glob) on a line of their own, `E` prefix and indent aside."""
    plain = [re.sub(r"^E\s+", "", line).strip() for line in out.splitlines()]
    return sum(fnmatch.fnmatchcase(line, pattern) or line.endswith(f"- {pattern}") for line in plain)


def test_a_failure_for_another_reason_still_names_the_swallowed_request(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.mockllm("scenario.yaml")
        def test_swallows_then_fails(mockllm):
            try:
                mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "bye"}])
            except Exception:
                answer = None
            assert answer == "Bye!"
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E *assert None == 'Bye!'", "*- mockllm -*", UNMATCHED_HEADLINE])
    assert reported(result).count("matched no rule (answered") == 1


def test_a_request_after_the_failure_is_reported_at_teardown_once(project: pytest.Pytester) -> None:
    # The app fixture's teardown sends a request after the test failed: that one was not in the failure.
    project.makepyfile(
        """
        import pytest

        @pytest.fixture
        def app(mockllm):
            yield
            try:
                mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "at exit"}])
            except Exception:
                pass

        @pytest.mark.mockllm("scenario.yaml")
        def test_fails(app, mockllm):
            try:
                mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "during"}])
            except Exception:
                pass
            assert False, "the test's own failure"
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1, errors=1)
    out = reported(result)
    assert out.count("user='during'") == 1 and out.count("user='at exit'") == 1
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_fails*", UNMATCHED_HEADLINE, "", "#1 POST *", "*user='at exit'"]
    )


def test_a_test_with_no_rules_is_told_how_to_add_some(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_forgot_the_marker(mockllm):
            try:
                mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            except Exception:
                pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  no rules are loaded*",
            "*",
            "The test has no rules: name scenario files in @pytest.mark.mockllm(...) or the mockllm_scenarios option,"
            " or add rules with mockllm.reply(...) or mockllm.add(...).",
            "",
            "If the test means to send it, *",
        ]
    )


# -- a callable that raises ------------------------------------------------------------------------------

RAISES = """
import asyncio
import openai
import pytest

def lookup(request):
    raise LookupError(f"no weather for {request.user_text!r}")

async def slow_lookup(request):
    await asyncio.sleep(0)
    raise LookupError("async lookup failed")

@pytest.mark.mockllm(mode=MODE)
def test_not_caught(mockllm):
    mockllm.add(reply=lookup, name="weather")
    mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "Paris"}])

@pytest.mark.mockllm(mode=MODE)
def test_swallowed(mockllm):
    mockllm.add(match=lambda request: 1 / 0, reply="never")
    client = mockllm.client()  # the default retries: a 500 of a callable is not retried
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert raised.value.body["code"] == "callback_failed"
    assert len(mockllm.requests) == 1 and mockllm.last_request.status == 500
    assert "ZeroDivisionError" in mockllm.last_request.error

@pytest.mark.mockllm(mode=MODE)
def test_async_not_caught(mockllm):
    mockllm.add(reply=slow_lookup)
    async def main():
        async with mockllm.async_client() as client:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    asyncio.run(main())

@pytest.mark.mockllm(mode=MODE)
def test_bad_return(mockllm):
    mockllm.add(reply=lambda request: 42)
    try:
        mockllm.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    except openai.InternalServerError:
        pass
"""


@pytest.mark.parametrize("mode", MODES)
def test_a_callable_that_raises_answers_500_and_the_test_says_the_traceback(
    pytester: pytest.Pytester, mode: str
) -> None:
    pytester.makepyfile(RAISES.replace("MODE", repr(mode)))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=2, passed=2, errors=2)
    lines = result.stdout.lines
    out = reported(result)

    def section(title: str) -> str:
        """One test's part of the report: from its title line to the next title (not the `_ _ _` rules within)."""
        start = next(i for i, line in enumerate(lines) if title in line and line.startswith("__"))
        rest = enumerate(lines[start + 1 :], start + 1)
        end = next((i for i, line in rest if line.startswith(("__", "=="))), len(lines))
        return "\n".join(lines[start:end])

    failed = section(" test_not_caught ")
    assert "openai.InternalServerError: Error code: 500" in failed
    assert "- mockllm -" in failed
    assert (
        "mockllm: the test's Python code raised for 1 request (answered 500, which the code under test may have"
        " swallowed):" in failed
    )
    assert "(a callable raised)" in failed
    assert "mockllm: the test's callable lookup (" in failed
    assert ") raised LookupError: no weather for 'Paris'" in failed
    assert "Traceback (most recent call last):" in failed
    assert 'raise LookupError(f"no weather for {request.user_text!r}")' in failed  # the line that raised
    swallowed = section("ERROR at teardown of test_swallowed")
    assert "the test's callable <lambda> (" in swallowed
    assert ") raised ZeroDivisionError: division by zero" in swallowed
    assert "1 / 0" in swallowed
    async_failed = section(" test_async_not_caught ")
    assert "the test's callable slow_lookup (" in async_failed
    assert ") raised LookupError: async lookup failed" in async_failed
    assert "concurrent/futures" not in async_failed and "mockllm/callbacks.py" not in async_failed
    assert 'raise LookupError("async lookup failed")' in async_failed
    bad_return = section("ERROR at teardown of test_bad_return")
    assert "expected reply keys (a mapping) or a str, got int" in bad_return
    assert out.count("raised LookupError: no weather for 'Paris'") == 1  # said once, not again at teardown


# -- markers -------------------------------------------------------------------------------------------


def test_a_missing_scenario_file_is_reported_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mockllm("missing.yaml")
        def test_missing(mockllm):
            pass

        @pytest.mark.mockllm(seed="x")
        def test_bad_seed(mockllm):
            pass
        """
    )
    result = pytester.runpytest("-rN")  # no short summary: each message shows once
    result.assert_outcomes(errors=2)
    out = reported(result)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_missing*",
            f"mockllm: @pytest.mark.mockllm: no scenario file or folder 'missing.yaml' (looked at: {pytester.path}"
            "/missing.yaml)",  # the test's folder is the rootdir here: named once
            "*ERROR at setup of test_bad_seed*",
            "mockllm: @pytest.mark.mockllm(seed=...) must be an integer; got 'x'",
        ]
    )
    assert "During handling" not in out and out.count("no scenario file or folder") == 1
    assert "ERROR at teardown" not in out


# -- optional rules --------------------------------------------------------------------------------------


def test_optional_rules_are_never_reported_unused(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.mockllm("scenario.yaml", assert_all_used=True)
        def test_uses_the_greeting(mockllm):
            mockllm.add(reply="extra", optional=True, priority=-1)
            mockllm.add(replies=["a", "b"], match={"user": {"contains": "seq"}}, optional=True)
            client = mockllm.client()
            for text in ("hello", "seq"):
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])

        @pytest.mark.mockllm("scenario.yaml", assert_all_used=True)
        def test_uses_nothing(mockllm):
            pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_uses_nothing*",
            "mockllm: 1 rule never used (assert_all_used is on):",
            "  - greeting (scenario.yaml:3)",
            "",
            "Use them, remove them, mark them `optional: true`, or mark the test"
            " @pytest.mark.mockllm(assert_all_used=False).",
        ]
    )
    assert "spare" not in result.stdout.str()


# -- near misses of the agent-loop conditions, as the journal keeps them -----------------------------------

TOOL: Any = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def miss(mockllm: MockLLM, messages: list[Any], **kwargs: Any) -> list[str]:
    """The near-miss lines of a request no rule matches."""
    with pytest.raises(openai.APIStatusError) as raised:
        mockllm.client(max_retries=0).chat.completions.create(model="gpt-4o", messages=messages, **kwargs)
    assert raised.value.status_code == 418
    return (mockllm.last_request.error or "").splitlines()


@in_both_modes(allow_unmatched=True)
def test_near_misses_of_the_agent_loop_conditions_read_well(mockllm: MockLLM, mode: str) -> None:
    mockllm.add(match={"tool": "search"}, reply="searching", name="wants-search")
    mockllm.add(match={"tool_result": {"name": "get_weather"}}, reply="done", name="after-weather")
    mockllm.add(match={"turn": {"min": 2}}, reply="late", name="late")
    mockllm.add(match={"last_role": "tool"}, reply="after a tool", name="after-tool")
    lines = miss(mockllm, user("weather?"), tools=[TOOL])
    assert lines[:3] == [
        "mockllm: no rule matched this chat request",
        "  request: model='gpt-4o' stream=false user='weather?'",
        "  nearest rules (of 4):",
    ]
    expected = [
        "    - wants-search (test_reports.py:*): tool: no offered tool is named 'search' (offered: get_weather)",
        "    - after-weather (test_reports.py:*): tool_result: the last message is a user message, not a tool's result",
        "    - late (test_reports.py:*): turn: wanted at least 2 model turn(s) before this request,"
        " the conversation has 0",
        "    - after-tool (test_reports.py:*): last_role: wanted tool, the last message is user",
    ]
    assert len(lines) == 8
    assert all(fnmatch.fnmatchcase(line, want) for line, want in zip(lines[3:7], expected, strict=True)), lines
    assert lines[-1] == "  Add a rule that matches this request, or loosen the conditions of one above."


@in_both_modes(allow_unmatched=True)
def test_a_used_up_rule_and_a_predicate_in_the_near_miss(mockllm: MockLLM, mode: str) -> None:
    mockllm.add(match={"user": {"contains": "once"}}, reply="the one time", times=1, name="once")
    mockllm.add(match=lambda request: request.model == "o3", reply="o3 only", name="o3-only")
    client = mockllm.client()
    assert client.chat.completions.create(model="m", messages=user("once")).choices[0].message.content == "the one time"
    lines = miss(mockllm, user("once"))
    assert lines[3].startswith("    - once (test_reports.py:") and lines[3].endswith(
        "): times: already served 1 of 1 call(s)"
    )
    assert lines[4].startswith("    - o3-only (test_reports.py:")
    assert "match: the test's predicate <lambda> (test_reports.py:" in lines[4]
    assert lines[4].endswith(") returned false")
    assert lines[-1].startswith("  The closest rule matches but has served all its calls:")
