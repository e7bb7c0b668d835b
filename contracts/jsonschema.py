"""JSON Schema of the contracts, for services written in other languages.

``python -m contracts.jsonschema`` (or ``make schema``) rewrites ``contracts/schema/``; a test
fails when the checked-in files differ from what the models generate. A workflow's own messages
are published the same way from its package (``generate`` and ``write`` take any models).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

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
}


def generate(
    documents: Mapping[str, Any] = _DOCUMENTS, urn: str = "urn:durable-rabbit:contracts"
) -> dict[str, str]:
    """File name → schema text, for every model of ``documents`` (name → model); each
    schema's ``$id`` is ``<urn>:<name>``. By default: every published contract."""
    texts: dict[str, str] = {}
    for name, model in documents.items():
        schema = TypeAdapter(model).json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{urn}:{name}"
        texts[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return texts


def write(directory: Path, documents: Mapping[str, str]) -> None:
    """Make ``directory`` hold exactly ``documents`` (file name → text) as schema files."""
    directory.mkdir(exist_ok=True)
    for stale in directory.glob("*.schema.json"):
        if stale.name not in documents:
            stale.unlink()
    for file_name, text in documents.items():
        (directory / file_name).write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {len(documents)} schemas to {directory}\n")


def main() -> None:
    write(SCHEMA_DIR, generate())


if __name__ == "__main__":
    main()
