"""The ids a client sends back survive a recording (issue 15): a Responses loop that sends its output
items back as input (their `fc_`/`msg_` ids), a `previous_response_id` chain, and an Anthropic thread
(`previous_message_id`). Recorded through `mockllm record`'s proxy from an upstream mockllm, then
replayed by a fresh server from the file alone: every request of the replay must match its recorded
rule, which it can only do when the replay answers with the ids the upstream gave.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from mockllm import Engine
from mockllm.recorder import BackgroundRecorder, Recorder
from mockllm.recording import Recording
from mockllm.server import BackgroundServer

UPSTREAM = {
    "version": 1,
    "rules": [
        {"name": "answer", "match": {"tool_result": {}}, "reply": {"content": "Sunny in Oslo."}},
        {"name": "thanks", "match": {"user": {"contains": "Thanks"}}, "reply": {"content": "You are welcome."}},
        {
            "name": "call",
            "match": {"tool": "get_weather"},
            "reply": {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
        },
    ],
}
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}}
RESPONSES_TOOLS: Any = [{"type": "function", "name": "get_weather", "parameters": PARAMETERS}]
ASK = [{"role": "user", "content": "Weather in Oslo?"}]


def record_then_replay(tmp_path: Path, traffic: Callable[[str], Any]) -> tuple[Any, Any, Engine]:
    """What `traffic(root_url)` returned through the recorder, what it returned against the replay of
    the recording (the upstream stopped by then), and the replaying engine."""
    path = tmp_path / "recording.yaml"
    upstream = Engine(time_scale=0)
    upstream.add(UPSTREAM)
    with BackgroundServer(upstream) as server:
        proxy = Recorder(server.url, Recording(path), log=lambda _: None)
        with BackgroundRecorder(proxy) as running:
            recorded = traffic(running.url)
    replay = Engine(path, time_scale=0, journal_limit=None)
    with BackgroundServer(replay) as served:
        replayed = traffic(served.url)
    unmatched = [entry.error for entry in replay.journal if not entry.matched]
    assert unmatched == []
    return recorded, replayed, replay


def responses_loop(root: str, *, streamed: bool) -> list[tuple[str, str, list[str]]]:
    """A tool loop that sends the model's output items back as input, then a previous_response_id turn."""
    client = openai.OpenAI(base_url=f"{root}/v1", api_key="sk-test", max_retries=0)

    def create(**kwargs: Any) -> Any:
        if not streamed:
            return client.responses.create(model="gpt-4.1-mini", **kwargs)
        with client.responses.stream(model="gpt-4.1-mini", **kwargs) as stream:
            return stream.get_final_response()

    first = create(input=ASK, tools=RESPONSES_TOOLS)
    (call,) = first.output
    assert call.type == "function_call"
    items = [*ASK, *(item.model_dump(exclude_none=True) for item in first.output)]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"})
    second = create(input=items, tools=RESPONSES_TOOLS)
    third = create(input="Thanks!", previous_response_id=second.id)
    return [(r.id, r.output_text, [item.id for item in r.output]) for r in (first, second, third)]


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_responses_loop_and_chain_replay_with_the_recorded_ids(tmp_path: Path, streamed: bool) -> None:
    recorded, replayed, replay = record_then_replay(tmp_path, lambda root: responses_loop(root, streamed=streamed))
    assert [text for _, text, _ in recorded] == ["", "Sunny in Oslo.", "You are welcome."]
    assert replayed == recorded  # the same ids, so each next request matched its recorded rule
    rules = yaml.safe_load((tmp_path / "recording.yaml").read_text())["rules"]
    assert [entry.rule for entry in replay.journal] == [rule["name"] for rule in rules]  # each its own
    first, second, third = (rule["reply"] for rule in rules)
    (response_id, _, (item_id,)), (second_id, _, (message_id,)), _ = recorded
    assert (first["id"], first["tool_calls"][0]["item_id"]) == (response_id, item_id)
    assert (second["id"], second["message_id"]) == (second_id, message_id)
    assert rules[2]["match"]["body"]["previous_response_id"] == second_id
    assert "id" in third


