"""The editor schema (mockllm/schema.py): the packaged file is what the models generate now, the
bundled scenarios point at it and pass it, and it refuses what the loader refuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import PLUGIN_SCENARIOS, ROOT, SCENARIOS

from mockllm import schema as schema_module
from mockllm.errors import ScenarioError
from mockllm.loader import load_text

MODELINE = "# yaml-language-server: $schema="
BUNDLED = sorted(SCENARIOS.rglob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    made = schema_module.schema()
    jsonschema.Draft202012Validator.check_schema(made)
    return jsonschema.Draft202012Validator(made)


def test_the_packaged_file_is_what_the_models_generate() -> None:
    packaged = schema_module.SCHEMA_PATH.read_text(encoding="utf-8")
    assert packaged == schema_module.schema_json(), (
        "mockllm/scenario.schema.json is stale (the models in mockllm/scenario.py changed): regenerate it with "
        "`python -m mockllm.schema > mockllm/scenario.schema.json`"
    )


def test_the_command_prints_the_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mockllm.schema"], capture_output=True, text=True, timeout=60, cwd=ROOT, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["title"] == "mockllm scenario file"
    assert done.stdout == schema_module.schema_json()


def test_every_key_has_a_description() -> None:
    made = schema_module.schema()
    objects = {"(top level)": made, **made["$defs"]}
    missing = [
        f"{name}.{key}"
        for name, obj in objects.items()
        for key, prop in obj["properties"].items()
        if not prop.get("description")
    ]
    assert missing == [], f"keys without a description (add them to _KEYS in mockllm/schema.py): {missing}"
    assert [name for name, obj in objects.items() if not obj.get("description")] == []


def test_the_validators_names_are_offered_as_enums() -> None:
    defs = schema_module.schema()["$defs"]
    endpoint = defs["Match"]["properties"]["endpoint"]["anyOf"]
    names = ["chat", "responses", "anthropic", "completions", "embeddings", "gemini"]
    assert endpoint[0] == {"type": "string", "enum": names}
    assert endpoint[1]["items"] == {"type": "string", "enum": names}
    preset = defs["Timing"]["properties"]["preset"]["anyOf"][0]
    assert preset["enum"] == ["gpt-4o", "gpt-4o-mini", "instant", "reasoning", "slow"]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_each_bundled_scenario_points_at_the_packaged_schema_and_passes_it(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(MODELINE), f"{path}: line 1 should be {MODELINE}<relative path to the schema>"
    assert (path.parent / first[len(MODELINE) :]).resolve() == schema_module.SCHEMA_PATH.resolve()
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_yaml(path))]
    assert errors == []


def test_the_test_scenarios_pass_it(validator: jsonschema.Draft202012Validator) -> None:
    for path in sorted(PLUGIN_SCENARIOS.glob("*.yaml")):
        assert list(validator.iter_errors(_yaml(path))) == [], path


BAD = [
    # what an editor should flag, and the loader refuses: (scenario, the schema's complaint)
    ({"version": 1, "rules": [{"reply": {"contnet": "x"}}]}, "Additional properties are not allowed ('contnet'"),
    ({"version": 1, "rules": [{"reply": {"content": "x", "timing": {"ttft_ms": "fast"}}}]}, "'fast' is not of type"),
    ({"version": 2, "rules": [{"reply": {"content": "x"}}]}, "1 was expected"),
    ({"version": 1, "rules": []}, "should be non-empty"),
    ({"version": 1, "rules": [{"match": {"endpoint": "chta"}, "reply": {"content": "x"}}]}, "'chta' is not one of"),
    ({"version": 1, "rules": [{"reply": {"content": "x", "fault": {"kind": "explode"}}}]}, "'explode' is not one of"),
    ({"version": 1, "rules": [{"reply": {"error": {"status": 200}}}]}, "200 is less than the minimum of 400"),
]


@pytest.mark.parametrize(("scenario", "complaint"), BAD, ids=[c for _, c in BAD])
def test_it_refuses_what_the_loader_refuses(
    scenario: dict[str, Any], complaint: str, validator: jsonschema.Draft202012Validator
) -> None:
    messages = _messages(validator.iter_errors(scenario))
    assert any(complaint in m for m in messages), messages
    with pytest.raises(ScenarioError):
        load_text(json.dumps(scenario), "bad.yaml")


def _messages(errors: Any) -> list[str]:
    """Every error's message, and those of the alternatives under it (an anyOf reports its branches' in context)."""
    found: list[str] = []
    for error in errors:
        found.append(error.message)
        found.extend(_messages(error.context or ()))
    return found


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
