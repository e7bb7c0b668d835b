"""The approval workflow publishes a JSON Schema for each of its messages (that the checked-in
files are what the models generate: tests/unit/test_contracts_schema.py)."""

from __future__ import annotations

import json

from workflows.approval.jsonschema import URN, schemas


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
