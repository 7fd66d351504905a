"""Extract the OpenAI schemas the wire tests validate against into openai-schemas.json (the Responses
API's, Chat Completions', legacy completions' and embeddings').

Source: the openapi.yaml of github.com/openai/openai-openapi at commit
f85dbe223d40e1a31cba812ab2d755c7e98a92a3 (info.version 2.3.0, OpenAPI 3.1.0, MIT licence), as kept
in ../shared/openapi/openai-openapi.yaml in CI. A user clone has no ../shared, so the extract is
committed. Rerun to refresh it:

    python tests/data/extract_openapi_schemas.py ../shared/openapi/openai-openapi.yaml

It keeps the named roots and their $ref closure, drops descriptions, examples and x-* keys, and
rewrites OpenAPI 3.0's `nullable: true` (still in the file, ignored by JSON Schema 2020-12) as
`anyOf: [<schema>, {"type": "null"}]`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = [
    "Response",
    "ErrorResponse",
    "ResponseCreatedEvent",
    "ResponseInProgressEvent",
    "ResponseOutputItemAddedEvent",
    "ResponseOutputItemDoneEvent",
    "ResponseContentPartAddedEvent",
    "ResponseContentPartDoneEvent",
    "ResponseTextDeltaEvent",
    "ResponseTextDoneEvent",
    "ResponseFunctionCallArgumentsDeltaEvent",
    "ResponseFunctionCallArgumentsDoneEvent",
    "ResponseCompletedEvent",
    "ResponseIncompleteEvent",
    "ResponseFailedEvent",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "CreateEmbeddingResponse",
]
REQUESTS = ["CreateChatCompletionRequest", "CreateCompletionRequest", "CreateEmbeddingRequest", "CreateResponse"]
DROP = {"description", "example", "examples", "title", "discriminator", "deprecated"}
PREFIX = "#/components/schemas/"


def clean(node: Any, refs: set[str]) -> Any:
    if isinstance(node, list):
        return [clean(n, refs) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROP or key.startswith("x-") or key == "nullable":
            continue
        if key == "$ref":
            refs.add(value.removeprefix(PREFIX))
            value = "#/$defs/" + value.removeprefix(PREFIX)
        elif key in ("properties", "patternProperties", "$defs"):
            value = {k: clean(v, refs) for k, v in value.items()}  # property names are not keywords
            out[key] = value
            continue
        out[key] = clean(value, refs)
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def main(source: str) -> None:
    schemas = yaml.safe_load(Path(source).read_text())["components"]["schemas"]
    todo, defs = list(ROOTS), {}
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        refs: set[str] = set()
        defs[name] = clean(schemas[name], refs)
        todo.extend(sorted(refs - defs.keys()))
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "Extracted by tests/data/extract_openapi_schemas.py from openai/openai-openapi@f85dbe22 "
        "openapi.yaml (MIT); roots: " + ", ".join(ROOTS),
        "$defs": dict(sorted(defs.items())),
    }
    out = Path(__file__).with_name("openai-schemas.json")
    out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    print(f"{out}: {len(defs)} schemas, {out.stat().st_size} bytes")
    # The fields each request schema takes (its properties, through allOf and $ref), for strict checking.
    fields = {name: sorted(_properties(schemas, schemas[name])) for name in REQUESTS}
    out = Path(__file__).with_name("openai-request-fields.json")
    out.write_text(json.dumps(fields, indent=1) + "\n")
    print(f"{out}: {', '.join(f'{k} {len(v)}' for k, v in fields.items())}")


def _properties(schemas: dict[str, Any], node: dict[str, Any]) -> set[str]:
    if "$ref" in node:
        return _properties(schemas, schemas[node["$ref"].removeprefix(PREFIX)])
    found = set(node.get("properties", {}))
    for part in node.get("allOf", []):
        found |= _properties(schemas, part)
    return found


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/openapi/openai-openapi.yaml")
