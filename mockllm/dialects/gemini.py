"""The Gemini API (google-genai): `POST /{v1beta,v1}/models/{model}:generateContent` and
`:streamGenerateContent` (the SDK adds `?alt=sse`), and its model listing.

Wire facts: shared/dialects.md section 3 (and 0, 7, 8). A whole answer is one response object,
pretty-printed (2 spaces, a final newline); a streamed one is `data: <json>` lines ended `\\r\\n`,
with no `event:` line and no terminator (google-genai reads only lines that start `data: `, and
either would break its parser). Each chunk is a whole response object repeating the usage so
far, `modelVersion` and `responseId`; the last carries `finishReason`; a function call is one
complete part (no argument deltas, no id). Errors are google.rpc statuses,
`{"error": {"code", "message", "status"}}`, pretty-printed too; mid-stream, such an object is a
chunk of its own, which google-genai raises as ClientError / ServerError by its `code`.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..answer import Answer
from ..errors import RequestError
from ..request import Request, type_name
from ..sse import Event, Write
from ..tokens import count_tokens
from .base import Call, Dialect, Route, Stream
from .openai import SSE_HEADERS, Header, string

if TYPE_CHECKING:
    from ..derive import Derived
    from ..quota import Standing
    from ..router import Hit

__all__ = ["GEMINI", "GeminiStream"]

# The neutral finish -> finishReason (shared/dialects.md sections 7 and 8).
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "function_call": "STOP", "length": "MAX_TOKENS"}
_FILTERED = "SAFETY"
# google.rpc's canonical status per HTTP status (ai.google.dev/gemini-api/docs/troubleshooting), and the
# message the Gemini API sends with it; a message may name {model}.
_STATUSES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        "other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: (
        "NOT_FOUND",
        "models/{model} is not found for API version v1beta, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
    ),
    409: ("ABORTED", "The operation was aborted."),
    413: ("INVALID_ARGUMENT", "Request payload size exceeds the limit."),  # Google says so with a 400
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more information "
        "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    499: ("CANCELLED", "The operation was cancelled."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    501: ("UNIMPLEMENTED", "Method not implemented."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_CODES: dict[str, int] = {}  # a status's HTTP code: the first that names it (INVALID_ARGUMENT: 400)
for _code, (_name, _) in _STATUSES.items():
    _CODES.setdefault(_name, _code)
_ROLES = ("user", "model")
_JSON_TYPE: Header = (b"content-type", b"application/json; charset=UTF-8")
_SSE_TYPE: Header = (b"content-type", b"text/event-stream")
_ATTACHMENT: Header = (b"content-disposition", b"attachment")  # as captured on every stream
_VARY: Header = (b"vary", b"Origin, X-Origin, Referer")
_NO_TIME: Header = (b"server-timing", b"gfet4t7; dur=0")
_EOL = "\r\n"  # the stream's line ending (shared/dialects.md section 0; PAI test_google_model_stream.yaml)


def _status(code: int) -> str:
    known = _STATUSES.get(code)
    if known is not None:
        return known[0]
    return "FAILED_PRECONDITION" if code < 500 else "INTERNAL"


def _chunk_json(value: Any) -> str:
    """A stream chunk's JSON as the API writes it: `": "` after keys, a bare `,` between items."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ": "))


def _pretty(value: Any) -> bytes:
    # orjson's 2-space indent and json.dumps(indent=2)'s give the same bytes (tests/test_gemini_wire.py),
    # orjson in C: the standard library's indenting encoder is pure Python, most of a whole answer's cost.
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def error_json(code: int, message: str, status: str | None = None, retry_delay: str | None = None) -> bytes:
    """A google.rpc Status envelope, pretty-printed; a 429 says when to retry (RetryInfo), as Google's do."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status or _status(code)}
    if retry_delay is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return _pretty({"error": error})


# -- requests ---------------------------------------------------------------------------------


def _invalid(message: str, status: int = 400) -> RequestError:
    return RequestError(message, status=status, type=_status(status))


def _bad_value(where: str, expected: str, value: Any) -> RequestError:
    return _invalid(f"Invalid value at '{where}': expected {expected}, got {type_name(value)} ({_short(value)})")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A Content object's parts, checked as the API checks them (a list of objects, not empty)."""
    if not isinstance(content, dict):
        raise _bad_value(where, 'a Content object ({"role": "user", "parts": [{"text": "..."}]})', content)
    parts = content.get("parts")
    if parts is None or parts == []:
        raise _invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    if not isinstance(parts, list):
        raise _bad_value(f"{where}.parts", "a list of Part objects", parts)
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise _bad_value(f"{where}.parts[{i}]", 'a Part object ({"text": "..."})', part)
        if "text" in part and not isinstance(part["text"], str):
            raise _invalid(f"Invalid value at '{where}.parts[{i}].text' (TYPE_STRING), {_short(part['text'])}")
    return parts


