"""Hardening (issue 11): no regex condition can freeze the server, no prompt stays in memory.

`regex` conditions run on RE2 (linear time); a pattern RE2 cannot run is refused at load with
file:line, why and what to write instead. The tokenizer's caches keep short texts only, so a
prompt of megabytes is gone once its request is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockllm import Engine, ScenarioError, load_text
from mockllm.scenario import TextMatch
from mockllm.server import BackgroundServer
from mockllm.tokens import count_tokens, split_tokens

EVIL = "(a+)+$"  # nested quantifiers: Python's re tries 2**n ways on "a"*n + "b"


def _chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


@contextlib.contextmanager
def mockllm_serve(scenario: Path, log: Path) -> Iterator[str]:
    """`mockllm serve` in a process of its own, yielding its base URL. Not the session's in-process
    server: a backtracking regex holds the GIL in C, so in this process not even a client's timeout
    would fire again and the test would hang instead of failing; a server process of its own lets
    the client time out, and is killed after."""
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mockllm",
                "serve",
                "--scenarios",
                str(scenario),
                "--port",
                "0",
                "--time-scale",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,  # a file, not a pipe: a pipe nobody reads could fill and stall the server
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"OPENAI_BASE_URL=(\S+)", log.read_text())):
            assert proc.poll() is None, f"mockllm serve exited {proc.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"mockllm serve printed no URL in 30 s: {log.read_text()}"
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:  # a frozen server ignores SIGTERM (the drill)
            proc.kill()
            proc.wait(5)


def test_backtracking_pattern_blocks_no_one(tmp_path: Path) -> None:
    """The issue's drill: `(a+)+$` and "a"*40 + "b" froze the server for good (a 24-character
    text already blocked every request for 3.6 s). Now it and 50 others all answer at once."""
    scenario = tmp_path / "evil.yaml"
    scenario.write_text(
        "version: 1\nrules:\n"
        f"  - name: evil\n    match: {{user: {{regex: '{EVIL}'}}}}\n    reply: {{content: all a}}\n"
        "  - name: other\n    reply: {content: other}\n"
    )

    async def drill(base_url: str) -> tuple[float, list[tuple[str, float]]]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=base_url, timeout=5.0, limits=limits) as client:

            async def ask(text: str) -> tuple[str, float]:
                sent = time.perf_counter()
                answer = await client.post("/chat/completions", json=_chat(text))
                assert answer.status_code == 200, answer.text
                return answer.json()["choices"][0]["message"]["content"], time.perf_counter() - sent

            await ask("warm up the connection pool's first connection")
            start = time.perf_counter()
            answers = await asyncio.gather(ask("a" * 40 + "b"), ask("a" * 40), *(ask(f"hi {i}") for i in range(50)))
            return time.perf_counter() - start, answers

    with mockllm_serve(scenario, tmp_path / "serve.log") as base_url:
        elapsed, answers = asyncio.run(drill(base_url))
    assert [content for content, _ in answers] == ["other", "all a"] + ["other"] * 50
    # ~0.1 s on a quiet machine; 2 s leaves room for a loaded one, and is far from 3.6 s, let alone days.
    assert elapsed < 2.0, f"52 requests took {elapsed:.2f} s; slowest: {max(t for _, t in answers):.2f} s"


def test_long_text_matches_in_linear_time() -> None:
    """A megabyte of text against the evil pattern: RE2 answers in milliseconds, match or not.
    In a child process, for the reason mockllm_serve gives: a backtracking engine would hang this one."""
    code = (
        "from mockllm.scenario import TextMatch\n"
        f"cond = TextMatch(regex={EVIL!r})\n"
        "assert not cond.test('a' * 1_000_000 + 'b')\n"
        "assert cond.test('a' * 1_000_000)\n"
        "assert not cond.test('a' * 30 + 'b')\n"
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=20)
    # Start-up (pydantic, imports) is most of it; the three matches take milliseconds, a backtracking one days.
    assert time.perf_counter() - start < 20


def _rule(pattern: str) -> str:
    return (
        f"version: 1\nrules:\n  - name: r\n    match:\n      user: {{regex: '{pattern}'}}\n    reply: {{content: hi}}\n"
    )


def test_refused_pattern_exact_form() -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(_rule("^(?=.*refund).*$"), "bad.yaml")
    assert str(info.value) == (
        "bad.yaml:5: rules[0].match.user: regex '^(?=.*refund).*$' cannot run on RE2, the linear-time engine"
        " of regex conditions (invalid perl operator: (?=): RE2 has no lookahead: use contains/equals, or two rules"
    )


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        (r"(\w)\1", "RE2 has no backreferences"),
        (r"(?P<w>\w)(?P=w)", "RE2 has no backreferences"),
        (r"(?=a)b", "RE2 has no lookahead"),
        (r"^(?!no).*", "RE2 has no negative lookahead: put a rule for the texts to leave out first"),
        (r"(?<=Mr\. )\w+", "RE2 has no lookbehind"),
        (r"(?<!un)happy", "RE2 has no negative lookbehind"),
        (r"done\Z", "RE2 writes Python's \\Z (end of text) as \\z"),
        (r"caf\u00e9", "write the character itself, or \\x{00e9}"),
        (r"a++b", "RE2 has no possessive quantifiers"),
        (r"(?>a+)b", "an atomic group is a plain one"),
        (r"(?x) a b", "RE2 has no verbose mode"),
        (r"(?#note)a", "RE2 has no (?#...) comments"),
        (r"(?a)\w", "RE2 knows the inline flags i, m, s and U"),
        (r"((a{100}){100}){100}", "RE2 repeats at most 1000 times"),
        (r"a{,3}", "RE2 reads {,n} as plain text, not as up to n times: write {0,n}"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_a_hint(pattern: str, hint: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(_rule(pattern), "bad.yaml")
    message = str(info.value)
    assert message.startswith(f"bad.yaml:5: rules[0].match.user: regex {pattern!r}"), message
    assert hint in message, message
    assert "\n" not in message


def test_a_pattern_python_cannot_compile_says_where() -> None:
    with pytest.raises(ScenarioError) as info:
        load_text(_rule("(unclosed"), "bad.yaml")
    assert str(info.value) == (
        "bad.yaml:5: rules[0].match.user: regex '(unclosed' does not compile:"
        " missing ), unterminated subpattern at position 0"
    )


# Python syntax RE2 shares: each pattern must decide as Python's re does, on every text.
SHARED = [
    r"(?i)count to 100",
    r"^\d+ \+ \d+$",
    r"(?i)pirate",
    r"^b",
    r"(?P<word>hello) world",
    r"\bcat\b",
    r"colou?r",
    r"[A-Z][a-z]+ [A-Z][a-z]+",
    r"(?s)start.*end",
    r"(?m)^second$",
    r"a{2,3}",
    r"\\d",  # an escaped backslash, then d
    r"a\{,3}",  # an escaped brace: the text "{,3}" in both
    r"\x41\t",
    r"[^\s,]+,",
    "é|日本",
    r"(?i)ÉTÉ",
    r"^hello$",  # Python's $ matches before a last newline too
    r"(?m)^hello$",
    r"o\n$",
    r"\n$",
]
TEXTS = [
    "Count to 100, please",
    "COUNT TO 100",
    "12 + 34",
    "12 + 34 ",
    "Talk like a pirate",
    "bob",
    "hello world",
    "a cat sat",
    "concatenate",
    "colour and color",
    "Ada Lovelace",
    "start\nmiddle\nend",
    "first\nsecond\nthird",
    "aaaa",
    "a{,3}",
    "\\d",
    "A\t",
    "one,two",
    "café 日本語",
    "l'été",
    "hello\n",
    "hello\n\n",
    "hello",
    "say hello\nhello\n",
    "",
]


@pytest.mark.parametrize("pattern", SHARED)
def test_shared_syntax_decides_as_python_does(pattern: str) -> None:
    cond = TextMatch(regex=pattern)
    for text in TEXTS:
        assert cond.test(text) == (re.search(pattern, text) is not None), (pattern, text)


def test_bundled_regex_rule_still_answers(serve: Callable[..., Any]) -> None:
    served = serve("scenarios/cookbook.yaml")
    answer = httpx.post(f"{served.base_url}/chat/completions", json=_chat("Please COUNT TO 100, with commas"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"].startswith("1, 2, 3, ")


def test_odd_texts_never_raise() -> None:
    cond = TextMatch(regex="x")
    assert not cond.test("\ud800 lone surrogate")  # orjson refuses these in bodies; the condition must not raise
    assert cond.test("\x00x\x00")
    assert not cond.test(None)


# Memory: the tokenizer's caches keyed on whole texts kept every prompt.


@pytest.fixture
def unjournaled(server: BackgroundServer) -> Iterator[str]:
    """A namespace whose engine keeps no journal, as `mockllm serve` runs: only caches could keep a prompt."""
    name = f"hardening-{id(server)}-{time.monotonic_ns()}"
    engine = Engine(seed=0, time_scale=0, journal_limit=0)
    engine.add({"version": 1, "rules": [{"reply": {"content": "ok"}}]})
    server.namespaces[name] = engine
    yield f"{server.url}/ns/{name}/v1"
    server.namespaces.pop(name, None)


def test_large_prompts_are_not_kept(unjournaled: str) -> None:
    """The issue's drill: six distinct 2 MB prompts took RSS from 68 MB to 510 MB for good. Here six
    distinct prompts of 256 KB (each ~3 MB as tokens) go through the server under tracemalloc (which
    sees every allocation, unlike RSS): the caches used to keep 19 MB of them, now ~0.5 MB is left."""
    size = 1 << 18
    with httpx.Client(base_url=unjournaled, timeout=30.0) as client:
        client.post("/chat/completions", json=_chat("warm up"))
        gc.collect()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            usages = []
            for i in range(6):
                text = (f"prompt {i}: " + "lorem ipsum dolor sit amet, " * (size // 28 + 1))[:size]
                answer = client.post("/chat/completions", json=_chat(text))
                assert answer.status_code == 200, answer.text[:200]
                usages.append(answer.json()["usage"]["prompt_tokens"])
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(set(usages)) <= 2  # counted, not skipped: about the same count for texts of one size
    assert after - before < 8 * size, f"{(after - before) / 2**20:.1f} MB kept after 6 prompts of 256 KB"


def test_long_texts_count_as_they_split() -> None:
    """Long texts are counted through a digest-keyed cache: same count as their pieces, on a hit too."""
    text = "Hello, world! 12345 " * 20_000
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert count_tokens(text) == len(pieces) == count_tokens(text)
    longer = text + "one more"  # its start is `text`'s: a cache keyed on a prefix would answer len(pieces)
    assert count_tokens(longer) == len(split_tokens(longer)) == len(pieces) + 1
    short = "Say hello."
    assert count_tokens(short) == len(split_tokens(short)) == 3


def test_many_short_texts_stay_bounded() -> None:
    """Short texts are cached by value, 4096 at most: 12,000 distinct ones of 500 characters (6 MB)
    leave at most ~2.5 MB behind (an unbounded cache would keep all 6 MB)."""
    body = "x" * 492  # one piece: the loop measures the cache, not the tokenizer under tracemalloc
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(12_000):
            assert count_tokens(f"{body}{i:08d}") == 4  # x..x, then the digits in runs of 3
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 4 << 20, f"{(after - before) / 2**20:.1f} MB kept by 12,000 texts of 500 characters"
