"""A deterministic tokenizer that cuts text the way GPT tokenizers do.

It is the pre-tokenizer of cl100k (words with their leading space, digits in runs of at
most three, punctuation apart), without the BPE merges: one piece is one token. That is
close enough for chunk boundaries and usage counts to look real ("What's 1+1?" is 7
tokens, as in cl100k) and it never loses a character: the pieces join back to the text.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
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


# The caches keep short texts only, so that what they hold is bounded in bytes, not only in
# entries: short texts are the ones that repeat (system prompts, tool names, model names), and a
# prompt of megabytes must not stay in memory after its request. Bounds: 4096 counts of texts of
# up to 1024 characters (4 MB of ASCII, 16 MB at 4 bytes a character), 256 splits of up to 1024
# characters (a few MB with their pieces), 1024 counts of longer texts keyed on a 16-byte digest.
_SHORT = 1024
_SHORT_ENTRIES = 4096
_LONG_ENTRIES = 1024


class _Counts(dict[str, int]):
    """Token counts by text. A hit is dict's own lookup, in C; only a miss runs Python (__missing__)."""

    def __init__(self) -> None:
        super().__init__()
        # Misses may come from two threads at once (the background server's and a test's).
        self._lock = threading.Lock()
        # A long text that repeats (a long system prompt, a chat history resent every turn) costs a
        # digest (blake2b: ~3 ms for 1 MB) instead of a tokenization (~100 ms for 1 MB); only the
        # digest is kept.
        self._long: OrderedDict[bytes, int] = OrderedDict()

    def __missing__(self, text: str) -> int:
        if len(text) > _SHORT:
            return self._count_long(text)
        count = len(_PATTERN.findall(text))
        with self._lock:
            if len(self) >= _SHORT_ENTRIES:
                del self[next(iter(self))]  # the oldest entry: dicts keep insertion order
            self[text] = count
        return count

    def _count_long(self, text: str) -> int:
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        with self._lock:
            count = self._long.get(key)
            if count is not None:
                self._long.move_to_end(key)
                return count
        count = len(_PATTERN.findall(text))  # outside the lock: a short text's miss must not wait for it
        with self._lock:
            self._long[key] = count
            if len(self._long) > _LONG_ENTRIES:
                self._long.popitem(last=False)
        return count


# Called per message of every request: a bound C method, so that a cached count costs no Python frame
# (a function in front of the cache cost ~650 instructions a request in bench.inprocess).
count_tokens: Callable[[str], int] = _Counts().__getitem__


@lru_cache(maxsize=256)
def _split_short(text: str) -> tuple[str, ...]:
    return tuple(_PATTERN.findall(text))


def split_tokens(text: str) -> list[str]:
    """Cut `text` into tokens; `"".join(split_tokens(t)) == t` always holds."""
    return list(_split_short(text)) if len(text) <= _SHORT else _PATTERN.findall(text)
