"""Failures that help, through pytester: unmatched requests, unused rules, unplayed replies."""

from __future__ import annotations

import pytest
from plugin_helpers import warm_up

pytest_plugins = ["pytester"]
warm_up()

SCENARIO = """\
version: 1
rules:
  - name: greeting
    match: {user: {contains: hello}, model: "gpt-4o*"}
    reply: {content: "Hi!"}
  - name: farewell
    match: {user: {contains: bye}}
    reply: {content: "Bye!"}
  - name: two-step
    match: {user: {contains: step}}
    replies:
      - {content: "first"}
      - {content: "second"}
"""

SWALLOWED = """
import openai, pytest

@pytest.mark.mockllm("scenario.yaml")
def test_app_swallows_the_error(mockllm):
    client = mockllm.client()  # default max_retries=2: the 418 must not be retried
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "what's up?"}])
    except openai.APIStatusError as exc:
        assert exc.status_code == 418
    assert len(mockllm.requests) == 1
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", scenario=SCENARIO)
    return pytester


@pytest.mark.parametrize("mode", ["server", "inprocess"])
def test_an_unmatched_request_fails_the_test_at_teardown(project: pytest.Pytester, mode: str) -> None:
    project.makepyfile(SWALLOWED)
    result = project.runpytest(f"--mockllm-mode={mode}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_app_swallows_the_error*",
            "mockllm: 1 request matched no rule (answered 418 no_rule_matched, which the code under test may have"
            " swallowed):",
            "",
            "#0 POST /*v1/chat/completions -> 418 (no rule)",
            "mockllm: no rule matched this chat request",
            "  request: model='gpt-4o-mini' stream=false user=\"what's up?\"",
            "  nearest rules (of 3):",
            "    - greeting (scenario.yaml:3): user: \"what's up?\" does not contain 'hello'",
            "    - farewell (scenario.yaml:6): user: \"what's up?\" does not contain 'bye'",
            "    - two-step (scenario.yaml:9): user: \"what's up?\" does not contain 'step'",
            "  Add a rule that matches this request, or loosen the conditions of one above.",
            "",
            "If the test means to send it, mark the test @pytest.mark.mockllm(allow_unmatched=True).",
        ]
    )
    assert "Traceback" not in result.stdout.str()  # the message is the whole report


def test_every_unmatched_request_is_listed_with_its_reasons(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        import pytest

        @pytest.mark.mockllm("scenario.yaml")
        def test_two_misses(mockllm):
            client = mockllm.client(max_retries=0)
            for model, text in (("o3", "hello"), ("gpt-4o", "nothing")):
                try:
                    client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
                except Exception:
                    pass
        """
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "mockllm: 2 requests matched no rule*",
            "#0 POST *",
            "  request: model='o3' stream=false user='hello'",
            "    - greeting (scenario.yaml:3): model: 'o3' does not match 'gpt-4o*'",
            "#1 POST *",
            "  request: model='gpt-4o' stream=false user='nothing'",
        ]
    )


def test_allow_unmatched(project: pytest.Pytester) -> None:
    project.makepyfile(SWALLOWED.replace('mockllm("scenario.yaml")', 'mockllm("scenario.yaml", allow_unmatched=True)'))
    project.runpytest().assert_outcomes(passed=1)


USES_ONE = """
import pytest

def ask(mockllm, text):
    return mockllm.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": text}]).choices[0].message.content

@pytest.mark.mockllm("scenario.yaml")
def test_uses_greeting_and_one_step(mockllm):
    assert ask(mockllm, "hello") == "Hi!"
    assert ask(mockllm, "step") == "first"
"""

UNUSED_REPORT = [
    "*ERROR at teardown of test_uses_greeting_and_one_step*",
    "mockllm: 1 rule never used (assert_all_used is on):",
    "  - farewell (scenario.yaml:6)",
    "",
    "mockllm: 1 rule did not play all its replies:",
    "  - two-step (scenario.yaml:9): played 1 of 2",
    "",
    "Use them, remove them, mark them `optional: true`, or mark the test @pytest.mark.mockllm(assert_all_used=False).",
]


@pytest.mark.parametrize("how", ["ini", "option", "marker"])
def test_assert_all_used_is_opt_in(project: pytest.Pytester, how: str) -> None:
    source = USES_ONE
    args: list[str] = []
    if how == "ini":
        project.makeini("[pytest]\nmockllm_assert_all_used = true\n")
    elif how == "option":
        args.append("--mockllm-assert-all-used")
    else:
        source = source.replace('mockllm("scenario.yaml")', 'mockllm("scenario.yaml", assert_all_used=True)')
    project.makepyfile(source)
    result = project.runpytest(*args)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(UNUSED_REPORT)
    if how == "ini":
        result.stdout.fnmatch_lines(["mockllm: *assert_all_used=true"])


def test_off_by_default_and_the_marker_can_turn_it_off(project: pytest.Pytester) -> None:
    project.makepyfile(USES_ONE)
    project.runpytest().assert_outcomes(passed=1)
    project.makeini("[pytest]\nmockllm_assert_all_used = true\n")
    project.makepyfile(USES_ONE.replace('mockllm("scenario.yaml")', 'mockllm("scenario.yaml", assert_all_used=False)'))
    project.runpytest().assert_outcomes(passed=1)


def test_a_failed_test_is_not_also_blamed_for_unused_rules(project: pytest.Pytester) -> None:
    project.makepyfile(USES_ONE.replace('== "first"', '== "not what it says"'))
    result = project.runpytest("--mockllm-assert-all-used")
    result.assert_outcomes(failed=1)
    assert "never used" not in result.stdout.str()


def test_all_used_passes(project: pytest.Pytester) -> None:
    project.makepyfile(
        USES_ONE
        + """
@pytest.mark.mockllm("scenario.yaml")
def test_uses_everything(mockllm):
    assert [ask(mockllm, t) for t in ("hello", "bye", "step", "step")] == ["Hi!", "Bye!", "first", "second"]
"""
    )
    result = project.runpytest("--mockllm-assert-all-used", "-k", "everything")
    result.assert_outcomes(passed=1, deselected=1)
