"""What OpenAI's APIs share on the wire: JSON text, the error envelope, headers, ids' padding.

Chat Completions and the Responses API both answer with these (shared/wire.md sections 1 and 5,
shared/dialects.md section 1); each dialect module adds its own bodies and events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..answer import Header
from ..derive import Derived
from ..logprobs import token_logprobs
from ..tokens import split_tokens

__all__ = [
    "ERROR_DEFAULTS",
    "JSON_HEADERS",
    "SSE_HEADERS",
    "Header",
    "azure_error_body",
    "dumps",
    "error_body",
    "fingerprint",
    "headers",
    "json_text",
    "logprob_entries",
    "model_object",
    "models_body",
    "obfuscation_pool",
]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# What `_encode` does to a str, without its dispatch: the hot paths build JSON text from parts
# with it, byte for byte what dumps() of the whole object gives.
string: Any = json.encoder.encode_basestring


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept as UTF-8, as the real API sends it."""
    return _encode(value)


def nullable(value: str | None) -> str:
    return "null" if value is None else string(value)


@lru_cache(maxsize=256)
def json_text(value: str | None) -> str:
    """A string (or None) as JSON text, remembered: model names and fingerprints repeat."""
    return nullable(value)


# status -> (type, code, message); a message may name {model}.
ERROR_DEFAULTS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    408: ("server_error", "timeout", "Request timed out."),
    409: ("invalid_request_error", "conflict", "The request conflicts with the current state of the resource."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: (
        "tokens",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-mockllm on tokens per min (TPM): "
        "Limit 30000, Used 30000, Requested 100. Please try again in 1s.",
    ),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("service_unavailable_error", "server_is_overloaded", "The server is overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}
SERVER_ERROR = ERROR_DEFAULTS[500][2]


def error_body(
    message: str, type: str, param: str | None = None, code: str | int | None = None, *, indent: int | None = None
) -> bytes:
    """`{"error": {message, type, param, code}}`; `indent`: pretty, with a final newline, as the
    Responses API sends its errors (shared/dialects.md section 0)."""
    envelope = {"error": {"message": message, "type": type, "param": param, "code": code}}
    if indent is None:
        return dumps(envelope).encode()
    return (json.dumps(envelope, ensure_ascii=False, indent=indent) + "\n").encode()


def azure_error_body(code: str, message: str) -> bytes:
    return dumps({"error": {"code": code, "message": message}}).encode()


# Header names and values are bytes, as they go on the wire (latin-1): every adapter sends them as
# they are, and the ones below are the same objects on every answer.
JSON_HEADERS: tuple[Header, ...] = ((b"content-type", b"application/json"),)
SSE_HEADERS: tuple[Header, ...] = ((b"content-type", b"text/event-stream; charset=utf-8"),)
_RATE_HEADERS: tuple[Header, ...] = (
    (b"openai-version", b"2020-10-01"),
    (b"x-ratelimit-limit-requests", b"500"),
    (b"x-ratelimit-limit-tokens", b"30000"),
    (b"x-ratelimit-remaining-requests", b"499"),
    (b"x-ratelimit-remaining-tokens", b"29000"),
    (b"x-ratelimit-reset-requests", b"120ms"),
    (b"x-ratelimit-reset-tokens", b"2ms"),
)
_NO_PROCESSING = (b"openai-processing-ms", b"0")


def headers(content_type: Header, request_id: str, seconds: float) -> list[Header]:
    """An answer's headers; `seconds` until its first byte is the processing time it reports."""
    processing = _NO_PROCESSING if not seconds else (b"openai-processing-ms", b"%d" % round(seconds * 1000))
    return [content_type, (b"x-request-id", request_id.encode()), *_RATE_HEADERS, processing]


@lru_cache(maxsize=64)
def fingerprint(seed: int) -> str:
    return Derived(seed, "", 0).fingerprint  # per seed, not per call


@lru_cache(maxsize=64)
def obfuscation_pool(seed: int) -> tuple[str, ...]:
    """Padding strings of 0-15 characters, like the real `obfuscation` field, per seed."""
    rng = Derived(seed, "obfuscation", 0).rng("pool")
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return tuple("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15))) for _ in range(16))


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1715367049, "owned_by": "system"}


def models_body(model_ids: Sequence[str]) -> bytes:
    return dumps({"object": "list", "data": [model_object(m) for m in model_ids]}).encode()


def logprob_entries(pieces: Sequence[str], seed: int, top: int, start: int = 0) -> list[dict[str, Any]]:
    """The logprobs of these pieces' tokens as Chat Completions and the Responses API give them
    (`token`, `logprob`, `bytes`, `top_logprobs`); mockllm/logprobs.py makes the numbers."""
    tokens = [token for piece in pieces for token in split_tokens(piece)]
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": t.bytes,
            "top_logprobs": [{"token": a, "logprob": lp, "bytes": b} for a, lp, b in t.top],
        }
        for t in token_logprobs(tokens, seed, top, start)
    ]
