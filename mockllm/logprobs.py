"""Token log probabilities that look real and never change: one per token the answer sends.

When a request asks for logprobs (chat `logprobs`/`top_logprobs`, Responses `top_logprobs` with
`include: ["message.output_text.logprobs"]`, legacy completions `logprobs`), each token gets a
logprob <= 0 made from a digest of (seed, position, token): the same answer gives the same
numbers in every run and process. Most tokens are near 0 (a confident model), some far below,
as in real traffic. Its `top_logprobs` alternatives start with the token itself (it was the most
likely), then distinct other tokens in descending order, each less likely than the one before.
The APIs' shapes are made by their dialects from these.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["MAX_TOP", "TokenLogprob", "token_logprobs"]

MAX_TOP = 20  # the most alternatives any API gives (chat and Responses: 20; legacy completions: 5)

# Alternatives are drawn from common tokens, so that they read like a model's near misses.
_VOCABULARY = (
    " the", " a", " and", " of", " to", " is", " in", " it", " that", " you", ".", ",", " I", " this", " for",
    " on", " with", " as", " be", " are", " was", " not", " or", " an", " at", " by", " can", " we", " so",
    " but", " they", " one", " all", " if", " has", " do", " more", " will", " there", "\n", "!", "?", ":",
)  # fmt: skip


class TokenLogprob(NamedTuple):
    token: str
    logprob: float
    bytes: list[int]
    top: tuple[tuple[str, float, list[int]], ...]  # (token, logprob, bytes), most likely first


def token_logprobs(tokens: Sequence[str], seed: int, top: int, start: int = 0) -> list[TokenLogprob]:
    """The logprob of each token (its position counted from `start`), with `top` alternatives."""
    top = max(0, min(top, MAX_TOP))
    out = []
    for i, token in enumerate(tokens, start):
        digest = hashlib.blake2b(f"{seed}\x1f{i}\x1f{token}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
        u = int.from_bytes(digest[:4], "big") / 2**32
        logprob = -round(6.0 * u**8 + 1e-7, 7)  # mostly near 0 (median -0.02), one in ten below -2.5; never -0.0
        alternatives: list[tuple[str, float, list[int]]] = []
        if top:
            alternatives.append((token, logprob, _bytes(token)))
            # The alternatives share what the token leaves of the probability (their sum never passes
            # 1), each less likely than the one before, the first no likelier than the token.
            chance = math.exp(logprob)
            rest = max(1.0 - chance, 1e-9)
            share = min(rest * (0.25 + digest[8] / 1024), chance * 0.999)
            seen = {token}
            pick = int.from_bytes(digest[4:8], "big")
            for k in range(top - 1):
                candidate = _VOCABULARY[(pick + 7 * k) % len(_VOCABULARY)]
                while candidate in seen:  # the vocabulary holds more tokens than any `top` asks
                    pick += 1
                    candidate = _VOCABULARY[(pick + 7 * k) % len(_VOCABULARY)]
                seen.add(candidate)
                alternatives.append((candidate, round(math.log(share), 7), _bytes(candidate)))
                share *= 0.1 + digest[9 + k % 7] / 640  # halved at most: the sum stays under `rest`
        out.append(TokenLogprob(token, logprob, _bytes(token), tuple(alternatives)))
    return out


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8", "surrogatepass"))
