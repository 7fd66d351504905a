"""A deterministic tokenizer that cuts text the way GPT tokenizers do.

It is the pre-tokenizer of cl100k (words with their leading space, digits in runs of at
most three, punctuation apart), without the BPE merges: one piece is one token. That is
close enough for chunk boundaries and usage counts to look real ("What's 1+1?" is 7
tokens, as in cl100k) and it never loses a character: the pieces join back to the text.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["count_tokens", "split_tokens"]

_LETTER = r"[^\W\d_]"
_PUNCT = r"(?:[^\s\w]|_)"
_PATTERN = re.compile(
    "|".join(
        (
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)",
            rf"(?:[^\r\n\w]|_)?{_LETTER}+",
            r"\d{1,3}",
            rf" ?{_PUNCT}+[\r\n]*",
            r"\s*[\r\n]+",
            r"\s+(?!\S)",
            r"\s+",
            r".",  # anything the rules above miss (e.g. a lone combining mark)
        )
    ),
    re.DOTALL,
)


@lru_cache(maxsize=4096)
def _split(text: str) -> tuple[str, ...]:
    return tuple(_PATTERN.findall(text))


def split_tokens(text: str) -> list[str]:
    """Cut `text` into tokens; `"".join(split_tokens(t)) == t` always holds."""
    return list(_split(text))


@lru_cache(maxsize=4096)  # called per message of every request: a hit stays in C
def count_tokens(text: str) -> int:
    return len(_split(text))
