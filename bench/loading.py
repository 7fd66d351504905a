"""Scenario loading speed and memory: `python -m bench --only load`.

A scenario file of generated rules (each with a match, a reply and a little timing, like a
recording would write them), loaded as `mockllm serve` loads a file: read once by libyaml's parser
with every key's line (mockllm/yamltext.py), validated, compiled. CPU seconds per MiB, for the YAML
alone and for the whole load, and the peak memory the load takes over the file's size (tracemalloc,
in a second load of the smallest file only: it slows every allocation down several times).
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import NamedTuple

from mockllm.loader import load_text
from mockllm.yamltext import parse_yaml

MIB = 1 << 20


class Loaded(NamedTuple):
    size: int  # bytes of YAML
    rules: int
    parse_s: float  # CPU seconds: the YAML alone
    load_s: float  # CPU seconds: parse, validate, compile
    peak: int | None  # bytes of memory the whole load took at its peak (None: not measured)


def scenario_text(size: int) -> tuple[str, int]:
    """A scenario of about `size` bytes, and its number of rules."""
    head = "version: 1\ndefaults: {timing: {ttft_ms: 0, chunk_ms: 0}}\nrules:\n"
    rules: list[str] = []
    total = len(head)
    while total < size:
        n = len(rules)
        rule = (
            f"  - name: recorded-{n}\n"
            f'    match: {{endpoint: [chat, responses], model: gpt-4o-mini, user: {{equals: "question number {n}"}}}}\n'
            f"    reply:\n"
            f'      content: "The answer to question {n} is a sentence of a few words, as a model writes it."\n'
            f"      usage: {{prompt_tokens: {12 + n % 7}, completion_tokens: 19}}\n"
            f"      timing: {{ttft_ms: {200 + n % 50}, chunk_ms: [12, 15, 9]}}\n"
        )
        rules.append(rule)
        total += len(rule)
    return head + "".join(rules), len(rules)


def measure(size: int, memory: bool) -> Loaded:
    text, rules = scenario_text(size)
    gc.collect()
    started = time.process_time()
    parse_yaml(text, "bench.yaml")
    parse_s = time.process_time() - started
    gc.collect()
    started = time.process_time()
    scenario = load_text(text, "bench.yaml")
    load_s = time.process_time() - started
    assert len(scenario.rules) == rules
    del scenario
    peak = None
    if memory:
        gc.collect()
        tracemalloc.start()
        load_text(text, "bench.yaml")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return Loaded(len(text.encode()), rules, parse_s, load_s, peak)


def report(results: list[Loaded]) -> None:
    print("\nScenario loading (CPU seconds per MiB; peak memory of the load / file size)")
    print(f"  {'file':>8}  {'rules':>7}  {'YAML s/MiB':>10}  {'load s/MiB':>10}  {'load s':>7}  {'memory':>7}")
    for r in results:
        mib = r.size / MIB
        print(
            f"  {mib:7.1f}M  {r.rules:7,}  {r.parse_s / mib:10.2f}  {r.load_s / mib:10.2f}  {r.load_s:7.2f}"
            f"  {'-' if r.peak is None else f'{r.peak / r.size:.1f}x':>7}"
        )
    print("  (before the one-pass libyaml loader: 4.7-9.7 s per MiB, 46-48 s and ~100x for 5 MiB)")


def run(quick: bool) -> list[Loaded]:
    return [measure(size, memory=size == MIB) for size in ((MIB,) if quick else (MIB, 5 * MIB))]
