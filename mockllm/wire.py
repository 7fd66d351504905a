"""OpenAI's wire format: response bodies, stream chunks and error envelopes, as bytes.

Field order and spelling follow recorded 2025 traffic (shared/wire.md); JSON is compact
and keeps non-ASCII text as UTF-8, as the real API sends it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "ERROR_DEFAULTS",
    "ChunkMaker",
    "CompletionTemplate",
    "ToolCallWire",
    "azure_error_body",
    "choices_json",
    "completion_json",
    "dumps",
    "error_body",
    "json_text",
    "model_object",
    "models_body",
    "usage_json",
]

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# What `_encode` does to a str, without its dispatch: the hot paths below build JSON text
# from parts with it, byte for byte what dumps() of the whole object gives.
_str: Any = json.encoder.encode_basestring


def dumps(value: Any) -> str:
    return _encode(value)


def _nullable(value: str | None) -> str:
    return "null" if value is None else _str(value)


@lru_cache(maxsize=256)
def json_text(value: str | None) -> str:
    """A string (or None) as JSON text, remembered: model names and fingerprints repeat."""
    return _nullable(value)


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


def error_body(message: str, type: str, param: str | None = None, code: str | int | None = None) -> bytes:
    envelope = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return dumps(envelope).encode()


def azure_error_body(code: str, message: str) -> bytes:
    return dumps({"error": {"code": code, "message": message}}).encode()


# `usage` with three slots (prompt, completion and total tokens): one layout for streams and bodies.
_USAGE = (
    '{"prompt_tokens":%s,"completion_tokens":%s,"total_tokens":%s,'
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
    '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def usage_json(prompt: int, completion: int) -> str:
    """The `usage` object as JSON text, built from a template (it is on every request's path)."""
    return _USAGE % (prompt, completion, prompt + completion)


@dataclass(frozen=True, slots=True)
class ToolCallWire:
    id: str
    name: str
    arguments: str


def choices_json(content: str | None, tool_calls: Sequence[ToolCallWire], finish_reason: str) -> str:
    """The `choices` array of a chat.completion, as JSON text (made once per reply when it can be)."""
    calls = ""
    if tool_calls:
        items = (
            f'{{"id":{_str(t.id)},"type":"function","function":{{"name":{_str(t.name)},'
            f'"arguments":{_str(t.arguments)}}}}}'
            for t in tool_calls
        )
        calls = f',"tool_calls":[{",".join(items)}]'
    return (
        f'[{{"index":0,"message":{{"role":"assistant","content":{_nullable(content)},"refusal":null,'
        f'"annotations":[]{calls}}},"finish_reason":{_nullable(finish_reason)}}}]'
    )


@dataclass(frozen=True, slots=True)
class CompletionTemplate:
    """A chat.completion body made once per reply, but for what each answer fills in.

    `body()` is then one f-string: no dict, no encoder call, no format string to parse.
    """

    choices_to_prompt: str  # `,"choices":[...],"usage":{"prompt_tokens":`
    completion_to_total: str  # `,"completion_tokens":N,"total_tokens":`
    completion_tokens: int
    details_to_fingerprint: str  # the usage details, then `,"service_tier":...,"system_fingerprint":`

    @classmethod
    def of(cls, choices: str, completion_tokens: int) -> CompletionTemplate:
        usage_head, usage_mid, usage_tail = (_USAGE % ("\0", completion_tokens, "\0")).split("\0")
        return cls(
            f',"choices":{choices},"usage":{usage_head}',
            usage_mid,
            completion_tokens,
            f'{usage_tail},"service_tier":"default","system_fingerprint":',
        )

    def body(self, id: str, created: int, model: str, prompt: int, fingerprint: str) -> bytes:
        """The body; `id`, `model` and `fingerprint` are given as JSON text."""
        return (
            f'{{"id":{id},"object":"chat.completion","created":{created},"model":{model}{self.choices_to_prompt}'
            f"{prompt}{self.completion_to_total}{prompt + self.completion_tokens}{self.details_to_fingerprint}"
            f"{fingerprint}}}"
        ).encode()


def completion_json(
    id: str, created: int, model: str, fingerprint: str | None, choices: str, prompt: int, completion: int
) -> bytes:
    """A whole chat.completion body (CompletionTemplate is the way for a reply answered many times)."""
    return CompletionTemplate.of(choices, completion).body(
        _str(id), created, _str(model), prompt, _nullable(fingerprint)
    )


class ChunkMaker:
    """Builds the `chat.completion.chunk` payloads of one stream.

    The parts every chunk shares are encoded once; a chunk is then a few string joins,
    which keeps long streams cheap.
    """

    __slots__ = ("_ends", "_head", "_tail")

    def __init__(
        self,
        *,
        id: str,
        created: int,
        model: str,
        fingerprint: str | None,
        include_usage: bool,
        obfuscation: Sequence[str] | None,
    ) -> None:
        self._head = (
            f'{{"id":{dumps(id)},"object":"chat.completion.chunk","created":{created},"model":{dumps(model)},'
            f'"service_tier":"default","system_fingerprint":{dumps(fingerprint)},"choices":['
        )
        self._tail = ',"usage":null' if include_usage else ""
        # The end of chunk n is _ends[n % len(_ends)], made once per stream.
        self._ends = tuple(f',"obfuscation":"{o}"}}' for o in obfuscation) if obfuscation else ("}",)

    def _end(self, n: int) -> str:
        return self._ends[n % len(self._ends)]

    def chunk(self, n: int, delta: str, finish_reason: str | None = None) -> str:
        """Chunk number `n` with a delta given as JSON text."""
        finish = "null" if finish_reason is None else f'"{finish_reason}"'
        return f'{self._head}{{"index":0,"delta":{delta},"finish_reason":{finish}}}]{self._tail}{self._end(n)}'

    def content_chunk(self, n: int, text: str) -> str:
        """`chunk(n, content_delta(text))` in one step (the hot path of a stream)."""
        return (
            f'{self._head}{{"index":0,"delta":{{"content":{_str(text)}}},"finish_reason":null}}]'
            f"{self._tail}{self._end(n)}"
        )

    def usage_chunk(self, n: int, usage: str) -> str:
        return f'{self._head}],"usage":{usage}{self._end(n)}'

    @staticmethod
    def role_delta(content_null: bool = False) -> str:
        return '{"role":"assistant","content":null}' if content_null else '{"role":"assistant","content":""}'

    @staticmethod
    def content_delta(text: str) -> str:
        return f'{{"content":{_str(text)}}}'

    @staticmethod
    def tool_head_delta(index: int, call: ToolCallWire) -> str:
        return (
            f'{{"tool_calls":[{{"index":{index},"id":{_str(call.id)},"type":"function",'
            f'"function":{{"name":{_str(call.name)},"arguments":""}}}}]}}'
        )

    @staticmethod
    def tool_args_delta(index: int, fragment: str) -> str:
        return f'{{"tool_calls":[{{"index":{index},"function":{{"arguments":{_str(fragment)}}}}}]}}'


def model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 1715367049, "owned_by": "system"}


def models_body(model_ids: Sequence[str]) -> bytes:
    return dumps({"object": "list", "data": [model_object(m) for m in model_ids]}).encode()
