"""Reading one instance's row and stream for the checks that replay or rebuild it."""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg

from contracts import FailureDetails, OrchestrationStatus
from contracts.history import HISTORY_EVENT_ADAPTER
from contracts.limits import STORED
from durable.store.columns import json_value
from durable.store.database import Connection
from services.operations.projections import StreamEvent

ROW_COLUMNS = """
    instance_id, name, execution_id, status, input, output, custom_status, failure,
    correlation_id, parent_instance_id, created_at, updated_at, completed_at, last_seq,
    execution_start_seq
"""


def live_row(record: asyncpg.Record) -> dict[str, Any]:
    """An ``instances`` row as Python values (JSON decoded, the status an enum)."""
    row = dict(record)
    for name in ("input", "output", "custom_status", "failure"):
        row[name] = json_value(row[name])
    # A corrupted status stays a string, and differs from the rebuilt one.
    with contextlib.suppress(ValueError):
        row["status"] = OrchestrationStatus(row["status"])
    return row


def failure_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, FailureDetails):
        return value.model_dump_json()
    return FailureDetails.model_validate(value).model_dump_json()


async def load_stream(
    connection: Connection, instance_id: str, from_seq: int = 1
) -> list[StreamEvent]:
    """The instance's events from ``from_seq`` on, in seq order."""
    rows = await connection.fetch(
        "SELECT seq, execution_id, payload FROM events "
        "WHERE instance_id = $1 AND seq >= $2 ORDER BY seq",
        instance_id,
        from_seq,
    )
    return [
        StreamEvent(
            row["seq"],
            row["execution_id"],
            HISTORY_EVENT_ADAPTER.validate_json(row["payload"], context=STORED),
        )
        for row in rows
    ]
