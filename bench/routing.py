"""Routing cost at 1, 100 and 10,000 rules: `python -m bench --only route`.

The rules are a recording's: each matches one request by its body (`match: {endpoint, model, body:
{messages: [...]}}`), so a scenario of thousands routes by looking the request up (mockllm/index.py)
rather than by trying each rule. Reported: the microseconds one `Router.route` takes for a request
that the last rule answers (the worst case of a scan), and its ratio to the one-rule scenario's,
measured in the same run; and the CPU seconds the 10,000-rule file takes to load.
"""

from __future__ import annotations

import gc
import json
import time
from typing import NamedTuple

from mockllm.dialects import DIALECTS
from mockllm.loader import load_text
from mockllm.router import Router

SIZES = (1, 100, 10_000)


class Routed(NamedTuple):
    rules: int
    route_us: float  # one route of the last rule's request
    load_s: float  # CPU seconds to load the file


def recording(rules: int) -> str:
    """A scenario as a recording writes it: one rule per exchange, each matching its request's messages."""
    lines = ["version: 1", "rules:"]
    for n in range(rules):
        messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"Question {n}?"}]
        lines += [
            f"  - name: exchange-{n}",
            f"    match: {{endpoint: chat, model: gpt-4o-mini, body: {{messages: {json.dumps(messages)}}}}}",
            f'    reply: {{content: "Answer {n}.", usage: {{prompt_tokens: 20, completion_tokens: 3}}}}',
        ]
    return "\n".join(lines) + "\n"


def measure(rules: int, repeat: int) -> Routed:
    text = recording(rules)
    gc.collect()
    started = time.process_time()
    scenario = load_text(text, "recording.yaml")
    load_s = time.process_time() - started
    router = Router(scenario.rules)
    last = rules - 1
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": f"Question {last}?"}],
    }
    raw = json.dumps(body).encode()
    chat = DIALECTS["chat"]
    state = chat.new_state()
    best = float("inf")
    for _ in range(5):  # the best of five runs: the least disturbed by the machine
        started = time.perf_counter()
        for _ in range(repeat):
            hit = router.route(chat.parse(raw, {}, {}, state))
        best = min(best, (time.perf_counter() - started) / repeat)
        assert getattr(hit, "rule", None) is scenario.rules[last], hit
    return Routed(rules, best * 1e6, load_s)


def run(quick: bool) -> list[Routed]:
    return [measure(size, 200 if quick else 2000) for size in SIZES]


def report(results: list[Routed]) -> None:
    base = results[0].route_us
    print("\nRouting (a request the last rule answers: parse + route, microseconds; ratio to 1 rule)")
    print(f"  {'rules':>7}  {'route us':>9}  {'ratio':>6}  {'load s':>7}")
    for r in results:
        print(f"  {r.rules:7,}  {r.route_us:9.1f}  {r.route_us / base:6.2f}  {r.load_s:7.2f}")
