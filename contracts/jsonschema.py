"""JSON Schema of the contracts, for services written in other languages.

``python -m contracts.jsonschema`` (or ``make schema``) rewrites ``contracts/schema/``; a test
fails when the checked-in files differ from what the models generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from contracts.approval import (
    ApprovalProgress,
    ApprovalRecord,
    ApprovalRequestMessage,
    ApprovalResponseMessage,
    ProposalOutcomeMessage,
    ProposalSubmittedMessage,
)
from contracts.envelope import Envelope
from contracts.failure import FailureDetails
from contracts.history import HistoryEvent
from contracts.messages import ActivityTaskMessage, OrchestratorMessage
from contracts.status import OrchestrationStatus

SCHEMA_DIR = Path(__file__).parent / "schema"

_DOCUMENTS: dict[str, Any] = {
    "history-event": HistoryEvent,
    "orchestrator-message": OrchestratorMessage,
    "activity-task-message": ActivityTaskMessage,
    "activity-task-batch": list[ActivityTaskMessage],
    "orchestrator-message-batch": list[OrchestratorMessage],
    "envelope": Envelope,
    "failure-details": FailureDetails,
    "orchestration-status": OrchestrationStatus,
    "proposal-submitted-message": ProposalSubmittedMessage,
    "approval-request-message": ApprovalRequestMessage,
    "approval-response-message": ApprovalResponseMessage,
    "proposal-outcome-message": ProposalOutcomeMessage,
    "approval-progress": ApprovalProgress,
    "approval-record": ApprovalRecord,
}


def generate() -> dict[str, str]:
    """File name → schema text, for every published contract."""
    documents: dict[str, str] = {}
    for name, model in _DOCUMENTS.items():
        schema = TypeAdapter(model).json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:durable-rabbit:contracts:{name}"
        documents[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return documents


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    documents = generate()
    for stale in SCHEMA_DIR.glob("*.schema.json"):
        if stale.name not in documents:
            stale.unlink()
    for file_name, text in documents.items():
        (SCHEMA_DIR / file_name).write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {len(documents)} schemas to {SCHEMA_DIR}\n")


if __name__ == "__main__":
    main()