def _text(parts: list[dict[str, Any]]) -> str | None:
    """The text parts joined, or None when there is none (function calls and results, data only)."""
    texts = [part["text"] for part in parts if isinstance(part.get("text"), str) and not part.get("thought")]
    return "".join(texts) if texts else None


def _part_tokens(parts: list[dict[str, Any]]) -> int:
    """A turn's tokens: text, function calls and their results (a rough count, as for every API)."""
    total = 0
    for part in parts:
        if isinstance(part.get("text"), str):
            total += count_tokens(part["text"])
        for key, payload in (("functionCall", "args"), ("functionResponse", "response")):
            call = part.get(key)
            if isinstance(call, dict):
                total += count_tokens(str(call.get("name", ""))) + count_tokens(_chunk_json(call.get(payload, {})))
    return total


def _max_tokens(config: Any) -> int | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        raise _bad_value("generation_config", "a GenerationConfig object", config)
    cap = config.get("maxOutputTokens")
    if cap is None:
        return None
    # proto3 JSON takes an int32 as a number or as a string of digits
    if type(cap) is int or (isinstance(cap, str) and cap.isdigit()):
        return int(cap)
    raise _invalid(f"Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), {_short(cap)}")


def parse_generate(raw: bytes, headers: Mapping[str, str], model: str, stream: bool) -> Request:
    """Parse and check a GenerateContentRequest; raise RequestError as the Gemini API would answer."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid(
            "Invalid JSON payload received. Unexpected token. (The body must be a JSON object: "
            '{"contents": [{"role": "user", "parts": [{"text": "..."}]}]}.)'
        ) from None
    if not isinstance(body, dict):
        raise _invalid(
            f'Invalid JSON payload received. Unknown name "": Root element must be a message, got {type_name(body)}.'
        )
    contents = body.get("contents")
    if contents is None or contents == []:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified")
    if not isinstance(contents, list):
        raise _bad_value("contents", "a list of Content objects", contents)
    user_text: str | None = None
    prompt_tokens = 3
    for i, content in enumerate(contents):
        parts = _parts(content, f"contents[{i}]")
        role = content.get("role", "user")  # a single turn may leave it out
        if role not in _ROLES:
            raise _invalid(f"Please use a valid role: user, model. (contents[{i}].role is {_short(role)})")
        text = _text(parts)
        # The last user turn with text is the user match: a turn of function results only answers a
        # call and keeps the question it answers (as a chat `tool` message does).
        if role == "user" and text is not None:
            user_text = text
        prompt_tokens += 3 + _part_tokens(parts)
    system_text = None
    system = body.get("systemInstruction", body.get("system_instruction"))
    if system is not None:
        system_text = _text(_parts(system, "system_instruction")) or ""
        prompt_tokens += count_tokens(system_text)
    request = Request("gemini", body, model, stream, headers, user_text, system_text, prompt_tokens)
    config = body.get("generationConfig", body.get("generation_config"))
    request.max_tokens = _max_tokens(config)
    stops = config.get("stopSequences", config.get("stop_sequences")) if isinstance(config, dict) else None
    if isinstance(stops, list):
        request.stop = tuple(s for s in stops if isinstance(s, str))
    if isinstance(config, dict) and type(config.get("seed")) is int:
        request.seed = config["seed"]
    request.tools = tuple(
        declaration["name"]
        for tool in body.get("tools") or ()
        if isinstance(tool, dict)
        and isinstance(declarations := tool.get("functionDeclarations", tool.get("function_declarations")), list)
        for declaration in declarations
        if isinstance(declaration, dict) and isinstance(declaration.get("name"), str)
    )
    return request


# -- the response object ----------------------------------------------------------------------


def _response_id(derived: Derived) -> str:
    """23 url-safe base64 characters, as real ones (shared/dialects.md section 3), from the call's digest."""
    return base64.urlsafe_b64encode(derived.core[:18]).decode("ascii")[:23]


