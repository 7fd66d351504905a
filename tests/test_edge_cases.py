"""The edge-case library (scenarios/edge-cases/): each stream, served as bundled, through the
real openai SDK (plain iteration and the .stream() helper) and litellm, asserting what each
client really does with it (openai 2.54, litellm 1.106-1.110). The table in
scenarios/edge-cases/README.md is the summary of these tests.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
import litellm
import openai
import pytest
import yaml
from helpers import LITELLM_FAILS_WITHOUT_FINISH, SCENARIOS
from litellm.exceptions import MidStreamFallbackError
from openai import ContentFilterFinishReasonError

EDGE = SCENARIOS / "edge-cases"
MESSAGES: Any = [{"role": "user", "content": "Hello?"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}},
        },
    }
]
COUNT = ", ".join(str(n) for n in range(1, 101))


def served_case(serve: Any, name: str, **kwargs: Any) -> Any:
    return serve(EDGE / f"{name}.yaml", **kwargs)


def openai_chunks(served: Any, name: str, **kwargs: Any) -> list[Any]:
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    with client.chat.completions.create(model=f"edge-{name}", messages=MESSAGES, stream=True, **kwargs) as stream:
        return list(stream)


def helper_run(served: Any, name: str, **kwargs: Any) -> tuple[list[str], Any]:
    """The .stream() helper: the event types seen, then the final completion (or the error)."""
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    seen: list[str] = []
    try:
        with client.chat.completions.stream(model=f"edge-{name}", messages=MESSAGES, **kwargs) as stream:
            for event in stream:
                seen.append(event.type)
            return seen, stream.get_final_completion()
    except Exception as exc:
        return seen, exc


def litellm_chunks(served: Any, name: str, **kwargs: Any) -> list[Any]:
    # No `tools=` here: litellm 1.106 then imports its MCP handler, which needs the optional `mcp`
    # package. The scripted stream is the same either way.
    response = litellm.completion(
        model=f"openai/edge-{name}",
        api_base=served.base_url,
        api_key="test",
        messages=MESSAGES,
        stream=True,
        num_retries=0,
        **kwargs,
    )
    return list(response)


def contents(chunks: list[Any]) -> list[str | None]:
    return [c.choices[0].delta.content for c in chunks if c.choices]


def finishes(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


def text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].delta)


# -- the library as a whole ---------------------------------------------------------------------

CASES = {
    "azure-choice-without-delta",
    "azure-prompt-filter",
    "content-filter",
    "count-to-100",
    "empty-deltas",
    "finish-with-content",
    "multibyte-split",
    "no-finish-reason",
    "null-last-delta",
    "one-plus-one-usage",
    "parallel-tool-calls",
    "refusal",
    "repeated-role-id",
    "tool-call-no-index",
    "usage-every-chunk",
    "usage-only-chunk",
}


# Chat transcripts (`sse:`) answer Chat Completions requests only (`endpoint: chat`); the others
# answer every API. The Responses API's own cases (responses-*.yaml) are tests/test_responses_edge_cases.py's.
CHAT_ONLY = {name for name in CASES if "\n      sse:" in (EDGE / f"{name}.yaml").read_text()}


def test_every_case_has_one_file_one_rule_matched_by_model_and_a_readme_entry() -> None:
    files = {p.stem for p in EDGE.glob("*.yaml") if not p.stem.startswith("responses-")}
    assert files == CASES
    readme = (EDGE / "README.md").read_text()
    for name in sorted(CASES):
        path = EDGE / f"{name}.yaml"
        source = path.read_text()
        # line 1 points editors at the schema (tests/test_schema.py), line 2 says how to request the case
        assert source.splitlines()[1].startswith(f'# edge-{name}: request it with model "edge-{name}"'), name
        data = yaml.safe_load(source)
        wanted = {"endpoint": "chat", "model": f"edge-{name}"} if name in CHAT_ONLY else {"model": f"edge-{name}"}
        assert [r["match"] for r in data["rules"]] == [wanted], name
        assert f"[{name}.yaml]({name}.yaml)" in readme and f"`edge-{name}`" in readme, name


def test_served_with_every_bundled_scenario_the_model_alone_picks_the_rule(serve) -> None:
    served = serve(SCENARIOS)  # what `mockllm serve` serves: default, cookbook, faults, errors, edge cases
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    for name in sorted(CASES):
        # the notebook's own question, which cookbook.yaml also answers, must not steal it
        with client.chat.completions.create(
            model=f"edge-{name}", messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}], stream=True
        ) as stream:
            for _ in stream:
                pass
        assert served.journal.last.rule == f"edge-{name}"
    for prompt in ("What's 1+1? Answer in one word.", "Count to 100, with a comma between each number.", "Hi"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        rule = served.journal.last.rule
        assert rule is not None and not re.match(r"(edge|fault|error)-", rule), rule


# -- one test per case ---------------------------------------------------------------------------


def test_empty_deltas(serve) -> None:
    served = served_case(serve, "empty-deltas")
    assert contents(openai_chunks(served, "empty-deltas")) == ["", "", "Hello", "", " world", "", None]
    _, final = helper_run(served, "empty-deltas")
    assert final.choices[0].message.content == "Hello world"
    # litellm drops empty deltas after the first (role) chunk
    assert contents(litellm_chunks(served, "empty-deltas")) == ["", "Hello", " world", None]


def test_usage_only_chunk(serve) -> None:
    served = served_case(serve, "usage-only-chunk")
    chunks = openai_chunks(served, "usage-only-chunk")  # sent although the client did not ask for usage
    last = chunks[-1]
    assert last.choices == [] and (last.usage.prompt_tokens, last.usage.completion_tokens) == (9, 2)
    with pytest.raises(IndexError):
        _ = last.choices[0]  # the classic `chunk.choices[0].delta` crash (openai-python #1677)
    _, final = helper_run(served, "usage-only-chunk")
    assert final.choices[0].message.content == "Hi!" and final.usage.total_tokens == 11
    chunks = litellm_chunks(served, "usage-only-chunk")
    assert all(c.choices for c in chunks)  # litellm never hands out the empty-choices chunk...
    assert text(chunks) == "Hi!" and finishes(chunks) == ["stop"]
    built = litellm.stream_chunk_builder(chunks)
    assert (built.usage.prompt_tokens, built.usage.completion_tokens) == (9, 2)  # ...but keeps its usage


def test_usage_on_every_chunk(serve) -> None:
    served = served_case(serve, "usage-every-chunk")
    chunks = openai_chunks(served, "usage-every-chunk")
    assert [c.usage.completion_tokens for c in chunks] == [0, 1, 2, 2]  # running totals, passed through
    _, final = helper_run(served, "usage-every-chunk")
    assert final.usage.completion_tokens == 2 and final.usage.prompt_tokens == 9
    chunks = litellm_chunks(served, "usage-every-chunk")
    assert all(getattr(c, "usage", None) is None for c in chunks)  # litellm strips it from each chunk
    assert litellm.stream_chunk_builder(chunks).usage.completion_tokens == 2
    chunks = litellm_chunks(served, "usage-every-chunk", stream_options={"include_usage": True})
    assert [c.usage.completion_tokens for c in chunks if getattr(c, "usage", None)] == [2]  # once, at the end


def test_azure_first_chunk_with_empty_choices_and_prompt_filter_results(serve) -> None:
    served = served_case(serve, "azure-prompt-filter")
    chunks = openai_chunks(served, "azure-prompt-filter")
    first = chunks[0]
    assert first.choices == [] and first.id == "" and first.created == 0
    assert first.model_extra["prompt_filter_results"][0]["prompt_index"] == 0  # type: ignore[index]
    with pytest.raises(IndexError):
        _ = first.choices[0]
    assert text(chunks) == "Hello from Azure" and finishes(chunks) == ["stop"]
    _, final = helper_run(served, "azure-prompt-filter")
    assert final.choices[0].message.content == "Hello from Azure"
    chunks = litellm_chunks(served, "azure-prompt-filter")
    assert all(c.choices for c in chunks) and text(chunks) == "Hello from Azure"  # dropped by default...
    chunks = litellm_chunks(served, "azure-prompt-filter", stream_options={"include_usage": True})
    assert chunks[0].choices == []  # ...but passed on as is when include_usage is asked


def test_azure_choice_without_delta(serve) -> None:
    served = served_case(serve, "azure-choice-without-delta")
    chunks = openai_chunks(served, "azure-choice-without-delta")
    last = chunks[-1]
    assert last.choices[0].delta is None and last.choices[0].finish_reason is None
    with pytest.raises(AttributeError):
        _ = last.choices[0].delta.content  # what `for c in stream: c.choices[0].delta.content` hits
    seen, error = helper_run(served, "azure-choice-without-delta")
    assert isinstance(error, AttributeError) and "to_dict" in str(error)  # the helper crashes on it
    assert "content.done" in seen  # after the whole text was delivered
    chunks = litellm_chunks(served, "azure-choice-without-delta")
    assert text(chunks) == "Hello world" and finishes(chunks) == ["stop"]  # litellm copes (#3811 fixed)


def test_finish_reason_in_the_last_content_chunk(serve) -> None:
    served = served_case(serve, "finish-with-content")
    last = openai_chunks(served, "finish-with-content")[-1]
    assert (last.choices[0].delta.content, last.choices[0].finish_reason) == (".", "stop")
    _, final = helper_run(served, "finish-with-content")
    assert (final.choices[0].message.content, final.choices[0].finish_reason) == ("Paris.", "stop")
    chunks = litellm_chunks(served, "finish-with-content")
    # litellm moves the finish_reason into a chunk of its own
    assert [(c.choices[0].delta.content, c.choices[0].finish_reason) for c in chunks][-2:] == [
        (".", None),
        (None, "stop"),
    ]


def test_no_finish_reason(serve) -> None:
    served = served_case(serve, "no-finish-reason")
    chunks = openai_chunks(served, "no-finish-reason")
    assert text(chunks) == "The stream just stops." and finishes(chunks) == []
    seen, final = helper_run(served, "no-finish-reason")
    assert "content.done" not in seen  # the helper only says done on a finish_reason
    assert final.choices[0].finish_reason is None and final.choices[0].message.content == "The stream just stops."
    if LITELLM_FAILS_WITHOUT_FINISH:  # litellm >= 1.109: a stream must end with a finish_reason
        with pytest.raises(MidStreamFallbackError, match="before a finish_reason") as failed:
            litellm_chunks(served, "no-finish-reason")
        assert failed.value.generated_content == "The stream just stops."
    else:
        chunks = litellm_chunks(served, "no-finish-reason")
        assert text(chunks) == "The stream just stops." and finishes(chunks) == ["stop"]  # invented


def test_last_delta_with_null_content_and_role(serve) -> None:
    served = served_case(serve, "null-last-delta")
    last = openai_chunks(served, "null-last-delta")[-1]
    delta = last.choices[0].delta
    assert (delta.content, delta.role, last.choices[0].finish_reason) == (None, None, "stop")
    _, final = helper_run(served, "null-last-delta")
    assert final.choices[0].message.content == "Hello world" and final.choices[0].message.role == "assistant"
    chunks = litellm_chunks(served, "null-last-delta")
    assert text(chunks) == "Hello world" and finishes(chunks) == ["stop"]  # litellm #2010 is fixed


def test_role_and_tool_call_id_repeated_on_every_chunk(serve) -> None:
    served = served_case(serve, "repeated-role-id")
    chunks = openai_chunks(served, "repeated-role-id")
    assert [c.choices[0].delta.role for c in chunks] == ["assistant"] * 4
    _, final = helper_run(served, "repeated-role-id", tools=TOOLS)
    message = final.choices[0].message
    call = message.tool_calls[0]
    # the helper concatenates every string it sees again
    assert message.role == "assistant" * 4
    assert call.id == "call_zdWrprNHHBdEuX0a2dXichde" * 3 and call.function.name == "get_weather" * 3
    assert call.function.arguments == '{"city":"Paris"}'
    chunks = litellm_chunks(served, "repeated-role-id")
    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None, None, None]  # role sent once
    built = litellm.stream_chunk_builder(chunks).choices[0].message
    assert built.role == "assistant" and len(built.tool_calls) == 1
    assert (built.tool_calls[0].id, built.tool_calls[0].function.name) == (
        "call_zdWrprNHHBdEuX0a2dXichde",
        "get_weather",
    )
    assert built.tool_calls[0].function.arguments == '{"city":"Paris"}'


def test_tool_call_delta_without_index(serve) -> None:
    served = served_case(serve, "tool-call-no-index")
    chunks = openai_chunks(served, "tool-call-no-index")
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert [t.index for t in calls] == [None, None, None]
    _, error = helper_run(served, "tool-call-no-index", tools=TOOLS)
    assert isinstance(error, TypeError)  # "list indices must be integers or slices, not NoneType"
    chunks = litellm_chunks(served, "tool-call-no-index")
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert [t.index for t in calls] == [0, 0, 0]  # litellm fills it in
    built = litellm.stream_chunk_builder(chunks).choices[0].message.tool_calls
    assert [(t.function.name, t.function.arguments) for t in built] == [("get_weather", '{"city":"Paris"}')]


def test_parallel_tool_calls(serve) -> None:
    served = served_case(serve, "parallel-tool-calls")
    chunks = openai_chunks(served, "parallel-tool-calls", tools=TOOLS)
    assert chunks[0].choices[0].delta.content is None and finishes(chunks) == ["tool_calls"]
    indexes = [t.index for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert indexes == sorted(indexes) and set(indexes) == {0, 1}  # index 0's fragments, then index 1's
    _, final = helper_run(served, "parallel-tool-calls", tools=TOOLS)
    calls = final.choices[0].message.tool_calls
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [
        ("call_DL150PJbEUe28zYU49cD6o5p", {"city": "Paris", "unit": "celsius"}),
        ("call_FenPLV9FziIuh4reQBhC4H6q", {"city": "Tokyo", "unit": "celsius"}),
    ]
    chunks = litellm_chunks(served, "parallel-tool-calls")
    built = litellm.stream_chunk_builder(chunks).choices[0]
    assert built.finish_reason == "tool_calls"
    assert [json.loads(c.function.arguments)["city"] for c in built.message.tool_calls] == ["Paris", "Tokyo"]


def test_content_filter_finish(serve) -> None:
    served = served_case(serve, "content-filter")
    chunks = openai_chunks(served, "content-filter")
    assert text(chunks) == "Here is how the story" and finishes(chunks) == ["content_filter"]
    seen, error = helper_run(served, "content-filter")
    # the helper streams the text, then get_final_completion() raises, with or without response_format
    assert "content.done" in seen and isinstance(error, ContentFilterFinishReasonError)
    chunks = litellm_chunks(served, "content-filter")
    assert text(chunks) == "Here is how the story" and finishes(chunks) == ["content_filter"]


def test_refusal_stream(serve) -> None:
    served = served_case(serve, "refusal")
    chunks = openai_chunks(served, "refusal")
    assert all(c.choices[0].delta.content is None for c in chunks)
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == "I'm sorry, I can't help with that."
    seen, final = helper_run(served, "refusal")
    assert "refusal.delta" in seen and "refusal.done" in seen and "content.delta" not in seen
    message = final.choices[0].message
    assert message.refusal == "I'm sorry, I can't help with that." and message.content is None
    chunks = litellm_chunks(served, "refusal")
    # litellm 1.106 loses the refusal text: one empty role chunk, then the finish
    assert next((c.choices[0].delta.content, getattr(c.choices[0].delta, "refusal", None)) for c in chunks) == (
        None,
        "",
    )
    assert finishes(chunks) == ["stop"] and len(chunks) == 2
    assert not litellm.stream_chunk_builder(chunks).choices[0].message.content


def test_emoji_and_cjk_cut_across_writes(serve) -> None:
    served = served_case(serve, "multibyte-split")
    expected = "Café ☕ 東京 🙂👍🏽 naïve"
    body = {"model": "edge-multibyte-split", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{served.base_url}/chat/completions", json=body) as response:
        pieces = list(response.iter_raw())
    assert max(len(p) for p in pieces) <= 5
    cut = 0
    for piece in pieces:
        try:
            piece.decode()
        except UnicodeDecodeError:
            cut += 1
    assert cut > 0  # some reads end or start inside a character
    assert text(openai_chunks(served, "multibyte-split")) == expected
    _, final = helper_run(served, "multibyte-split")
    assert final.choices[0].message.content == expected
    assert text(litellm_chunks(served, "multibyte-split")) == expected


def test_count_to_100_many_tiny_chunks(serve) -> None:
    served = served_case(serve, "count-to-100")
    chunks = openai_chunks(served, "count-to-100", stream_options={"include_usage": True})
    pieces = [c for c in contents(chunks)[1:] if c is not None]
    assert len(pieces) == 298 and "".join(pieces) == COUNT  # "1", ",", " ", "2", ... as gpt-4o-mini cut them
    assert chunks[-1].usage.completion_tokens == 298
    _, final = helper_run(served, "count-to-100")
    assert final.choices[0].message.content == COUNT
    assert text(litellm_chunks(served, "count-to-100")) == COUNT


def test_count_to_100_keeps_the_notebooks_timing(serve) -> None:
    # As measured in the notebook: first chunk at 1.14 s, last at 2.82 s; here at a tenth of that.
    served = served_case(serve, "count-to-100", time_scale=0.1)
    client = openai.OpenAI(base_url=served.base_url, api_key="test", max_retries=0)
    started = time.monotonic()
    with client.chat.completions.create(model="edge-count-to-100", messages=MESSAGES, stream=True) as stream:
        seen = [(time.monotonic() - started, c.choices[0].delta.content) for c in stream]
    first = next(t for t, piece in seen if piece)
    assert first >= 0.11 and seen[-1][0] >= 0.28


def test_the_notebooks_one_plus_one_stream_with_usage(serve) -> None:
    served = served_case(serve, "one-plus-one-usage")
    chunks = openai_chunks(served, "one-plus-one-usage", stream_options={"include_usage": True})
    assert contents(chunks) == ["", "Two", ".", None]
    assert chunks[0].id == "chatcmpl-9lMgfRSWPHcw51s6wxKT1YEO2CKpd" and chunks[0].system_fingerprint == "fp_e9b8ed65d2"
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (
        18,
        2,
        20,
    )
    _, final = helper_run(served, "one-plus-one-usage")
    assert final.choices[0].message.content == "Two." and final.usage.total_tokens == 20
    chunks = litellm_chunks(served, "one-plus-one-usage", stream_options={"include_usage": True})
    assert text(chunks) == "Two." and chunks[-1].usage.prompt_tokens == 18 and chunks[-1].usage.completion_tokens == 2
