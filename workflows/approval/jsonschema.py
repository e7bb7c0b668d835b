"""JSON Schema of the approval workflow's messages, for submitting and approving apps written
in other languages.

``python -m workflows.approval.jsonschema`` (``make schema`` runs it too) rewrites
``workflows/approval/schema/``; a test fails when the checked-in files differ from what the
models generate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.jsonschema import generate, write
from workflows.approval.messages import (
    ApprovalProgress,
    ApprovalRecord,
    ApprovalRequestMessage,
    ApprovalResponseMessage,
    ProposalOutcomeMessage,
    ProposalSubmittedMessage,
)

SCHEMA_DIR = Path(__file__).parent / "schema"
URN = "urn:durable-rabbit:workflows:approval"

DOCUMENTS: dict[str, Any] = {
    "proposal-submitted-message": ProposalSubmittedMessage,
    "approval-request-message": ApprovalRequestMessage,
    "approval-response-message": ApprovalResponseMessage,
    "proposal-outcome-message": ProposalOutcomeMessage,
    "approval-progress": ApprovalProgress,
    "approval-record": ApprovalRecord,
}


def schemas() -> dict[str, str]:
    """File name → schema text, for every message of the workflow."""
    return generate(DOCUMENTS, URN)


def main() -> None:
    write(SCHEMA_DIR, schemas())


if __name__ == "__main__":
    main()
