"""`assert_all_used = session`, through pytester: one check after the last test, over every test's rules.

A scenario file shared by every test (the `mockllm_scenarios` option's) has rules each test uses a
few of: per test, assert_all_used would fail them all; per session, a rule counts as used if any
test used it. The check fails the run (its exit code), once, in the terminal summary.
"""

from __future__ import annotations

import pytest
from plugin_helpers import reported, warm_up

pytest_plugins = ["pytester"]
warm_up()

SHARED = """\
version: 1
rules:
  - name: greeting
    match: {user: {contains: hello}}
    reply: {content: "Hi!"}
  - name: farewell
    match: {user: {contains: bye}}
    reply: {content: "Bye!"}
  - name: steps
    match: {user: {contains: step}}
    replies: [{content: "one"}, {content: "two"}]
  - name: rarely
    optional: true
    match: {user: {contains: rarely}}
    reply: {content: "rarely needed"}
"""

ASK = """
import pytest

def ask(mockllm, *texts):
    client = mockllm.client()
    return [
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": t}]).choices[0].message.content
        for t in texts
    ]
"""

GREETS = (
    ASK
    + """
def test_greets(mockllm):
    assert ask(mockllm, "hello", "step") == ["Hi!", "one"]
"""
)

SAYS_BYE = (
    ASK
    + """
def test_says_bye(mockllm):
    assert ask(mockllm, "bye") == ["Bye!"]
"""
)

PLAYS_STEPS = (
    ASK
    + """
def test_plays_steps(mockllm):
    assert ask(mockllm, "step", "step") == ["one", "two"]
"""
)

SUMMARY = "*= mockllm: assert_all_used=session: rules no test used =*"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", shared=SHARED)
    pytester.makeini("[pytest]\nmockllm_scenarios = shared.yaml\nmockllm_assert_all_used = session\n")
    return pytester


def test_rules_used_across_tests_pass_the_session(project: pytest.Pytester) -> None:
    project.makepyfile(test_greets=GREETS, test_says_bye=SAYS_BYE, test_plays_steps=PLAYS_STEPS)
    result = project.runpytest()
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "mockllm: mode=server, scenarios=*shared.yaml, seed=0, time_scale=0, assert_all_used=session",
            "mockllm: assert_all_used=session: each of the 3 rules checked was used by a test",
        ]
    )
    # per test, each of them would have failed for the rules the others use
    project.makeini("[pytest]\nmockllm_scenarios = shared.yaml\nmockllm_assert_all_used = true\n")
    project.runpytest().assert_outcomes(passed=3, errors=3)


def test_a_rule_no_test_used_fails_the_run_once(project: pytest.Pytester) -> None:
    project.makepyfile(test_greets=GREETS)
    result = project.runpytest()
    result.assert_outcomes(passed=1)  # no test is blamed
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            SUMMARY,
            "mockllm: 1 rule never used by any test (assert_all_used=session):",
            "  - farewell (shared.yaml:6)",
            "",
            "mockllm: 1 rule whose replies no test played to the end:",
            "  - steps (shared.yaml:9): 2 replies",
            "",
            "Use them, remove them, or mark them `optional: true`.",
        ]
    )
    out = reported(result)
    assert out.count("farewell") == 1 and "rarely" not in out  # optional: not reported


@pytest.mark.parametrize(
    ("setting", "args"),
    [("", ["--mockllm-assert-all-used-session"]), ("mockllm_assert_all_used = session", [])],
    ids=["flag", "ini"],
)
def test_the_flag_and_the_ini_option(pytester: pytest.Pytester, setting: str, args: list[str]) -> None:
    pytester.makefile(".yaml", shared=SHARED)
    pytester.makeini(f"[pytest]\nmockllm_scenarios = shared.yaml\n{setting}\n")
    pytester.makepyfile(test_greets=GREETS)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*assert_all_used=session", SUMMARY, "  - farewell (shared.yaml:6)"])


def test_the_command_line_beats_the_ini_file(project: pytest.Pytester) -> None:
    project.makepyfile(test_greets=GREETS)
    result = project.runpytest("--mockllm-assert-all-used")  # per test: the greeting test fails itself
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*assert_all_used=true", "mockllm: 1 rule never used (assert_all_used is on):"])
    assert "rules no test used" not in result.stdout.str()
    result = project.runpytest("-o", "mockllm_assert_all_used=false")  # pytest's own override of an ini option
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK and "assert_all_used=session" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "outcomes", "note"),
    [
        (["-k", "greets"], {"passed": 1, "deselected": 2}, "not checked, 2 tests deselected (*)"),
        (["-x"], {"passed": 0, "failed": 1}, "not checked, 1 test failed"),
    ],
    ids=["deselected", "failed"],
)
def test_a_partial_or_failed_run_is_not_checked(
    project: pytest.Pytester, args: list[str], outcomes: dict[str, int], note: str
) -> None:
    failing = PLAYS_STEPS.replace('["one", "two"]', '["not", "so"]')
    project.makepyfile(
        test_a_fails=failing if "-x" in args else PLAYS_STEPS, test_greets=GREETS, test_says_bye=SAYS_BYE
    )
    result = project.runpytest(*args)
    result.assert_outcomes(**outcomes)
    result.stdout.fnmatch_lines([f"mockllm: assert_all_used=session: {note}"])
    assert "never used" not in result.stdout.str()
    if "-k" in args:
        assert result.ret == pytest.ExitCode.OK


def test_what_counts(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_marked=ASK
        + """
@pytest.mark.parametrize("n", [0, 1])
def test_inline_rule_used_by_one_run(mockllm, n):
    mockllm.reply("inline", when_user_contains="inline", name="inline")
    if n:
        assert ask(mockllm, "inline") == ["inline"]
    assert ask(mockllm, "hello", "step", "step") == ["Hi!", "one", "two"]

@pytest.mark.mockllm(assert_all_used=False)
def test_opted_out_but_its_use_counts(mockllm):
    mockllm.reply("never asked", when_user_contains="nobody", name="opted-out")
    assert ask(mockllm, "bye") == ["Bye!"]

def test_skipped(mockllm):
    mockllm.reply("never asked", when_user_contains="nobody", name="of-a-skipped-test")
    pytest.skip("its rules are not checked")
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=3, skipped=1)
    # inline: one rule though two runs added it; opted-out and skipped tests' rules are not checked
    result.stdout.fnmatch_lines(["mockllm: assert_all_used=session: each of the 4 rules checked was used by a test"])
    assert result.ret == pytest.ExitCode.OK


def test_a_marker_can_also_check_its_own_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_greets=GREETS.replace("def test_greets", "@pytest.mark.mockllm(assert_all_used=True)\ndef test_greets"),
        test_says_bye=SAYS_BYE,
        test_plays_steps=PLAYS_STEPS,
    )
    result = project.runpytest()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_greets*", "  - farewell (shared.yaml:6)"])


def test_under_xdist_the_workers_tallies_add_up(project: pytest.Pytester) -> None:
    # Four tests on two workers, each using one rule: only the sum of both workers' tallies uses them all.
    project.makepyfile(
        test_spread=ASK
        + """
@pytest.mark.parametrize("text", ["hello", "bye", "step", "step"])
def test_one_rule(mockllm, text):
    ask(mockllm, text)
"""
    )
    result = project.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=4)
    # each test plays one of the two steps: no test played them out
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [SUMMARY, "mockllm: 1 rule whose replies no test played to the end:", "  - steps (shared.yaml:9): 2 replies"]
    )
    out = reported(result)
    assert "never used" not in out and out.count("rules no test used") == 1
