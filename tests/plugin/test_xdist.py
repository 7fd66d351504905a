"""Parallel runs: a pytester project under `pytest -n 2`, one server per worker, a namespace per test."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

SCENARIO = """\
version: 1
rules:
  - name: counter
    replies: [{content: "one"}, {content: "two"}, {content: "three"}]
"""

TESTS = """
import json, os, pytest

MODES = [pytest.param(m, marks=pytest.mark.mockllm("scenario.yaml", mode=m)) for m in ("server", "inprocess")]

@pytest.mark.parametrize("n", range(8))
@pytest.mark.parametrize("mode", MODES)
def test_isolated(mockllm, mode, n):
    client = mockllm.client()
    with client.chat.completions.create(model="m", messages=[{"role": "user", "content": "count"}], stream=True) as s:
        first = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    second = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "count"}])
    # Each test starts the sequence over and sees only its own requests, whatever runs beside it.
    assert (first, second.choices[0].message.content) == ("one", "two")
    assert [e.call_index for e in mockllm.requests] == [0, 1]
    record = {"worker": os.environ.get("PYTEST_XDIST_WORKER"), "mode": mockllm.mode, "url": mockllm.base_url}
    with open(f"seen-{mode}-{n}.json", "w") as f:
        json.dump(record, f)
"""


def test_two_workers_each_with_its_own_server(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", scenario=SCENARIO)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=16)
    result.stdout.fnmatch_lines(["mockllm: mode=server, *"])
    seen = [json.loads(p.read_text()) for p in pytester.path.glob("seen-*.json")]
    assert len(seen) == 16
    assert {s["worker"] for s in seen} == {"gw0", "gw1"}
    served = [s for s in seen if s["mode"] == "server"]
    roots = {s["worker"]: {s2["url"].split("/ns/")[0] for s2 in served if s2["worker"] == s["worker"]} for s in served}
    assert all(len(r) == 1 for r in roots.values())  # one server per worker...
    if len(roots) == 2:
        assert roots["gw0"] != roots["gw1"]  # ...each on its own port
    assert len({s["url"] for s in served}) == len(served)  # and a namespace per test
    assert all(s["url"] == "http://mockllm.invalid/v1" for s in seen if s["mode"] == "inprocess")
