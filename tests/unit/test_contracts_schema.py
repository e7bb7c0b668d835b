"""The checked-in JSON Schema is what the models generate."""

from __future__ import annotations

import json

from contracts.jsonschema import SCHEMA_DIR, generate


def test_checked_in_json_schema_matches_the_models():
    generated = generate()
    checked_in = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}

    stale = sorted(
        name
        for name in generated.keys() | checked_in.keys()
        if generated.get(name) != checked_in.get(name)
    )

    assert not stale, f"contracts/schema is stale ({', '.join(stale)}): run `make schema`"


def test_published_schemas_cover_history_events_and_messages():
    documents = {name: json.loads(text) for name, text in generate().items()}

    assert "ExecutionStarted" in json.dumps(documents["history-event.schema.json"])
    assert "TaskCompleted" in json.dumps(documents["orchestrator-message.schema.json"])
    assert all(doc["$id"].startswith("urn:durable-rabbit:contracts:") for doc in documents.values())
