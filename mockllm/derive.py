"""Values that look random on the wire but derive from (seed, rule, call index).

Same inputs, same value, in every process: blake2b, never `hash()` (salted per process)
and never the clock.
"""

from __future__ import annotations

import hashlib
import random
import string
import struct
from functools import lru_cache
from typing import Any

__all__ = ["Derived"]

_ALNUM = string.ascii_letters + string.digits
# A plausible `created`: between 2024-01-01 and 2026-01-01, fixed per call.
_EPOCH_START = 1_704_067_200
_EPOCH_SPAN = 63_158_400


_unpack_u64 = struct.Struct(">Q").unpack_from  # = int.from_bytes(8 bytes, "big"), without the slice

# byte -> one of 62 letters and digits, for bytes.translate (a Python loop per character costs more)
_TO_ALNUM = bytes(ord(_ALNUM[b % len(_ALNUM)]) for b in range(256))


@lru_cache(maxsize=1024)
def _core_hasher(seed: int, rule_key: str) -> Any:
    """A blake2b that has taken in a rule's part of the core text; each call copies it (cheaper than anew)."""
    return hashlib.blake2b(f"{seed}\x1f{rule_key}\x1f".encode(), digest_size=64)


class Derived:
    """The derived identity of one answered call.

    The values every answer needs (`completion_id`, `created`, `request_id`) come from one
    digest, made at once; other purposes (tool-call ids, jitter, generated text) hash their own.
    """

    __slots__ = ("call_index", "completion_id", "core", "created", "request_id", "rule_key", "seed")
    core: bytes  # the digest the values above come from (dialects cut their own ids from it)
    completion_id: str
    created: int
    request_id: str

    def __init__(self, seed: int, rule_key: str, call_index: int) -> None:
        self.seed = seed
        self.rule_key = rule_key
        self.call_index = call_index
        hasher = _core_hasher(seed, rule_key).copy()
        hasher.update(b"%d\x1fcore" % call_index)  # the same bytes as _digest("core", 64) hashes
        self.core = core = hasher.digest()
        self.completion_id = "chatcmpl-" + core[:29].translate(_TO_ALNUM).decode("ascii")
        self.created = _EPOCH_START + _unpack_u64(core, 29)[0] % _EPOCH_SPAN
        self.request_id = "req_" + core[37:53].hex()

    def __repr__(self) -> str:
        return f"Derived(seed={self.seed}, rule_key={self.rule_key!r}, call_index={self.call_index})"

    def _digest(self, purpose: str, size: int = 32) -> bytes:
        text = f"{self.seed}\x1f{self.rule_key}\x1f{self.call_index}\x1f{purpose}"
        return hashlib.blake2b(text.encode(), digest_size=size).digest()

    def number(self, purpose: str) -> int:
        return int.from_bytes(self._digest(purpose, 8), "big")

    def rng(self, purpose: str) -> random.Random:
        return random.Random(self.number(purpose))

    def hex(self, purpose: str, size: int) -> str:
        """`size` bytes as hex digits."""
        return self._digest(purpose, size).hex()

    def alnum(self, purpose: str, length: int) -> str:
        return self._digest(purpose, 64)[:length].translate(_TO_ALNUM).decode("ascii")

    @property
    def fingerprint(self) -> str:
        # Per seed, not per call: real fingerprints change with deployments, not requests.
        digest = hashlib.blake2b(f"{self.seed}\x1ffp".encode(), digest_size=8).hexdigest()
        return "fp_" + digest[:10]

    def call_id(self, index: int) -> str:
        return "call_" + self.alnum(f"call-{index}", 24)
