"""OpenAI's embeddings: `POST /v1/embeddings` (and Azure's deployments path).

Wire facts: shared/dialects.md sections 0 and 5. Never streamed; the body is a list of
`embedding` objects, pretty-printed (2 spaces, a final newline), each vector a list of floats or,
for `encoding_format: base64` (what the openai SDKs ask for when the caller does not say), the
little-endian float32 bytes in base64. The header `openai-model` names the model.

The rule the router picks still decides the answer (its model, usage, `error`, a `disconnect` or
`stall` fault); the reply's text does not shape the vectors. A vector is made of the input text
and the seed alone (never the call index), so the same text embeds the same in every call:

- the text's words (lower-cased runs of letters and digits; a text with none counts as one word,
  itself) each get a pseudo-random vector of the model's full size, from blake2b of (seed, word):
  components uniform in [-1, 1], so two different words' vectors are nearly orthogonal;
- the text's vector is the sum of its words' (a word that comes twice counts twice), cut to
  `dimensions` and scaled to unit length (cut first: a shortened vector is the full one's prefix,
  renormalised, as OpenAI's `dimensions` behaves).

So cosine similarity grows with the words two texts share (about shared / sqrt(words1 * words2)),
and texts sharing no word are near 0: a retrieval test ranks the document that shares the query's
words first. There is no meaning beyond words: synonyms, word order and stemming count for nothing
("car" and "cars" are unrelated).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import add
from typing import TYPE_CHECKING, Any

import orjson

from ..answer import Answer
from ..errors import RequestError
from ..request import Request, invalid_type, parse_json_object
from ..tokens import count_tokens
from .base import Call, Dialect, Route
from .openai import JSON_HEADERS, Header, headers

if TYPE_CHECKING:
    import random

    from ..derive import Derived
    from ..router import Hit
    from ..scenario import Reply

__all__ = [
    "DEFAULT_DIMENSIONS",
    "EMBEDDINGS",
    "MODEL_DIMENSIONS",
    "embed",
    "model_dimensions",
    "parse_embeddings",
    "vectors",
]

# Each model's real size; any other name gets DEFAULT_DIMENSIONS.
MODEL_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
DEFAULT_DIMENSIONS = 1536
_FORMATS = ("float", "base64")
_KEYS = frozenset(("model", "input", "encoding_format", "dimensions", "user"))
_WORD = re.compile(r"\w+")
_JSON_TYPE = JSON_HEADERS[0]
_INDENT = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
_LEVELS = tuple(b / 127.5 - 1.0 for b in range(256))  # a byte -> a component in [-1, 1]


def _inputs(given: Any) -> list[str]:
    """The input texts, one per vector; token arrays become their ids as words ("1 2 3")."""
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and given:
        if all(isinstance(g, str) for g in given):
            return list(given)
        if all(type(g) is int for g in given):  # one input as token ids
            return [" ".join(map(str, given))]
        if all(isinstance(g, list) and g and all(type(t) is int for t in g) for g in given):
            return [" ".join(map(str, g)) for g in given]
    if isinstance(given, list) and not given:
        raise RequestError(
            "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param="input",
            code="empty_array",
        )
    raise invalid_type("input", "one of a string, an array of strings or an array of token arrays", given)


def _input_tokens(given: Any, texts: list[str]) -> int:
    if isinstance(given, list) and given and not isinstance(given[0], str):  # token ids: one token each
        return len(given) if type(given[0]) is int else sum(len(g) for g in given)
    return sum(count_tokens(t) for t in texts)


def model_dimensions(model: str) -> int:
    return MODEL_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)


def parse_embeddings(raw: bytes, headers: Mapping[str, str], default_model: str | None = None) -> Request:
    """Parse and check an embeddings body; raise RequestError as OpenAI would answer."""
    body = parse_json_object(raw)
    unknown = sorted(set(body) - _KEYS)
    if unknown:  # the API's request schema allows no other keys (`stream` included)
        raise RequestError(f"Unrecognized request argument supplied: {unknown[0]}", param=unknown[0])
    model = body.get("model", default_model)
    if type(model) is not str:
        if model is None:
            raise RequestError("you must provide a model parameter", param="model", code="missing_required_parameter")
        raise invalid_type("model", "a string", model)
    if "input" not in body:
        raise RequestError("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    texts = _inputs(body["input"])
    fmt = body.get("encoding_format", "float")
    if fmt not in _FORMATS:
        raise RequestError(
            f"Invalid value: {orjson.dumps(fmt).decode()}. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
            code="invalid_value",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None:
        size = model_dimensions(model)
        if type(dimensions) is not int:
            raise invalid_type("dimensions", "an integer", dimensions)
        if not 1 <= dimensions <= size:
            raise RequestError(
                f"Invalid 'dimensions': {dimensions}. {model} has {size} dimensions: ask for 1 to {size}.",
                param="dimensions",
                code="invalid_value",
            )
    # The rules' `user` is the last (or only) input, as for chat it is the last user message.
    return Request("embeddings", body, model, False, headers, texts[-1], None, _input_tokens(body["input"], texts))


@lru_cache(maxsize=4096)
def _word_vector(seed: int, word: str, size: int) -> tuple[float, ...]:
    """A word's vector of `size` components uniform in [-1, 1], from blake2b in counter mode."""
    out = bytearray()
    block = 0
    while len(out) < size:
        out += hashlib.blake2b(f"{seed}\x1f{word}\x1f{block}".encode(), digest_size=64).digest()
        block += 1
    return tuple(map(_LEVELS.__getitem__, out[:size]))


