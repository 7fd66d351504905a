"""The bodies of Chat Completions answers, as JSON text: the `choices` array, `usage`, a choice's
`logprobs`, and the whole `chat.completion` (`CompletionTemplate`: compiled once per reply, filled
in per call; tests/test_answer_paths.py holds it to the general path). Streams (dialects/chat.py)
share `usage_json` and `logprobs_json`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .base import ToolCallWire
from .openai import dumps, logprob_entries, nullable, string

__all__ = [
    "CompletionTemplate",
    "choice_json",
    "choices_json",
    "completion_json",
    "logprobs_json",
    "usage_json",
]


def logprobs_json(pieces: Sequence[str], seed: int, top: int, start: int = 0) -> str:
    """A choice's `logprobs` object for these pieces' tokens."""
    return f'{{"content":{dumps(logprob_entries(pieces, seed, top, start))},"refusal":null}}'


# `usage` with three slots (prompt, completion and total tokens): one layout for streams and bodies.
_USAGE = (
    '{"prompt_tokens":%s,"completion_tokens":%s,"total_tokens":%s,'
    '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":'
    '{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}'
)


def usage_json(prompt: int, completion: int) -> str:
    """The `usage` object as JSON text, built from a template (it is on every request's path)."""
    return _USAGE % (prompt, completion, prompt + completion)


def choices_json(
    content: str | None,
    tool_calls: Sequence[ToolCallWire],
    finish_reason: str,
    logprobs: str = "null",
    n: int = 1,
    refusal: bool = False,
) -> str:
    """The `choices` array of a chat.completion, as JSON text (made once per reply when it can be):
    `n` choices (the request's `n`), each the same answer; `refusal`: the text is the model's refusal
    (`message.refusal`, `content` null)."""
    choice = (
        choice_json(None, tool_calls, finish_reason, logprobs, content)
        if refusal
        else (choice_json(content, tool_calls, finish_reason, logprobs))
    )
    if n == 1:
        return f'[{{"index":0,{choice}]'
    return "[" + ",".join(f'{{"index":{i},{choice}' for i in range(n)) + "]"


def choice_json(
    content: str | None,
    tool_calls: Sequence[ToolCallWire],
    finish_reason: str,
    logprobs: str,
    refusal: str | None = None,
) -> str:
    """A choice, but for its opening brace and index."""
    calls = ""
    if tool_calls:
        items = (
            f'{{"id":{string(t.id)},"type":"function","function":{{"name":{string(t.name)},'
            f'"arguments":{string(t.arguments)}}}}}'
            for t in tool_calls
        )
        calls = f',"tool_calls":[{",".join(items)}]'
    return (
        f'"message":{{"role":"assistant","content":{nullable(content)},"refusal":{nullable(refusal)},'
        f'"annotations":[]{calls}}},"logprobs":{logprobs},"finish_reason":{nullable(finish_reason)}}}'
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
            sys.intern(usage_mid),  # the same for every reply of as many tokens: one copy for all
            completion_tokens,
            sys.intern(f'{usage_tail},"service_tier":"default","system_fingerprint":'),
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
        string(id), created, string(model), prompt, nullable(fingerprint)
    )
