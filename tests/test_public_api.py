"""The public API, pinned: a name added to or dropped from `mockllm.__all__` is a decision."""

from __future__ import annotations

import mockllm

PUBLIC = [
    "DEFAULT_MODEL",
    "ENDPOINTS",
    "NO_MATCH_STATUS",
    "PRESETS",
    "Answer",
    "Dialect",
    "Engine",
    "Entry",
    "Hit",
    "Journal",
    "Miss",
    "MockLLMError",
    "Problem",
    "Remote",
    "Request",
    "RequestError",
    "Router",
    "Rule",
    "Scenario",
    "ScenarioError",
    "Write",
    "bundled_scenarios",
    "load",
    "load_mapping",
    "load_text",
]


def test_the_public_api_is_pinned() -> None:
    assert mockllm.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(mockllm, name) is not None, name


def test_every_public_name_says_what_it_is() -> None:
    undocumented = [
        name
        for name in PUBLIC
        if callable(getattr(mockllm, name)) and not (getattr(mockllm, name).__doc__ or "").strip()
    ]
    assert undocumented == []
