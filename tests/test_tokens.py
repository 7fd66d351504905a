"""The tokenizer: cl100k-like cuts, and pieces that always join back to the text."""

from __future__ import annotations

import random

import pytest

from mockllm.tokens import count_tokens, split_tokens

SAMPLES = [
    "",
    " ",
    "a",
    "Hello, world!",
    "What's 1+1? Answer in one word.",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF\r\nand lone\rCR",
    "日本語のテキストと中文字符，还有한국어",  # noqa: RUF001 (a fullwidth comma on purpose)
    "emoji 👋🏽 family 👨‍👩‍👧 flags 🇫🇷🇯🇵 keycap 1️⃣",
    "combining: e\u0301 a\u0308 \u0301alone at start, Z\u0351\u0360\u036b\u0343a\u0352\u0308lgo",
    "RTL: مرحبا بالعالم and שלום",
    "numbers 1234567 3.14159 -42 1e10 0x1F",
    "punctuation!!! ??? ... --- ''' \"quoted\" (paren) [brack] {brace} <angle>",
    "snake_case __dunder__ camelCase kebab-case",
    "I'm you're they've we'll she'd IT'S DON'T",
    "code: def f(x):\n    return x ** 2  # square\n",
    "zero\u200bwidth\u200d joiner \ufeff bom",
    "\x00\x01 control \x7f chars",
    "mixed 東京Tokyo123ABC",
    "\U0010ffff \U0001f9ff max planes",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_pieces_join_back(text: str) -> None:
    pieces = split_tokens(text)
    assert "".join(pieces) == text
    assert all(pieces), "no empty piece"
    assert count_tokens(text) == len(pieces)


def test_random_texts_join_back() -> None:
    rng = random.Random(7)
    alphabet = "ab Z9_'.,!?\n\r\t-é日🙂\u0301\u200d "
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert "".join(split_tokens(text)) == text, repr(text)
    for _ in range(100):  # any code point, surrogates aside
        text = "".join(chr(rng.choice([rng.randrange(0, 0xD800), rng.randrange(0xE000, 0x110000)])) for _ in range(30))
        assert "".join(split_tokens(text)) == text


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("What's 1+1?", ["What", "'s", " ", "1", "+", "1", "?"]),
        (
            "What's 1+1? Answer in one word.",
            ["What", "'s", " ", "1", "+", "1", "?", " Answer", " in", " one", " word", "."],
        ),
        ("Two.", ["Two", "."]),
        ("1, 2, 3", ["1", ",", " ", "2", ",", " ", "3"]),
        ("1234567", ["123", "456", "7"]),  # digits in runs of at most three
        ("Hello world", ["Hello", " world"]),  # words carry their leading space
        ("don't", ["don", "'t"]),
        ("I'M", ["I", "'M"]),  # contractions, any case
        ("hi!!!", ["hi", "!!!"]),
        (" (x)", [" (", "x", ")"]),
        ("a  b", ["a", " ", " b"]),  # extra spaces stay apart from the word
        ("line\n\nnext", ["line", "\n\n", "next"]),
        ("end  ", ["end", "  "]),
        ("東京 タワー", ["東京", " タワー"]),
        ("x_y", ["x", "_y"]),
    ],
)
def test_cl100k_like_cuts(text: str, pieces: list[str]) -> None:
    assert split_tokens(text) == pieces


def test_count_to_100_is_298_tokens() -> None:
    assert count_tokens(", ".join(str(n) for n in range(1, 101))) == 298


def test_split_is_pure() -> None:
    text = "The same text, the same pieces."
    first = split_tokens(text)
    first.append("mutated")  # callers get their own list: the cache must not change
    assert split_tokens(text) == ["The", " same", " text", ",", " the", " same", " pieces", "."]