def test_without_the_ids_a_replay_would_not_match(tmp_path: Path) -> None:
    """The same recording with the ids taken out: the loop's second request (its items carry the
    upstream's fc_ id) matches nothing. What the test above proves is the ids' doing."""
    recorded, _, _ = record_then_replay(tmp_path, lambda root: responses_loop(root, streamed=False))
    path = tmp_path / "recording.yaml"
    data = yaml.safe_load(path.read_text())
    for rule in data["rules"]:
        rule["reply"].pop("id", None)
        rule["reply"].pop("message_id", None)
        for call in rule["reply"].get("tool_calls", ()):
            call.pop("item_id", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    replay = Engine(path, time_scale=0, journal_limit=None)
    with BackgroundServer(replay) as served, pytest.raises(openai.APIStatusError) as refused:
        responses_loop(served.url, streamed=False)
    assert refused.value.status_code == 418  # no rule matched
    assert recorded[0][0] not in str(replay.journal[0].json)


def anthropic_thread(root: str) -> list[tuple[str, str | None, list[str]]]:
    """anthropic's tool runner over a message thread: each later request says `previous_message_id`."""
    client = anthropic.Anthropic(base_url=root, api_key="sk-ant-test", max_retries=0)

    @anthropic.beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    runner = client.beta.messages.tool_runner(
        model="claude-sonnet-4-5", max_tokens=256, tools=[get_weather], messages=ASK
    )
    messages = list(runner)
    return [(m.id, m.stop_reason, [getattr(block, "id", "") for block in m.content]) for m in messages]


def test_an_anthropic_thread_replays_with_the_recorded_ids(tmp_path: Path) -> None:
    recorded, replayed, replay = record_then_replay(tmp_path, anthropic_thread)
    assert [stop for _, stop, _ in recorded] == ["tool_use", "end_turn"]
    assert replayed == recorded
    continued = replay.journal[1].json["thread"]
    assert continued == {"type": "continue", "previous_message_id": recorded[0][0]}
    assert replay.journal[1].status == 200


RECORDED_UNDER_A_CAP = """
version: 1
rules:
  - name: recorded
    match: {endpoint: chat, user: {contains: recorded}}
    reply:
      chunks: ["Tokenizers ", "disagree ", "about ", "this."]
      finish_reason: length
      usage: {prompt_tokens: 9, completion_tokens: 4}
  - name: written
    match: {endpoint: chat, user: {contains: written}}
    reply: {content: "Tokenizers disagree about this."}
"""


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_reply_that_counts_its_tokens_is_not_cut_again_by_the_cap_it_fits(tmp_path: Path, streamed: bool) -> None:
    """A recorded reply was cut by the upstream under the request's max_tokens, counted by the provider's
    tokenizer (4 here); mockllm's counts the same text as more. Its `usage.completion_tokens` is the
    count: the replay sends it whole. A written reply with no usage is still cut by mockllm's count."""
    path = tmp_path / "cap.yaml"
    path.write_text(RECORDED_UNDER_A_CAP)
    engine = Engine(path, time_scale=0)
    with BackgroundServer(engine) as served:
        client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="sk-test", max_retries=0)

        def ask(text: str) -> tuple[str, str | None]:
            messages: Any = [{"role": "user", "content": text}]
            if not streamed:
                answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=4)
                return answer.choices[0].message.content or "", answer.choices[0].finish_reason
            chunks = list(
                client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=4, stream=True)
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return text, next(c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason)

        assert ask("recorded") == ("Tokenizers disagree about this.", "length")
        cut, finish = ask("written")
        assert (finish, len(cut) < len("Tokenizers disagree about this.")) == ("length", True)


def test_a_429_without_retry_after_replays_without_one(tmp_path: Path) -> None:
    """The fake's scripted 429 says `retry-after: 1` unless told otherwise; a recorded 429 that said
    nothing of when to retry is written with `retry-after: null`, and replays saying nothing too (a
    client's backoff then is its own, as it was against the provider)."""
    import httpx

    path = tmp_path / "recording.yaml"
    upstream = Engine(time_scale=0)
    upstream.add(
        {"match": {"user": {"contains": "busy"}}, "reply": {"error": {"status": 429, "headers": {"Retry-After": None}}}}
    )
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "busy"}]}
    gemini = {"contents": [{"role": "user", "parts": [{"text": "busy"}]}]}

    def traffic(root: str) -> list[tuple[int, str | None, Any]]:
        with httpx.Client(base_url=root) as http:
            answers = [
                http.post("/v1/chat/completions", json=chat),
                http.post("/v1beta/models/gemini-2.5-flash:generateContent", json=gemini),
            ]
        return [(a.status_code, a.headers.get("retry-after"), a.json()["error"].get("details")) for a in answers]

    with BackgroundServer(upstream) as server:
        proxy = Recorder(server.url, Recording(path), log=lambda _: None)
        with BackgroundRecorder(proxy) as running:
            recorded = traffic(running.url)
    assert recorded == [(429, None, None), (429, None, None)]
    assert [rule["reply"]["error"]["headers"] for rule in yaml.safe_load(path.read_text())["rules"]] == [
        {"retry-after": None},
        {"retry-after": None},
    ]
    with BackgroundServer(Engine(path, time_scale=0)) as served:
        assert traffic(served.url) == recorded
    # Without the null, the fake's default: retry-after 1, and for Gemini (no header) a RetryInfo of 1s.
    default = Engine(time_scale=0)
    default.add({"reply": {"error": {"status": 429}}})
    with BackgroundServer(default) as served:
        said = traffic(served.url)
    assert said[0][:2] == (429, "1")
    assert said[1] == (429, None, [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}])
