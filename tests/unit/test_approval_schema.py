"""The approval workflow's checked-in JSON Schema is what its models generate."""

from __future__ import annotations

import json

from workflows.approval.jsonschema import SCHEMA_DIR, URN, schemas


def test_checked_in_approval_schema_matches_the_models():
    generated = schemas()
    checked_in = {path.name: path.read_text(encoding="utf-8") for path in SCHEMA_DIR.glob("*.json")}

    stale = sorted(
        name
        for name in generated.keys() | checked_in.keys()
        if generated.get(name) != checked_in.get(name)
    )

    assert not stale, f"workflows/approval/schema is stale ({', '.join(stale)}): run `make schema`"


def test_published_schemas_cover_every_approval_message():
    documents = {name: json.loads(text) for name, text in schemas().items()}

    assert {
        "proposal-submitted-message.schema.json",
        "approval-response-message.schema.json",
        "approval-request-message.schema.json",
        "proposal-outcome-message.schema.json",
    } <= documents.keys()
    assert "ApprovalResponse" in json.dumps(documents["approval-response-message.schema.json"])
    assert all(doc["$id"].startswith(f"{URN}:") for doc in documents.values())
