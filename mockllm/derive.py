"""Values that look random on the wire but derive from (seed, rule, call index).

Same inputs, same value, in every process: blake2b, never `hash()` (salted per process)
and never the clock.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass

__all__ = ["Derived"]

_ALNUM = string.ascii_letters + string.digits
# A plausible `created`: between 2024-01-01 and 2026-01-01, fixed per call.
_EPOCH_START = 1_704_067_200
_EPOCH_SPAN = 63_158_400


@dataclass(frozen=True, slots=True)
class Derived:
    """The derived identity of one answered call."""

    seed: int
    rule_key: str
    call_index: int

    def _digest(self, purpose: str, size: int = 32) -> bytes:
        text = f"{self.seed}\x1f{self.rule_key}\x1f{self.call_index}\x1f{purpose}"
        return hashlib.blake2b(text.encode(), digest_size=size).digest()

    def number(self, purpose: str) -> int:
        return int.from_bytes(self._digest(purpose, 8), "big")

    def rng(self, purpose: str) -> random.Random:
        return random.Random(self.number(purpose))

    def alnum(self, purpose: str, length: int) -> str:
        digest = self._digest(purpose, 64)
        return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[:length])

    def hex(self, purpose: str, length: int) -> str:
        return self._digest(purpose, 32).hex()[:length]

    @property
    def completion_id(self) -> str:
        return "chatcmpl-" + self.alnum("id", 29)

    @property
    def created(self) -> int:
        return _EPOCH_START + self.number("created") % _EPOCH_SPAN

    @property
    def fingerprint(self) -> str:
        # Per seed, not per call: real fingerprints change with deployments, not requests.
        digest = hashlib.blake2b(f"{self.seed}\x1ffp".encode(), digest_size=8).hexdigest()
        return "fp_" + digest[:10]

    @property
    def request_id(self) -> str:
        return "req_" + self.hex("request-id", 32)

    def call_id(self, index: int) -> str:
        return "call_" + self.alnum(f"call-{index}", 24)
