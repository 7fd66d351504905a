from __future__ import annotations

import openai

from conftest import SCENARIOS


def test_openai_stream_what_is_one_plus_one(serve) -> None:
    served = serve(SCENARIOS)
    client = openai.OpenAI(base_url=served.base_url, api_key="test")
    with client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["", "Two", ".", None]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (18, 2)
    assert served.journal.last.rule == "one-plus-one"
