"""The checked-in JSON Schema is what the models generate: the contracts' and the approval
workflow's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from contracts import jsonschema
from contracts.jsonschema import generate
from workflows.approval import jsonschema as approval_jsonschema


@pytest.mark.parametrize(
    ("directory", "generator"),
    [
        (jsonschema.SCHEMA_DIR, jsonschema.generate),
        (approval_jsonschema.SCHEMA_DIR, approval_jsonschema.schemas),
    ],
    ids=["contracts", "approval"],
)
def test_checked_in_json_schema_matches_the_models(
    directory: Path, generator: Callable[[], dict[str, str]]
) -> None:
    generated = generator()
    checked_in = {path.name: path.read_text(encoding="utf-8") for path in directory.glob("*.json")}

    stale = sorted(
        name
        for name in generated.keys() | checked_in.keys()
        if generated.get(name) != checked_in.get(name)
    )

    assert not stale, f"{directory} is stale ({', '.join(stale)}): run `make schema`"


def test_published_schemas_cover_history_events_and_messages():
    documents = {name: json.loads(text) for name, text in generate().items()}

    assert "ExecutionStarted" in json.dumps(documents["history-event.schema.json"])
    assert "TaskCompleted" in json.dumps(documents["orchestrator-message.schema.json"])
    assert all(doc["$id"].startswith("urn:durable-rabbit:contracts:") for doc in documents.values())
