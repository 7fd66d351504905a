"""OpenAI's legacy completions: `POST /v1/completions` (and Azure's deployments path).

Wire facts: shared/dialects.md sections 0 and 4. A whole answer is a `text_completion` object,
pretty-printed (2 spaces, a final newline); a stream is `data:` chunks of the same object with
text deltas, a finish chunk, an optional usage chunk (`"choices":[]`), then `data: [DONE]`.

The neutral reply's text is `choices[0].text` (with `n`, each choice's: mockllm/choices.py). Tool
calls have no place on this wire: a reply with tool calls answering a completions request is
mockllm's 500 naming the rule (see `fast`).
The request's `max_tokens` cuts the reply as in every API (mockllm/limits.py), with the real
API's default: 16 tokens when the request gives none (`"max_tokens": null` for no cap), so a
long scripted answer comes back cut with `finish_reason: "length"`, as it would from OpenAI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..answer import Answer
from ..choices import Choice, choices_of, completion_tokens, interleave
from ..errors import RequestError
from ..logprobs import token_logprobs
from ..request import (
    Request,
    invalid_type,
    parse_json_object,
    read_n,
    read_stop,
    read_stream_options,
    stream_flag,
)
from ..sse import Event
from ..tokens import count_tokens, split_tokens
from .base import Call, Dialect, Route, Stream
from .openai import SERVER_ERROR, dumps, string

if TYPE_CHECKING:
    import random

    from ..derive import Derived
    from ..router import Hit
    from ..scenario import Reply

__all__ = ["COMPLETIONS", "CompletionsStream", "parse_completions"]

# The neutral finishes this API has no word for: a reply without tool calls that says
# `tool_calls` (or the old `function_call`) ended naturally.
_FINISH = {"tool_calls": "stop", "function_call": "stop"}
_NO_RETRY = [("x-should-retry", "false")]  # a scenario mistake: retrying cannot mend it
# The API's default cap (openai-openapi: CreateCompletionRequest.max_tokens, default 16).
_DEFAULT_MAX_TOKENS = 16
_MAX_LOGPROBS = 5  # the most alternatives this API gives (openai-openapi: CreateCompletionRequest.logprobs)


def _prompt_text(prompt: Any) -> tuple[str | None, int]:
    """The user text (the prompt, or the last of a list of them) and the prompt's tokens."""
    if isinstance(prompt, str):
        return prompt, count_tokens(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return prompt[-1], sum(count_tokens(p) for p in prompt)
        if all(type(p) is int for p in prompt):  # one prompt as token ids
            return None, len(prompt)
        if all(isinstance(p, list) and all(type(t) is int for t in p) for p in prompt):  # several
            return None, sum(len(p) for p in prompt)
    raise invalid_type("prompt", "one of a string, an array of strings or an array of token arrays", prompt)


def parse_completions(raw: bytes, headers: Mapping[str, str], default_model: str | None = None) -> Request:
    """Parse and check a completions body; raise RequestError as OpenAI would answer."""
    body = parse_json_object(raw)
    model = body.get("model", default_model)
    if type(model) is not str:
        if model is None:
            raise RequestError("you must provide a model parameter", param="model", code="missing_required_parameter")
        raise invalid_type("model", "a string", model)
    if "prompt" not in body:
        raise RequestError("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    user_text, prompt_tokens = _prompt_text(body["prompt"])
    stream = stream_flag(body)
    request = Request("completions", body, model, stream, headers, user_text, None, prompt_tokens)
    if "stream_options" in body:
        read_stream_options(body, request)
    cap = body.get("max_tokens", _DEFAULT_MAX_TOKENS)
    if cap is None:  # an explicit null: no cap
        pass
    elif type(cap) is not int:
        raise invalid_type("max_tokens", "an integer", cap)
    request.max_tokens = cap
    read_stop(body, request)
    read_n(body, request)
    if type(body.get("seed")) is int:
        request.seed = body["seed"]
    asked = body.get("logprobs")
    if asked is not None:
        if type(asked) is not int:
            raise invalid_type("logprobs", "an integer", asked)
        if not 0 <= asked <= _MAX_LOGPROBS:
            raise RequestError(
                f"Invalid value for 'logprobs': must be between 0 and {_MAX_LOGPROBS}, got {asked}.",
                param="logprobs",
                code="invalid_value",
            )
        request.logprobs = asked
    # `suffix`, `echo`, `best_of`: accepted; the reply is the scenario's.
    return request


def _logprobs(call: Call, pieces: tuple[str, ...], start: int, offset: int) -> dict[str, Any] | None:
    """This API's `logprobs` object for `pieces` (tokens from position `start`, text from `offset`):
    parallel lists, and each token's alternatives as a mapping (openai-openapi: CreateCompletionResponse)."""
    top = call.request.logprobs
    if top is None:
        return None
    tokens = [token for piece in pieces for token in split_tokens(piece)]
    made = token_logprobs(tokens, call.derived.seed, top, start)
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [t.logprob for t in made],
        "top_logprobs": [{a: lp for a, lp, _ in t.top} for t in made] if top else None,
        "text_offset": offsets,
    }


def _finish(choice: Choice) -> str:
    return _FINISH.get(choice.finish_reason, choice.finish_reason)


def _completion_id(call: Call) -> str:
    return call.script.answer_id or "cmpl-" + call.derived.completion_id[len("chatcmpl-") :]  # 29 letters and digits


def _usage(call: Call, choices: tuple[Choice, ...]) -> dict[str, int]:
    prompt, completion = call.prompt_tokens, completion_tokens(choices)  # every choice counts
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class CompletionsStream(Stream):
    """`data: <text_completion chunk>` events: text deltas, the finish, usage, `[DONE]`."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.choices = choices_of(call)
        self.deltas = sum(len(c.pieces) for c in self.choices)
        # Every chunk shares its head and tail (shared/dialects.md section 4's key order).
        self._head = (
            f'{{"id":"{_completion_id(call)}","object":"text_completion","created":{call.derived.created},"choices":['
        )
        self._tail = f'],"model":{string(call.model)},"system_fingerprint":{string(call.fingerprint)}}}'

    def chunk(
        self, text: str, finish: str | None = None, logprobs: dict[str, Any] | None = None, index: int = 0
    ) -> str:
        finish_text = "null" if finish is None else string(finish)
        logprobs_text = "null" if logprobs is None else dumps(logprobs)
        choice = f'{{"text":{string(text)},"index":{index},"logprobs":{logprobs_text},"finish_reason":{finish_text}}}'
        return f"{self._head}{choice}{self._tail}"

    def _pieces(self, choice: Choice) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """A choice's text deltas, each with its logprobs when asked (its tokens from their place in the choice)."""
        start = offset = 0
        for piece in choice.pieces:
            logprobs = _logprobs(self.call, (piece,), start, offset)
            yield piece, logprobs
            if logprobs is not None:
                start, offset = start + len(logprobs["tokens"]), offset + len(piece)

    def events(self) -> Iterator[Event]:
        # `n` choices: one per chunk, taking turns (as chat's, mockllm/choices.py `interleave`).
        call, offsets, choices = self.call, self.call.offsets, self.choices
        if call.script.choices is None:  # every choice the call's answer: each piece's logprobs made once
            finish, indexes = _finish(choices[0]), range(len(choices))
            for j, (piece, logprobs) in enumerate(self._pieces(choices[0])):
                for i in indexes:
                    yield Event(offsets[j], self.chunk(piece, logprobs=logprobs, index=i), part="delta")
            for i in indexes:
                yield Event(offsets[-1], self.chunk("", finish, index=i), part="finish")
        else:
            for at, i, said in interleave(choices, offsets, self._pieces):
                if said is None:
                    yield Event(at, self.chunk("", _finish(choices[i]), index=i), part="finish")
                else:
                    yield Event(at, self.chunk(said[0], logprobs=said[1], index=i), part="delta")
        last = offsets[-1]
        if self.call.request.include_usage:
            usage = dumps(_usage(self.call, choices))
            yield Event(last, f'{self._head}{self._tail[:-1]},"usage":{usage}}}', part="tail")
        yield Event(last, "[DONE]", part="done")

    def fault_events(self, kind: str, at: float, message: str | None) -> list[Event]:
        if kind == "error_event":  # as chat's: the same transport raises APIError on it
            error = {"message": message or SERVER_ERROR, "type": "server_error", "param": None, "code": None}
            return [Event(at, dumps({"error": error}))]
        broken = self.chunk("broken")
        return [Event(at, broken[: len(broken) // 2])]  # malformed: half a chunk


class CompletionsDialect(Dialect):
    name = "completions"
    error_indent = 4  # pretty, as the API sends its errors (shared/dialects.md section 0)
    id_prefix = "cmpl-"
    routes = (
        Route("POST", "/v1/completions"),
        Route("POST", "/openai/deployments/{deployment}/completions"),  # Azure: the deployment is the model
    )

    def parse(self, body: bytes, headers: Mapping[str, str], params: Mapping[str, str], state: Any) -> Request:
        return parse_completions(body, headers, params.get("deployment"))

    def unsendable(self, reply: Reply) -> str | None:
        if reply.tool_calls:
            return (
                "the completions API cannot send tool calls (its answer is text only): give this rule a reply "
                "with content, or a match.endpoint without completions"
            )
        return None

    def fast(
        self, hit: Hit, request: Request, derived: Derived, rng: random.Random | None, scale: float, state: Any
    ) -> Answer | None:
        """Refuse a reply with tool calls: this API cannot say them, and dropping them would answer
        something the scenario did not say. A 500 (the scenario is at fault, not the request) that the
        SDKs do not retry, naming the rule and what to change."""
        script = hit.reply
        if not script.tools or script.error is not None:
            return None
        from ..plan import error_answer  # plan imports the dialects: imported here, when first needed

        rule = hit.rule
        message = (
            f"mockllm: rule {rule.name!r} ({rule.origin}) replies with tool calls, which the legacy completions "
            "API (POST /v1/completions) cannot express. Give that rule `match: {endpoint: chat}` (or responses), "
            "or add a rule for `endpoint: completions` whose reply has `content`."
        )
        body = self.error_body(message, "mockllm_error", None, "reply_not_expressible", status=500)
        return error_answer(500, body, derived.request_id, _NO_RETRY)

    def body(self, call: Call) -> bytes:
        made = choices_of(call)
        said: dict[int, tuple[str, dict[str, Any] | None, str]] = {}  # by choice: `n` choices may be one
        for choice in made:
            if id(choice) not in said:
                said[id(choice)] = (choice.content or "", _logprobs(call, choice.pieces, 0, 0), _finish(choice))
        choices = [
            {"text": text, "index": i, "logprobs": logprobs, "finish_reason": finish}
            for i, (text, logprobs, finish) in enumerate(said[id(c)] for c in made)
        ]
        completion = {
            "id": _completion_id(call),
            "object": "text_completion",
            "created": call.derived.created,
            "model": call.model,
            "choices": choices,
            "usage": _usage(call, made),
        }
        return orjson.dumps(completion, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)

    def stream(self, call: Call) -> Stream:
        return CompletionsStream(call)


COMPLETIONS = CompletionsDialect()
