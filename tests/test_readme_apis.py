# ruff: noqa: E501 (the README's blocks are quoted verbatim, long lines and all)
"""README.md's examples of the APIs beyond OpenAI's two (section "More APIs"), run as written
against a served engine of the bundled scenarios, each in a process of its own, with only the
README's URLs (http://127.0.0.1:8000 and its /v1) swapped for the test server's.

The blocks below are the README's, verbatim: `test_the_readme_shows_these_examples` fails when the
two drift apart. They run in both environments (openai 2.x and 3.x, anthropic 2.x, google-genai 3.x).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from helpers import ROOT, SCENARIOS
from test_readme_responses import LOOPBACK_ONLY, run

README = ROOT / "README.md"
URL = "http://127.0.0.1:8000"
HUNDRED = ", ".join(str(n) for n in range(1, 101))

# -- the README's blocks ------------------------------------------------------------------------

ANTHROPIC_EXAMPLE = """\
import anthropic

client = anthropic.Anthropic(base_url="http://127.0.0.1:8000", api_key="test")

# Not streamed: the message, its content blocks, why it stopped, and the usage.
message = client.messages.create(
    model="claude-sonnet-4-5",
    max_tokens=1024,
    messages=[{"role": "user", "content": "What's 1+1? Answer in one word."}],
)
print(message.id[:6], message.content[0].text, message.stop_reason, message.usage.output_tokens)

# Streamed with the helper: the text as it arrives, then the final message.
with client.messages.stream(
    model="claude-sonnet-4-5",
    max_tokens=1024,
    messages=[{"role": "user", "content": "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."}],
) as stream:
    for text in stream.text_stream:
        print(text, end="")
    print()
    print(stream.get_final_message().stop_reason)

# A scripted error (scenarios/errors.yaml: model "error-429"), in Anthropic's envelope.
try:
    client.with_options(max_retries=0).messages.create(
        model="error-429", max_tokens=1024, messages=[{"role": "user", "content": "Hi"}]
    )
except anthropic.RateLimitError as error:
    print(error.status_code, error.body["error"]["type"], error.response.headers["retry-after"])
"""
ANTHROPIC_OUTPUT = f"""\
msg_01 Two. end_turn 2
{HUNDRED}
end_turn
429 rate_limit_error 1
"""

GEMINI_EXAMPLE = """\
from google import genai
from google.genai import errors, types

client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url="http://127.0.0.1:8000"))

# Not streamed: the text, why it stopped, and the usage.
response = client.models.generate_content(model="gemini-2.5-flash", contents="What's 1+1? Answer in one word.")
print(response.text, response.candidates[0].finish_reason.value, response.usage_metadata.total_token_count)

# Streamed: each chunk a whole response (a piece of the text, the usage so far).
for chunk in client.models.generate_content_stream(
    model="gemini-2.5-flash",
    contents="Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ...",
):
    print(chunk.text, end="")
print()

# A scripted error (scenarios/errors.yaml: model "error-429"), as a google.rpc status.
try:
    client.models.generate_content(model="error-429", contents="Hi")
except errors.ClientError as error:
    print(error.code, error.status)
"""
GEMINI_OUTPUT = f"""\
Two. STOP 20
{HUNDRED}
429 RESOURCE_EXHAUSTED
"""

COMPLETIONS_AND_EMBEDDINGS_EXAMPLE = """\
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="test")

# Legacy completions: the prompt is the user text; streamed, the text comes in choices[0].text.
completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="What's 1+1? Answer in one word.")
print(completion.object, completion.choices[0].text, completion.choices[0].finish_reason)
stream = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="What's 1+1? Answer in one word.", stream=True)
print([chunk.choices[0].text for chunk in stream])

# Embeddings: one unit vector per text, the same every run; texts that share words are closer.
docs = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A dog sat on the rug."]
result = client.embeddings.create(model="text-embedding-3-small", input=["Where did the cat sit?", *docs])
query, *vectors = [item.embedding for item in result.data]
scores = [sum(q * v for q, v in zip(query, vector)) for vector in vectors]
print(len(query), max(zip(scores, docs))[1], result.usage.prompt_tokens)
"""
COMPLETIONS_AND_EMBEDDINGS_OUTPUT = """\
text_completion Two. stop
['Two', '.', '']
1536 The cat sat on the mat. 26
"""


def section(title: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, f"README.md has no '## {title}' section"
    return re.findall(r"```\w*\n(.*?)```", found.group(1), re.S)


def test_the_readme_shows_these_examples() -> None:
    assert section("More APIs") == [ANTHROPIC_EXAMPLE, GEMINI_EXAMPLE, COMPLETIONS_AND_EMBEDDINGS_EXAMPLE]


# -- running them -------------------------------------------------------------------------------


def python(block: str, served: Any) -> str:
    """Run a block with the README's server root (and /v1 under it) swapped for the served engine's."""
    root = served.base_url.removesuffix("/v1")
    code = f"{LOOPBACK_ONLY}\nexec(compile({block.replace(URL, root)!r}, 'README.md', 'exec'), {{'__name__': '__main__'}})\n"
    return run([sys.executable, "-c", code], served)


def test_the_anthropic_example(serve) -> None:
    served = serve(SCENARIOS)
    assert python(ANTHROPIC_EXAMPLE, served) == ANTHROPIC_OUTPUT
    assert [(e.endpoint, e.rule, e.status) for e in served.journal] == [
        ("anthropic", "one-plus-one", 200),
        ("anthropic", "count-to-100", 200),
        ("anthropic", "error-429", 429),
    ]


def test_the_gemini_example(serve) -> None:
    served = serve(SCENARIOS)
    assert python(GEMINI_EXAMPLE, served) == GEMINI_OUTPUT
    assert [(e.endpoint, e.rule, e.stream, e.status) for e in served.journal] == [
        ("gemini", "one-plus-one", False, 200),
        ("gemini", "count-to-100", True, 200),
        ("gemini", "error-429", False, 429),
    ]


def test_the_completions_and_embeddings_example(serve) -> None:
    served = serve(SCENARIOS)
    assert python(COMPLETIONS_AND_EMBEDDINGS_EXAMPLE, served) == COMPLETIONS_AND_EMBEDDINGS_OUTPUT
    assert [e.endpoint for e in served.journal] == ["completions", "completions", "embeddings"]