def embed(text: str, seed: int, size: int, dimensions: int | None = None) -> list[float]:
    """The unit vector of `text` (see the module's docstring), `dimensions` long (float32 values)."""
    counts = Counter(_WORD.findall(text.lower())) or Counter([text])
    length = dimensions or size
    total: list[float] = [0.0] * length
    for word, count in counts.items():
        vector = _word_vector(seed, word, size)
        if count != 1:
            vector = tuple(count * x for x in vector)
        total = list(map(add, total, vector))  # C-level; stops at `length` (the shorter)
    norm = math.hypot(*total) or 1.0
    scaled = [x / norm for x in total]
    return list(struct.unpack(f"<{length}f", struct.pack(f"<{length}f", *scaled)))  # as float32, as sent


def _data(request: Request, seed: int, pinned: dict[str, tuple[float, ...]]) -> list[dict[str, Any]]:
    """One embedding per input: the scenario's pinned vector for that text (`vectors:`, sent as given),
    else the text's own."""
    body = request.body
    size = model_dimensions(request.model)
    as_base64 = body.get("encoding_format") == "base64"
    dimensions = body.get("dimensions")
    return [
        {
            "object": "embedding",
            "index": index,
            "embedding": _encode(list(pinned[text]), as_base64)
            if text in pinned
            else _encoded(text, seed, size, dimensions, as_base64),
        }
        for index, text in enumerate(_inputs(body["input"]))
    ]


# A vector costs ~2.6M instructions to make (bench: ten times a whole answer's other work), and RAG tests
# embed the same documents and queries again and again: the last few hundred short texts' encoded
# vectors are kept. Bounded in bytes: texts of up to 1024 characters, 256 entries (a base64 vector is
# ~8 KB, a float one ~50 KB as a tuple: at most ~13 MB in all); a longer text is made every time.
@lru_cache(maxsize=256)
def _encoded_short(text: str, seed: int, size: int, dimensions: int | None, as_base64: bool) -> Any:
    return _encode(embed(text, seed, size, dimensions), as_base64)


def _encoded(text: str, seed: int, size: int, dimensions: int | None, as_base64: bool) -> Any:
    if len(text) <= 1024:
        return _encoded_short(text, seed, size, dimensions, as_base64)
    return _encode(embed(text, seed, size, dimensions), as_base64)


def _encode(vector: list[float], as_base64: bool) -> Any:
    if as_base64:  # little-endian float32, as the SDK decodes it
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return tuple(vector)  # kept in a cache: not to be changed


def _body(
    request: Request, model: str, prompt_tokens: int, seed: int, pinned: dict[str, tuple[float, ...]] | None = None
) -> bytes:
    listing = {
        "object": "list",
        "data": _data(request, seed, pinned or {}),
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
    return orjson.dumps(listing, option=_INDENT)


def _headers(model: str, request_id: str, seconds: float) -> list[Header]:
    return [*headers(_JSON_TYPE, request_id, seconds), (b"openai-model", model.encode("latin-1", "replace"))]


class EmbeddingsDialect(Dialect):
    name = "embeddings"
    error_indent = 4  # pretty, as the API sends its errors (shared/dialects.md section 0)
    id_prefix = ""  # a list of vectors has no id
    routes = (
        Route("POST", "/v1/embeddings"),
        Route("POST", "/openai/deployments/{deployment}/embeddings"),  # Azure: the deployment is the model
    )
    # Never streamed: the faults that need no stream (the general path cuts or stalls the body).
    fault_kinds = frozenset(("disconnect", "stall"))

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        return parse_embeddings(body, headers, params.get("deployment"))

    def unsendable(self, reply: Reply) -> str | None:
        if reply.sse is not None:
            return (
                "the embeddings API cannot send a verbatim `sse` stream (it never streams): give this rule "
                "another reply, or a match.endpoint without embeddings"
            )
        return None

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        """Every answer but a scripted error or a fault (left to the general path): made here, as the
        `openai-model` header needs the model, which `headers` is not given."""
        script = hit.reply
        if script.error is not None or script.fault is not None:
            return None
        if script.transcript is not None:
            from ..plan import error_answer  # plan imports the dialects: imported here, when first needed

            message = (
                f"mockllm: rule {hit.rule.name!r} ({hit.rule.origin}) replies with a verbatim `sse` stream, "
                "which embeddings (never streamed) cannot send: give that rule a `match.endpoint` without "
                "embeddings, or add a rule for `endpoint: embeddings`."
            )
            body = self.error_body(message, "mockllm_error", None, "reply_not_expressible", status=500)
            return error_answer(500, body, derived.request_id, [("x-should-retry", "false")])
        delay = 0.0 if not scale or script.instant else script.offsets(1, rng, scale)[-1]
        model = script.model or request.model
        prompt = script.usage_prompt if script.usage_prompt is not None else request.prompt_tokens
        body = _body(request, model, prompt, derived.seed, script.vectors)
        return Answer(200, _headers(model, derived.request_id, delay), body, delay)

    def body(self, call: Call) -> bytes:
        return _body(call.request, call.model, call.prompt_tokens, call.derived.seed, call.script.vectors)


EMBEDDINGS = EmbeddingsDialect()


def vectors(texts: Sequence[str], seed: int = 0, model: str = "text-embedding-3-small") -> list[list[float]]:
    """The vectors mockllm answers for `texts` (for tests that compute expected rankings)."""
    return [embed(t, seed, model_dimensions(model)) for t in texts]
