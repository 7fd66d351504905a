"""Strict checking, as the real APIs do it: a request field the API does not know, or a value out of
its range, is refused with the API's own 400 message and `param`.

Off by default: apps aimed at vLLM or Ollama send fields OpenAI does not know (`top_k`,
`repetition_penalty`...), and a fake that refused them would fail tests for nothing. Turn it on for
the rules of one scenario file (`strict: true` at its top) or for the whole server (`mockllm serve
--strict`, `Engine(strict=True)`), to test that an app sends only what the real API takes.

The known fields are the request schemas' properties in OpenAI's published OpenAPI description
(openai/openai-openapi@f85dbe22: CreateChatCompletionRequest, CreateCompletionRequest,
CreateEmbeddingRequest, CreateResponse; tests/test_strict.py checks these lists against it), the
anthropic SDK's MessageCreateParams (2.15), and Gemini's GenerateContentRequest (camelCase, or the
snake_case its JSON parser also takes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import RequestError

__all__ = ["FIELDS", "check"]

FIELDS: dict[str, frozenset[str]] = {
    "chat": frozenset(
        [
            "audio",
            "frequency_penalty",
            "function_call",
            "functions",
            "logit_bias",
            "logprobs",
            "max_completion_tokens",
            "max_tokens",
            "messages",
            "metadata",
            "modalities",
            "model",
            "moderation",
            "n",
            "parallel_tool_calls",
            "prediction",
            "presence_penalty",
            "prompt_cache_key",
            "prompt_cache_options",
            "prompt_cache_retention",
            "reasoning_effort",
            "response_format",
            "safety_identifier",
            "seed",
            "service_tier",
            "stop",
            "store",
            "stream",
            "stream_options",
            "temperature",
            "tool_choice",
            "tools",
            "top_logprobs",
            "top_p",
            "user",
            "verbosity",
            "web_search_options",
        ]
    ),
    "completions": frozenset(
        [
            "best_of",
            "echo",
            "frequency_penalty",
            "logit_bias",
            "logprobs",
            "max_tokens",
            "model",
            "n",
            "presence_penalty",
            "prompt",
            "seed",
            "stop",
            "stream",
            "stream_options",
            "suffix",
            "temperature",
            "top_p",
            "user",
        ]
    ),
    "embeddings": frozenset(["dimensions", "encoding_format", "input", "model", "user"]),
    "responses": frozenset(
        [
            "background",
            "context_management",
            "conversation",
            "include",
            "input",
            "instructions",
            "max_output_tokens",
            "max_tool_calls",
            "metadata",
            "model",
            "moderation",
            "parallel_tool_calls",
            "previous_response_id",
            "prompt",
            "prompt_cache_key",
            "prompt_cache_options",
            "prompt_cache_retention",
            "reasoning",
            "safety_identifier",
            "service_tier",
            "store",
            "stream",
            "stream_options",
            "temperature",
            "text",
            "tool_choice",
            "tools",
            "top_logprobs",
            "top_p",
            "truncation",
            "user",
        ]
    ),
    # anthropic 2.15 MessageCreateParamsBase, with `stream` and the sampling fields the API takes.
    "anthropic": frozenset(
        [
            "cache_control",
            "container",
            "context_management",
            "diagnostics",
            "inference_geo",
            "max_tokens",
            "mcp_servers",
            "messages",
            "metadata",
            "model",
            "output_config",
            "output_format",
            "service_tier",
            "speed",
            "stop_sequences",
            "stream",
            "system",
            "temperature",
            "thinking",
            "tool_choice",
            "tools",
            "top_k",
            "top_p",
            "user_profile_id",
            "workspace_id",
        ]
    ),
    "gemini": frozenset(
        [
            "contents",
            "tools",
            "toolConfig",
            "tool_config",
            "safetySettings",
            "safety_settings",
            "systemInstruction",
            "system_instruction",
            "generationConfig",
            "generation_config",
            "cachedContent",
            "cached_content",
            "model",
            "labels",
        ]
    ),
}

# OpenAI's ranges: (field, low, high, integer); Chat Completions, legacy completions, Responses.
_RANGES: dict[str, tuple[tuple[str, float, float | None, bool], ...]] = {
    "chat": (
        ("temperature", 0, 2, False),
        ("top_p", 0, 1, False),
        ("presence_penalty", -2, 2, False),
        ("frequency_penalty", -2, 2, False),
        ("max_tokens", 1, None, True),
        ("max_completion_tokens", 1, None, True),
    ),
    "completions": (
        ("temperature", 0, 2, False),
        ("top_p", 0, 1, False),
        ("presence_penalty", -2, 2, False),
        ("frequency_penalty", -2, 2, False),
        ("max_tokens", 0, None, True),
    ),
    "responses": (("temperature", 0, 2, False), ("top_p", 0, 1, False), ("max_output_tokens", 16, None, True)),
}


def check(endpoint: str, body: Mapping[str, Any]) -> RequestError | None:
    """What the real API answers this body with when it refuses it, or None when it takes it."""
    known = FIELDS.get(endpoint)
    if known is None:
        return None
    unknown = [key for key in body if key not in known]
    if unknown:
        return _unknown(endpoint, unknown[0])
    for field, low, high, integer in _RANGES.get(endpoint, ()):
        value = body.get(field)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue  # a wrong type is the dialect's to refuse, always
        kind = "integer" if integer else "decimal"
        if value < low:
            return _out_of_range(field, kind, "below minimum", f">= {_number(low)}", value)
        if high is not None and value > high:
            return _out_of_range(field, kind, "above maximum", f"<= {_number(high)}", value)
    return None


def _unknown(endpoint: str, key: str) -> RequestError:
    if endpoint == "anthropic":  # the API's pydantic-style message (docs.claude.com: errors)
        return RequestError(f"{key}: Extra inputs are not permitted")
    if endpoint == "gemini":  # Google's JSON parser
        return RequestError(
            f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.', type="INVALID_ARGUMENT"
        )
    return RequestError(f"Unrecognized request argument supplied: {key}")


def _out_of_range(field: str, kind: str, side: str, bound: str, value: float) -> RequestError:
    code = f"{kind}_{'below_min' if side == 'below minimum' else 'above_max'}_value"
    return RequestError(
        f"Invalid '{field}': {kind} {side} value. Expected a value {bound}, but got {_number(value)} instead.",
        param=field,
        code=code,
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
