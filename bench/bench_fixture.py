"""Per-test overhead of the `mockllm` fixture, in each mode, against a bare respx route.

Run:  python bench/bench_fixture.py            (options: --tests 100 --repeat 3)

Each variant is a generated pytest file of N tests, run in a fresh `pytest -p no:xdist`
process; every test makes one openai client and one streamed chat call (the same SSE bytes
in every variant: "Two." as the cookbook scenario streams it):

  baseline   a bare respx route returning the fixed SSE body (openai >= 3 reads through
             httpx2, which respx cannot patch: there, an httpx2.MockTransport with that body);
             its clients share one SSL context, as the fixture's do (a default openai client
             loads the CA bundle, ~30 ms here, which would hide every other cost)
  server     the `mockllm` fixture, server mode (a namespace on the session's uvicorn server)
  inprocess  the `mockllm` fixture, in-process mode (respx / httpx2 transport, no socket)

The figure is the time pytest reports per test (setup + call + teardown), median over the
tests of a run, then the median of the runs; the ratio divides by the baseline's. It also
times BackgroundServer start() and stop().
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COLLECT = """
import json, pytest

durations = {}

def pytest_runtest_logreport(report):
    durations[report.nodeid] = durations.get(report.nodeid, 0.0) + report.duration

def pytest_sessionfinish(session):
    with open("durations.json", "w") as f:
        json.dump(durations, f)
"""

HEAD = """
import pytest

ASK = dict(model="gpt-4o-mini", messages=[{"role": "user", "content": "What's 1+1?"}], stream=True)

def stream(client):
    with client.chat.completions.create(**ASK) as s:
        text = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert text == "Two."
"""

BASELINE = """
import json
import ssl
import httpx, openai, respx
from mockllm import Engine

# Like the fixture's clients, share one SSL context: a default client loads the CA bundle each time (~30 ms).
CONTEXT = ssl.create_default_context()

# The bytes the fake would stream, computed once: the baseline pays nothing for them.
_engine = Engine(SCENARIO, time_scale=0)
_request = json.dumps({**ASK, "stream": True}).encode()
_answer = _engine.chat(_request, {})
BODY = b"".join(w.data for w in _answer.writes)
HEADERS = {"content-type": "text/event-stream; charset=utf-8"}
HTTPX2 = not issubclass(openai.DefaultHttpxClient, httpx.Client)

@pytest.mark.parametrize("n", range(N))
def test_baseline(n):
    if HTTPX2:
        import httpx2
        transport = httpx2.MockTransport(lambda request: httpx2.Response(200, headers=HEADERS, content=BODY))
        http_client = httpx2.Client(transport=transport)
        client = openai.OpenAI(base_url="http://api.test/v1", api_key="k", http_client=http_client)
        stream(client)
        client.close()
        return
    with respx.mock(assert_all_called=True) as router:
        router.post("http://api.test/v1/chat/completions").respond(200, headers=HEADERS, content=BODY)
        http_client = openai.DefaultHttpxClient(verify=CONTEXT)
        client = openai.OpenAI(base_url="http://api.test/v1", api_key="k", http_client=http_client)
        stream(client)
        client.close()
"""

FIXTURE = """
@pytest.mark.parametrize("n", range(N))
@pytest.mark.mockllm(SCENARIO, mode=MODE)
def test_fixture(mockllm, n):
    stream(mockllm.client())
"""


def run_variant(name: str, tests: int, workdir: Path) -> list[float]:
    scenario = ROOT / "scenarios" / "cookbook.yaml"
    body = BASELINE if name == "baseline" else FIXTURE
    source = HEAD + f"N = {tests}\nSCENARIO = {str(scenario)!r}\nMODE = {name!r}\n" + body
    (workdir / "conftest.py").write_text(textwrap.dedent(COLLECT))
    (workdir / "test_bench.py").write_text(source)
    (workdir / "pytest.ini").write_text("[pytest]\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "test_bench.py"]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"{name}: pytest failed\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    durations = json.loads((workdir / "durations.json").read_text())
    return sorted(durations.values())


def server_start_stop(times: int = 20) -> tuple[float, float]:
    from mockllm.server import BackgroundServer

    BackgroundServer().start().stop()  # the first start imports uvicorn's protocol modules
    starts, stops = [], []
    for _ in range(times):
        server = BackgroundServer()
        t0 = time.perf_counter()
        server.start()
        t1 = time.perf_counter()
        server.stop()
        t2 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t2 - t1)
    return statistics.median(starts) * 1000, statistics.median(stops) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import openai

    print(f"openai {openai.__version__}, python {sys.version.split()[0]}, {args.tests} tests x {args.repeat} runs")
    results: dict[str, list[float]] = {}
    for name in ("baseline", "server", "inprocess"):
        per_run = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                per_run.append(statistics.median(run_variant(name, args.tests, Path(tmp))))
        results[name] = per_run
    base = statistics.median(results["baseline"])
    print(f"\n{'variant':<10} {'ms/test (median)':>17} {'runs (ms)':>24} {'ratio':>7}")
    for name, runs in results.items():
        median = statistics.median(runs)
        runs_text = " ".join(f"{r * 1000:.2f}" for r in runs)
        print(f"{name:<10} {median * 1000:>17.2f} {runs_text:>24} {median / base:>7.2f}")
    start, stop = server_start_stop()
    print(f"\nBackgroundServer: start {start:.1f} ms, stop {stop:.1f} ms (median of 20)")


if __name__ == "__main__":
    main()
