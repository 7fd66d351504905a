"""The request view: what the router matches on and the reply builder needs, in every API.

Each dialect parses its own wire format into a `Request` (mockllm/dialects/); nothing here
is shaped like one API. The helpers below are the checks the OpenAI dialects share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .errors import RequestError

if TYPE_CHECKING:
    from .conversation import Conversation

__all__ = [
    "Request",
    "invalid_type",
    "message_text",
    "parse_json_object",
    "read_n",
    "read_stop",
    "read_stream_options",
    "stream_flag",
    "type_name",
]

_JSON_HINT = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


@dataclass(slots=True)  # not frozen: a frozen init costs a setattr call per field, on every request
class Request:
    """One request, as every API's rules see it (read-only by convention)."""

    endpoint: str  # the dialect's name: "chat", "responses", ...
    body: dict[str, Any]  # the parsed JSON body, as sent
    model: str
    stream: bool
    headers: Mapping[str, str]  # lower-case names
    user_text: str | None  # the last user input (history included)
    system_text: str | None  # the system/developer message, or the Responses `instructions`
    prompt_tokens: int  # counted as OpenAI's cookbook does: 3 per message, 3 to prime the reply
    include_usage: bool = False  # chat: `stream_options.include_usage`
    include_obfuscation: bool = True  # `stream_options.include_obfuscation`
    tools: tuple[str, ...] = ()  # the names of the tools offered
    max_tokens: int | None = None  # the request's token cap (`max_tokens`, `max_output_tokens`, ...)
    stop: tuple[str, ...] = ()  # the request's stop sequences (`stop`, `stop_sequences`, `stopSequences`)
    logprobs: int | None = None  # logprobs asked for, with this many alternatives per token (None: not asked)
    n: int = 1  # how many choices the answer holds (chat and legacy completions' `n`)
    seed: int | None = None  # the request's own `seed` (chat, legacy completions, Gemini's generationConfig)
    history: tuple[dict[str, Any], ...] = ()  # earlier turns a dialect keeps for it (Responses' chain)
    talk: Conversation | None = None  # what it says of its conversation, read when asked (mockllm/conversation.py)
    canonical: dict[str, bytes] | None = None  # body fields as canonical JSON, made when a `body` condition asks
    # The body as the client sent it, when `body` is more (an Anthropic thread's `continue`, which
    # `body` holds as the whole conversation it stands for): what a recording's `match.body` compares.
    sent_body: dict[str, Any] | None = None


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text: a string, or the text parts of a list of parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}.get(
        type(value), "an object" if isinstance(value, dict) else "null" if value is None else type(value).__name__
    )


def invalid_type(param: str, expected: str, value: Any) -> RequestError:
    return RequestError(
        f"Invalid type for '{param}': expected {expected}, but got {type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or the RequestError OpenAI answers."""
    try:
        # orjson: strict UTF-8, no lone surrogates (they could not be echoed back), a depth limit,
        # and several times faster than json.loads on the path every request takes.
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RequestError(_JSON_HINT) from None
    if not isinstance(body, dict):
        raise RequestError(
            f"Invalid type for request body: expected an object, but got {type_name(body)} instead.",
            code="invalid_type",
        )
    return body


def stream_flag(body: dict[str, Any]) -> bool:
    """The body's `stream`: left out or null is false; anything but a boolean is refused."""
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    return stream


def read_stop(body: dict[str, Any], request: Request) -> None:
    """`stop` (chat, legacy completions) as OpenAI checks it: a string or up to 4 strings, into `request`."""
    stop = body.get("stop")
    if stop is None:
        return
    if isinstance(stop, str):
        request.stop = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > 4:
            raise RequestError(
                f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array "
                f"with length {len(stop)} instead.",
                param="stop",
                code="array_above_max_length",
            )
        request.stop = tuple(stop)
    else:
        raise invalid_type("stop", "one of a string or array of strings", stop)


def read_n(body: dict[str, Any], request: Request) -> None:
    """`n` (chat, legacy completions) as OpenAI checks it: 1 to 128 choices, into `request`."""
    n = body.get("n")
    if n is None:
        return
    if type(n) is not int:
        raise invalid_type("n", "an integer", n)
    if not 1 <= n <= 128:
        low = n < 1
        raise RequestError(
            f"Invalid 'n': integer {'below minimum' if low else 'above maximum'} value. Expected a value "
            f"{'>= 1' if low else '<= 128'}, but got {n} instead.",
            param="n",
            code="integer_below_min_value" if low else "integer_above_max_value",
        )
    request.n = n


def read_stream_options(body: dict[str, Any], request: Request) -> None:
    """`stream_options` (chat, legacy completions) as OpenAI checks it, into `request`."""
    options = body.get("stream_options")
    if options is None:
        return
    if not isinstance(options, dict):
        raise invalid_type("stream_options", "an object", options)
    if not request.stream:
        raise RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    request.include_usage = options.get("include_usage") is True
    request.include_obfuscation = options.get("include_obfuscation", True) is not False
