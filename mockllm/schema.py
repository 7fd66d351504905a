"""The JSON Schema of the scenario format, for YAML editors: completion and checks of keys as you type.

Generated from the pydantic models in `scenario.py` (so it says what the loader accepts), with a
description on every key (the README's reference, in short) and the names the validators accept
(`match.endpoint`, `timing.preset`) as enums. The package ships it as `scenario.schema.json`
(tests/test_schema.py fails when it differs from what `schema_json()` makes now); regenerate it with
`python -m mockllm.schema > mockllm/scenario.schema.json`. `mockllm schema` prints it.

Editors (the YAML language server: VS Code's YAML extension, Neovim, JetBrains) read a first line
`# yaml-language-server: $schema=<path or URL>`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .scenario import ScenarioFile

__all__ = ["SCHEMA_PATH", "main", "schema", "schema_json"]

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")  # the packaged copy

_DIALECT = "https://json-schema.org/draft/2020-12/schema"  # what pydantic's model_json_schema() writes

# model -> key -> description: shown by editors on hover and in completion lists. The models' own
# docstrings describe the objects; their keys carry no pydantic descriptions (scenario.py is the
# user contract and stays terse), so they are written here, where only the schema reads them.
_KEYS: dict[str, dict[str, str]] = {
    "ScenarioFile": {
        "version": "The format's version: always 1.",
        "defaults": "Reply keys (plus seed) merged into every rule; a rule's own body keys replace these, "
        "timing and framing merge key by key.",
        "time_scale": "This file's time scale, over the server's --time-scale (0: nothing waits, 1: as written).",
        "strict": "Refuse what the real APIs refuse (unknown request fields, values out of range), with their 400.",
        "sequence": "How every rule's replies and times count unless it says its own: server (default) or "
        "conversation.",
        "rules": "The rules, tried in order (higher priority first); the first that matches answers.",
        "limits": "Quotas over every request: past one, the API's own 429 (OpenAI's rate_limit_exceeded, "
        "Anthropic's rate_limit_error, Gemini's RESOURCE_EXHAUSTED) with retry-after, and its rate-limit "
        "headers counting down on every answer.",
    },
    "LimitSpec": {
        "model": 'A glob on the request\'s model, e.g. "gpt-4o*"; left out: every model.',
        "per": "Whose quota it is: model (default: each model has its own) or api_key (each API key has one, "
        "over all the models the glob takes).",
        "requests_per_minute": "Requests admitted per window.",
        "tokens_per_minute": "Tokens admitted per window: each request's prompt plus the output it may ask for "
        "(max_tokens and the like, times n), counted when it arrives.",
        "window_s": "The window's length in seconds (default 60): it starts with the first request it admits "
        "and frees all at once; short ones keep tests fast.",
    },
    "RuleSpec": {
        "name": "Shown in errors, near-miss reports and the journal (default: file.yaml:rules[i]).",
        "match": "Conditions on the request, all of which must hold; left out: every request matches.",
        "times": "How many calls the rule may serve in all; with replies, they play round after round.",
        "priority": "Higher is tried first; equal keeps file order (the bundled catch-all has -100).",
        "seed": "The seed of this rule's derived values (ids, created, generated text), over defaults.seed and --seed.",
        "reply": "One answer, given to every call.",
        "replies": "Answers played in order, one per call; without times, the rule stops matching once "
        "they are played out.",
        "sequence": "How replies and times count: server (every request in arrival order) or conversation "
        "(each conversation from the start: told apart by the x-mockllm-conversation header, else its system "
        "text and first user message).",
        "optional": "The pytest plugin's assert_all_used does not report this rule when it goes unused.",
    },
    "Match": {
        "endpoint": "The API (chat: Chat Completions, responses: the Responses API), or a list of them; "
        "left out: every API.",
        "model": 'A glob on the request\'s model, e.g. "gpt-4o*".',
        "stream": "Whether the request asks for a stream.",
        "user": "The last user message (Chat) or user input (Responses).",
        "system": "The first system or developer message (Responses: instructions first).",
        "headers": "Request headers: name (any case) -> exact value.",
        "tool": "The request offers a tool of this name (a glob), or of each name in a list.",
        "tool_result": "The conversation ends in a tool's result: of the tool `name`, whose text matches "
        "equals/contains/regex; {} for any.",
        "turn": "How many turns the model has had in the conversation (0: its first), or {min, max}.",
        "last_role": "The role of the conversation's last message: user, assistant, tool (a tool's result), system.",
        "body": "Fields of the request's JSON body, each equal to the request's as JSON (a recording's rules "
        "match so; looked up, not scanned).",
    },
    "ToolResultMatch": {
        "name": "The tool the result answers (a glob).",
        "equals": "The result's whole text, exactly.",
        "contains": "A part of the result's text.",
        "regex": "A regular expression searched in the result's text.",
    },
    "TurnRange": {
        "min": "At least this many turns.",
        "max": "At most this many turns.",
    },
    "TextMatch": {
        "equals": "The whole text, exactly.",
        "contains": "A part of the text.",
        "regex": "A regular expression searched in the text.",
    },
    "Reply": {
        "content": "The text, streamed in chunks cut like GPT tokens; {user}, {system}, {model}, {tool_result}, "
        "{tool_name}, {turn} quote the request ({{user}}: the text {user}).",
        "chunks": 'Explicit text deltas, sent as given ("" is a real empty delta).',
        "generate": "Deterministic generated text: one of sentences, words, paragraphs.",
        "vectors": "Embeddings only: an input text -> the vector sent for it (other inputs get their own).",
        "refusal": "The model refuses, with this text, in each API's form (chat message.refusal, a Responses "
        "refusal part, Anthropic stop_reason refusal).",
        "tool_calls": "Function calls, alone or with content/chunks.",
        "choices": "Chat and legacy completions with n > 1: the text of each choice (choice i says "
        "choices[i % len]); without it every choice gets the reply.",
        "refusal_null": 'Chat streams: the first delta carries "refusal": null, as 2025 OpenAI traffic does.',
        "sse": "A verbatim SSE transcript, replayed byte for byte (give its rule the endpoint it was captured from).",
        "error": "An HTTP error answer instead of a completion.",
        "finish_reason": "stop (default), length, tool_calls (default with tool calls), content_filter, function_call.",
        "usage": "Token counts to report; a left-out count is computed.",
        "model": "The model name the answer reports (default: the request's).",
        "system_fingerprint": "Chat only; default: derived from the seed (fp_...).",
        "id": "The answer's id (chat and completions id, Responses resp_..., Anthropic msg_..., Gemini responseId); "
        "left out: derived. A recording keeps it, as clients send it back (previous_response_id, threads).",
        "message_id": "Responses: the output message item's id (msg_...); left out: derived.",
        "timing": "When chunks are sent.",
        "fault": "A failure in the middle of the stream.",
        "framing": "How the SSE bytes are laid out and cut into network writes.",
    },
    "Defaults": {"seed": "The seed of every rule that sets none (over --seed)."},
    "ToolCall": {
        "name": "The function's name.",
        "arguments": "A mapping (sent as compact JSON) or a JSON string, sent as written ({user}-style "
        "placeholders filled in); left out: made for the schema of the offered tool of that name.",
        "id": "The call's id (chat and Responses call_..., Anthropic toolu_..., Gemini's call id); left out: derived.",
        "item_id": "Responses: the function_call item's id (fc_...); left out: derived.",
    },
    "Usage": {
        "prompt_tokens": "Input tokens (Responses: input_tokens).",
        "completion_tokens": "Output tokens (Responses: output_tokens).",
    },
    "Generate": {
        "sentences": "How many sentences.",
        "words": "How many words.",
        "paragraphs": "How many paragraphs.",
        "call_tools": "As an agent's model: call the first offered tool until a tool result comes back, then answer.",
    },
    "Timing": {
        "preset": "A named profile of ttft and gaps.",
        "ttft_ms": "Time to the first chunk, from the request's arrival.",
        "chunk_ms": "The gap between chunks: a number, or a list of gaps whose last value repeats.",
        "jitter_ms": "A seeded +/- wobble of each chunk's time.",
        "total_ms": "Spread the chunks so the last is due then (instead of chunk_ms).",
    },
    "ErrorSpec": {
        "status": "The HTTP status, 400-599 (not 418: it means no rule matched).",
        "message": "The error's message (default: OpenAI's for the status).",
        "type": "The error's type (default: OpenAI's for the status).",
        "code": "The error's code (default: OpenAI's for the status).",
        "param": "The error's param.",
        "headers": "Headers sent as given (e.g. retry-after); names are HTTP tokens, values Latin-1.",
        "flavour": "openai, or azure for Azure's envelope.",
    },
    "Fault": {
        "kind": "What goes wrong: disconnect, error_event, stall, malformed, no_done, no_finish.",
        "after_chunks": "How many content chunks go out first (0: right after the opening events).",
        "stall_ms": "How long a stall holds the connection before dropping it (never time-scaled).",
        "message": "The message of an error_event.",
    },
    "Framing": {
        "line_ending": "lf (default), crlf or cr.",
        "split": "Cut every network write after N bytes.",
        "coalesce": "Pack N events per write.",
        "keepalive": "Send ': text' comment lines at the start and while waiting.",
        "data_prefix": 'The prefix of data lines ("data:" drops the space).',
        "trailing_blank_line": "false: the last event lacks its blank line.",
    },
    "Keepalive": {
        "every_ms": "How often a comment line goes out while waiting.",
        "text": "The comment's text.",
    },
}

# Objects the models leave undescribed (no docstring).
_OBJECTS = {
    "RuleSpec": "A rule: when it answers (match, times, priority) and what (reply or replies).",
    "ToolCall": "A function call the answer makes.",
    "Usage": "Token counts the answer reports.",
    "Keepalive": "SSE comment lines sent while the stream waits.",
}


def _enum(prop: dict[str, Any], names: Sequence[str]) -> None:
    """Offer `names` for every string alternative of a property (a validator, not a type, checks them)."""
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "string":
            branch["enum"] = list(names)
        elif branch.get("type") == "array" and branch.get("items", {}).get("type") == "string":
            branch["items"]["enum"] = list(names)


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a scenario file, as a mapping."""
    from .dialects import ENDPOINTS
    from .timing import PRESETS

    made = ScenarioFile.model_json_schema()
    objects: dict[str, dict[str, Any]] = {"ScenarioFile": made, **made["$defs"]}
    for name, keys in _KEYS.items():
        properties = objects[name]["properties"]
        for key, text in keys.items():
            properties[key]["description"] = text
    for key, prop in objects["Defaults"]["properties"].items():  # Defaults is a Reply, plus seed
        prop.setdefault("description", _KEYS["Reply"].get(key))
    for name, text in _OBJECTS.items():
        objects[name].setdefault("description", text)
    for obj in objects.values():
        if "description" in obj:  # a docstring's first paragraph is for users; the rest, for the code's readers
            obj["description"] = obj["description"].split("\n\n")[0].replace("\n", " ")
    _enum(objects["Match"]["properties"]["endpoint"], ENDPOINTS)
    _enum(objects["Timing"]["properties"]["preset"], sorted(PRESETS))
    return {
        "$schema": _DIALECT,
        **made,
        "title": "mockllm scenario file",
        "description": "What mockllm answers to which request (scenario format v1). "
        "Check a file with `mockllm validate PATH`.",
    }


def schema_json() -> str:
    """The schema as the packaged file holds it: JSON, indented, keys in the models' order, one final newline."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """`mockllm schema` / `python -m mockllm.schema`: print the schema on stdout."""
    if argv:
        print(f"mockllm schema takes no arguments, got {' '.join(argv)!r}; it prints the schema", file=sys.stderr)
        return 2
    sys.stdout.write(schema_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
