"""Plugin wiring through pytester: options and their ini twins, validation, header, marker."""

from __future__ import annotations

import pytest
from plugin_helpers import SCENARIOS, warm_up

pytest_plugins = ["pytester"]
warm_up()

SHOW_SETTINGS = """
    import pytest

    def test_settings(mockllm):
        print("SETTINGS", mockllm.mode, mockllm.engine.seed, mockllm.engine.time_scale)
"""


def test_header_shows_the_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["mockllm: mode=server, scenarios=none, seed=0, time_scale=0, assert_all_used=false", "*SETTINGS server 0 0.0*"]
    )


def test_command_line_beats_ini_beats_default(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmockllm_mode = inprocess\nmockllm_seed = 5\nmockllm_time_scale = 0.5\n")
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--mockllm-seed=9")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["mockllm: mode=inprocess, scenarios=none, seed=9, time_scale=0.5, *", "*SETTINGS inprocess 9 0.5*"]
    )
    result = pytester.runpytest("-s", "--mockllm-mode", "server", "--mockllm-time-scale", "2")
    result.stdout.fnmatch_lines(
        ["mockllm: mode=server, scenarios=none, seed=5, time_scale=2, *", "*SETTINGS server 5 2.0*"]
    )


@pytest.mark.parametrize(
    ("ini", "args", "message"),
    [
        ("", ["--mockllm-mode=live"], "mockllm: --mockllm-mode must be one of server, inprocess; got 'live'"),
        ("mockllm_mode = live", [], "mockllm: ini option mockllm_mode must be one of server, inprocess; got 'live'"),
        ("", ["--mockllm-seed=x"], "mockllm: --mockllm-seed must be an integer; got 'x'"),
        ("mockllm_seed = 1.5", [], "mockllm: ini option mockllm_seed must be an integer; got '1.5'"),
        ("", ["--mockllm-time-scale=-1"], "mockllm: --mockllm-time-scale must be a number >= 0 *; got '-1'"),
        ("mockllm_time_scale = fast", [], "mockllm: ini option mockllm_time_scale must be a number >= 0 *; got 'fast'"),
        (
            "",
            ["--mockllm-scenarios=nowhere"],
            "mockllm: --mockllm-scenarios: no such scenario file or folder: *nowhere",
        ),
        ("mockllm_scenarios = bad.yaml", [], "mockllm: the scenarios option names files that do not load:"),
        (
            "mockllm_assert_all_used = always",
            [],
            "mockllm: ini option mockllm_assert_all_used must be one of false, true, session; got 'always'",
        ),
    ],
    ids=[
        "mode",
        "ini-mode",
        "seed",
        "ini-seed",
        "time-scale",
        "ini-time-scale",
        "scenarios",
        "ini-bad-yaml",
        "ini-assert-all-used",
    ],
)
def test_bad_values_stop_the_run_with_a_usage_error(
    pytester: pytest.Pytester, ini: str, args: list[str], message: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makefile(".yaml", bad="version: 1\nrules:\n  - reply: {contnet: hi}\n")
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    if "bad.yaml" in ini:  # the loader's own message: file, line, key, and a suggestion
        result.stderr.fnmatch_lines(["*bad.yaml:3: rules?0?.reply.contnet: unknown key*content*"])


def test_marker_is_registered_with_its_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.mockllm(*paths, mode=None, seed=None, time_scale=None, env=False, assert_all_used=None,"
            " allow_unmatched=False, cassette=None): scenario files or folders*"
        ]
    )
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "mockllm:*",
            "*--mockllm-mode=VALUE*",
            "  --mockllm-assert-all-used",
            "*",
            "*",
            "  --mockllm-assert-all-used-session",
        ]
    )


def test_the_closest_marker_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.mockllm(seed=1)

        @pytest.mark.mockllm(mode="inprocess", seed=2)
        class TestGroup:
            def test_class_marker(self, mockllm):
                assert (mockllm.mode, mockllm.engine.seed) == ("inprocess", 2)

            @pytest.mark.mockllm(seed=3)
            def test_own_marker(self, mockllm):
                assert (mockllm.mode, mockllm.engine.seed) == ("server", 3)  # whole marker: mode back to default

        def test_module_marker(mockllm):
            assert (mockllm.mode, mockllm.engine.seed) == ("server", 1)
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=3)


def test_bad_markers_fail_the_test_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.mockllm(mood="happy")
        def test_unknown(mockllm): pass

        @pytest.mark.mockllm(mode="live")
        def test_mode(mockllm): pass

        @pytest.mark.mockllm(time_scale="fast")
        def test_scale(mockllm): pass

        @pytest.mark.mockllm("missing.yaml")
        def test_missing(mockllm): pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [
            "*mockllm: @pytest.mark.mockllm: unknown argument(s) mood;"
            " known: allow_unmatched, assert_all_used, cassette, env, mode, seed, time_scale",
            "*mockllm: @pytest.mark.mockllm(mode=...) must be one of server, inprocess; got 'live'",
            "*mockllm: @pytest.mark.mockllm(time_scale=...) must be a number >= 0*got 'fast'",
            "*mockllm: @pytest.mark.mockllm: no scenario file or folder 'missing.yaml' (looked at: *missing.yaml)",
        ]
    )


def test_scenarios_option_loads_first_and_marker_paths_resolve(pytester: pytest.Pytester) -> None:
    shared = pytester.mkdir("shared")
    (shared / "catch_all.yaml").write_text(
        "version: 1\nrules:\n  - name: catch-all\n    priority: -100\n    reply: {content: default answer}\n"
    )
    tests = pytester.mkdir("tests")
    (tests / "scenarios").mkdir()
    (tests / "scenarios" / "near.yaml").write_text(
        "version: 1\nrules:\n  - name: near\n    match: {user: {contains: hi}}\n    reply: {content: near answer}\n"
    )
    pytester.makeini("[pytest]\nmockllm_scenarios = shared\n")
    (tests / "test_paths.py").write_text(
        "import pytest\n"
        "def ask(mockllm, text):\n"
        "    c = mockllm.client()\n"
        "    return c.chat.completions.create(model='m', messages=[{'role': 'user', 'content': text}])"
        ".choices[0].message.content\n"
        "@pytest.mark.mockllm('scenarios/near.yaml')\n"  # next to the test file
        "def test_near(mockllm):\n"
        "    assert [r.name for r in mockllm.engine.router.rules] == ['near', 'catch-all']\n"
        "    assert ask(mockllm, 'hi') == 'near answer'\n"
        "    assert ask(mockllm, 'bye') == 'default answer'\n"
        f"@pytest.mark.mockllm('shared/catch_all.yaml', {str(SCENARIOS / 'basic.yaml')!r})\n"  # rootdir, absolute
        "def test_rootdir_and_absolute(mockllm):\n"
        "    assert ask(mockllm, '1+1') == 'Two.'\n"
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["mockllm: mode=server, scenarios=*shared, *"])