def _args(arguments: str) -> dict[str, Any]:
    """A function call's `args` object (arguments that are not a JSON object send none)."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _finish(call: Call) -> str:
    return _FILTERED if call.finish_reason == "content_filter" else _FINISH.get(call.finish_reason, "STOP")


def _usage(prompt: int, candidates: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }


def _response(
    call: Call, response_id: str, parts: list[dict[str, Any]], finish: str | None, candidates: int
) -> dict[str, Any]:
    # Key order as captured (shared/dialects.md section 3, "Non-streamed body"; PAI test_google_model.yaml).
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": _usage(call.prompt_tokens, candidates),
        "modelVersion": call.model,
        "responseId": response_id,
    }


def _function_call(name: str, arguments: str) -> dict[str, Any]:
    return {"functionCall": {"name": name, "args": _args(arguments)}}


def _parts_of(call: Call) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if call.content is not None or not call.tools:
        parts.append({"text": call.content or ""})
    parts.extend(_function_call(tool.name, tool.arguments) for tool in call.tools)
    return parts


# -- streams ----------------------------------------------------------------------------------


class GeminiStream(Stream):
    """The chunks of one streamed answer: a text piece or a whole function call each, the last with
    the finishReason (shared/dialects.md section 3, "Stream"; PAI test_google_stream_usage_is_live_mid_stream.yaml).

    Framed as the API frames them (`\\r\\n`: GeminiDialect.line_ending), or by a scenario's `framing`."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.response_id = call.script.answer_id or _response_id(call.derived)
        self.deltas = len(call.pieces) + len(call.tools)

    def _chunks(self) -> list[tuple[float, list[dict[str, Any]]]]:
        call, offsets = self.call, self.call.offsets
        chunks = [(offsets[i], [{"text": piece}]) for i, piece in enumerate(call.pieces)]
        slot = len(call.pieces)
        for tool in call.tools:
            slot += 1 + len(tool.fragments)  # a call is sent whole, once all of it is due
            chunks.append((offsets[slot - 1], [_function_call(tool.name, tool.arguments)]))
        return chunks

    def events(self) -> Iterator[Event]:
        call = self.call
        # `no_finish` drops the finish: here it is a field of the last chunk, so the chunk goes without it.
        finish = None if self.dropped == "finish" else _finish(call)
        chunks = self._chunks()
        if not chunks:  # no text at all: one empty text part says the finish
            yield self._event(call.offsets[-1], _response(call, self.response_id, [{"text": ""}], finish, 0), "finish")
            return
        total, count = call.completion_tokens, len(chunks)
        for n, (at, parts) in enumerate(chunks, 1):
            last = n == count
            # Every chunk repeats the usage so far (running totals), ending at the reply's count.
            used = total if last else total * n // count
            yield self._event(at, _response(call, self.response_id, parts, finish if last else None, used), "delta")

    def _event(self, at: float, payload: dict[str, Any], part: str) -> Event:
        return Event(at, _chunk_json(payload), part=part)

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        if kind == "error_event":
            # An error object as a chunk of its own (shared/dialects.md section 8, "fault after N chunks").
            error = {"error": {"code": 503, "message": message or _STATUSES[503][1], "status": "UNAVAILABLE"}}
            return [self._event(at, error, "head")]
        broken = _chunk_json(_response(self.call, self.response_id, [{"text": "broken"}], None, 0))
        half = broken[: len(broken) // 2]
        return [Event(at, half, part="head")]

    def plain_writes(self) -> Iterator[Write]:
        call = self.call
        if not call.tools and call.pieces:
            return self._text_writes()
        return (Write(event.at, f"data: {event.text}{_EOL}{_EOL}".encode()) for event in self.events())

    def _text_writes(self) -> Iterator[Write]:
        """The common stream, text only, from a template made once per stream: the chunks `events()`
        makes, byte for byte (tests/test_gemini_wire.py), without a dict and an encoder call per chunk."""
        call = self.call
        prompt, total, count = call.prompt_tokens, call.completion_tokens, len(call.pieces)
        head = 'data: {"candidates": [{"content": {"parts": [{"text": '
        role = '}],"role": "model"},'
        last_role = f'{role}"finishReason": "{_finish(call)}",'
        usage = f'"index": 0}}],"usageMetadata": {{"promptTokenCount": {prompt},"candidatesTokenCount": '
        details = f',"promptTokensDetails": [{{"modality": "TEXT","tokenCount": {prompt}}}]}},'
        tail = f'"modelVersion": {string(call.model)},"responseId": "{self.response_id}"}}{_EOL}{_EOL}'
        new, offsets = tuple.__new__, call.offsets
        for n, piece in enumerate(call.pieces, 1):
            last = n == count
            used = total if last else total * n // count  # the usage so far, as events() says it
            text = (
                f"{head}{string(piece)}{last_role if last else role}{usage}{used},"
                f'"totalTokenCount": {prompt + used}{details}{tail}'
            )
            yield new(Write, (offsets[n - 1], text.encode(), False))


# -- the dialect ------------------------------------------------------------------------------


class GeminiDialect(Dialect):
    name = "gemini"
    id_prefix = ""  # responseId has no prefix
    # The route's parameter name says which method was called: {model} answers whole, {streamed} streams.
    routes = (
        Route("POST", "/v1beta/models/{model}:generateContent"),
        Route("POST", "/v1beta/models/{streamed}:streamGenerateContent"),
        Route("POST", "/v1/models/{model}:generateContent"),
        Route("POST", "/v1/models/{streamed}:streamGenerateContent"),
        Route("GET", "/v1beta/models", "models"),
        Route("GET", "/v1beta/models/{model_id}", "model"),
    )
    # google-genai sends it on every request (shared/dialects.md section 3, "Paths"): its `GET /v1/models`
    # (3.x's default version) is answered in this API's shape.
    models_header = "x-goog-api-key"
    error_type = _JSON_TYPE
    line_ending = _EOL

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        streamed = params.get("streamed")
        if streamed is not None:
            return parse_generate(body, headers, streamed, True)
        return parse_generate(body, headers, params["model"], False)

    def error_body(self, message: str, type: str, param: str | None, code: str | int | None, *, status: int) -> bytes:
        # `type` is a google.rpc status for this dialect's own errors; the engine's own errors give an
        # OpenAI type, and their status names the google.rpc one.
        return error_json(status, message, type if type in _CODES else None)

    def azure_error_body(self, code: str, message: str) -> bytes:
        return self.error_body(message, "INTERNAL", None, None, status=500)  # no Azure flavour of this API

    def error_default(self, status: int) -> tuple[str, str | None, str]:
        return _status(status), None, _STATUSES.get(status, ("", f"Error {status}."))[1]

    def error_parts(self, body: bytes, request_id: str) -> tuple[bytes, list[Header]]:
        """No request id: the Gemini API sends none (shared/dialects.md section 3, "Headers")."""
        return body, [_VARY, _NO_TIME]

    def headers(self, content_type: Header, request_id: str, seconds: float) -> list[Header]:
        timing = _NO_TIME if not seconds else (b"server-timing", b"gfet4t7; dur=%d" % round(seconds * 1000))
        if content_type is SSE_HEADERS[0] or content_type == SSE_HEADERS[0]:
            return [_SSE_TYPE, _ATTACHMENT, _VARY, timing]
        return [_JSON_TYPE, _VARY, timing]

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        """A scripted error, made here: a 429's body says when to retry (RetryInfo), as Google's do, from
        the scenario's `retry-after` (which `error_body` is not given)."""
        spec = hit.reply.error
        if spec is None:
            return None
        from ..plan import error_answer  # plan imports the dialects: imported here, when first needed

        status = spec.status
        kind, _, message = self.error_default(status)
        given = {name.lower(): value for name, value in spec.headers.items()}
        extra = {name: value for name, value in given.items() if value is not None}  # null: not sent
        code = spec.code if isinstance(spec.code, int) else status
        delay = None
        if status == 429:  # Google says when in the body (RetryInfo); a scenario's retry-after says it too
            said = given.get("retry-after", "1")
            delay = None if said is None else f"{said}s" if said.isdigit() else "1s"  # null: no RetryInfo
        status_name = spec.type if spec.type and spec.type.isupper() else kind  # not another API's error type
        body = error_json(code, spec.message or message.format(model=request.model), status_name, delay)
        answer = error_answer(status, body, derived.request_id, list(extra.items()), self)
        answer.delay = hit.reply.offsets(1, rng, scale)[0]
        return answer

    def body(self, call: Call) -> bytes:
        response_id = call.script.answer_id or _response_id(call.derived)
        return _pretty(_response(call, response_id, _parts_of(call), _finish(call), call.completion_tokens))

    def stream(self, call: Call) -> Stream:
        return GeminiStream(call)

    # -- the model listing (`GET /v1beta/models`, and `/v1/models` from google-genai) --------------

    def models_body(self, model_ids: Sequence[str]) -> bytes:
        return _pretty({"models": [_model(model_id) for model_id in model_ids]})

    def model_body(self, model_id: str) -> bytes:
        return _pretty(_model(model_id))

    def model_missing(self, model_id: str) -> bytes:
        return error_json(404, _STATUSES[404][1].format(model=model_id.removeprefix("models/")))

    # `--require-api-key` (Dialect.refuses_key): google-genai sends `x-goog-api-key`; REST calls may use `?key=`.
    # Google answers a wrong key 400 INVALID_ARGUMENT (not 401), with an ErrorInfo saying why, and no key
    # at all 403 PERMISSION_DENIED: as the API does.
    def refuses_key(self, key: str, headers: Mapping[str, str], query: str) -> tuple[int, bytes] | None:
        from urllib.parse import parse_qs

        given = headers.get("x-goog-api-key") or parse_qs(query).get("key", [""])[0]
        if given == key:
            return None
        if not given:
            message = (
                "Method doesn't allow unregistered callers (callers without established identity). Please use API "
                "key or other form of API consumer identity to call this API."
            )
            return 403, self.error_body(message, "PERMISSION_DENIED", None, None, status=403)
        message = "API key not valid. Please pass a valid API key."
        envelope = orjson.loads(self.error_body(message, "INVALID_ARGUMENT", None, None, status=400))
        envelope["error"]["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ]
        return 400, _pretty(envelope)

    # A scenario's `limits` (Dialect.quota_answer): no rate-limit headers (the API sends none, shared/dialects.md
    # section 3), and past the quota 429 RESOURCE_EXHAUSTED whose details say which quota (QuotaFailure) and
    # when to retry (RetryInfo), as captured traffic does. Google floors retryDelay (1.68 s: "1s"); mockllm
    # rounds it up, so that a client waiting it is admitted.
    def quota_answer(self, standing: Standing) -> tuple[list[Header], bytes]:
        if standing.refused is None:
            return [], b""
        if standing.refused == "requests":
            metric, quota_id = "generate_requests_per_model", "GenerateRequestsPerMinutePerProjectPerModel"
        else:
            metric = "generate_content_paid_tier_input_token_count"
            quota_id = "GenerateContentPaidTierInputTokensPerModelPerMinute"
        metric = f"generativelanguage.googleapis.com/{metric}"
        message = (
            f"{_STATUSES[429][1]} To monitor your current usage, head to: https://ai.dev/rate-limit. \n"
            f"* Quota exceeded for metric: {metric}, limit: {standing.quota}, model: {standing.model}"
        )
        violation = {
            "quotaMetric": metric,
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": standing.model},
            "quotaValue": str(standing.quota),
        }
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        ]
        if standing.wait is not None:
            message += f"\nPlease retry in {round(standing.wait, 6):g}s."
            delay = f"{standing.retry_after}s"
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
        error = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}
        return [], _pretty({"error": error})


def _model(model_id: str) -> dict[str, Any]:
    """A Model resource as `models.list` / `models.get` return it (google-genai types.Model)."""
    return {
        "name": model_id if model_id.startswith("models/") else f"models/{model_id}",
        "version": "001",
        "displayName": model_id,
        "description": f"{model_id}, answered by mockllm from its scenarios.",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }


GEMINI = GeminiDialect()
