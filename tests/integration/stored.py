"""What the event store holds for one instance, read back raw for before/after comparisons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts import ActivityTaskMessage, HistoryEvent, OrchestratorMessage
from contracts.history import HISTORY_EVENT_ADAPTER
from durable.store.batch import BatchWrite, NewEvent, write_batch
from durable.store.database import Connection
from durable.store.outbox import OutboxRecord, delete_outbox
from services.orchestrator.handler import OrchestrationHandler


@dataclass(frozen=True)
class StoredInstance:
    """The instance's row and its event rows, every column as stored."""

    instance_row: dict[str, Any] | None
    event_rows: list[dict[str, Any]]

    @property
    def row(self) -> dict[str, Any]:
        assert self.instance_row is not None, "no instances row"
        return self.instance_row

    @property
    def events(self) -> list[HistoryEvent]:
        return [HISTORY_EVENT_ADAPTER.validate_json(row["payload"]) for row in self.event_rows]

    @property
    def event_types(self) -> list[str]:
        return [row["event_type"] for row in self.event_rows]

    @property
    def seqs(self) -> list[int]:
        return [row["seq"] for row in self.event_rows]


async def stored_instance(pool: asyncpg.Pool, instance_id: str) -> StoredInstance:
    row = await pool.fetchrow("SELECT * FROM instances WHERE instance_id = $1", instance_id)
    events = await pool.fetch(
        "SELECT * FROM events WHERE instance_id = $1 ORDER BY seq", instance_id
    )
    return StoredInstance(dict(row) if row else None, [dict(event) for event in events])


async def handle(
    handler: OrchestrationHandler, pool: asyncpg.Pool, messages: list[OrchestratorMessage]
) -> list[ActivityTaskMessage]:
    """Run one batch and return the activity tasks it scheduled (its other outbox rows aside).

    Its outbox rows are deleted at once: no broker is involved in these tests, and a sweeper
    of a running orchestrator service must not publish them.
    """
    records: list[OutboxRecord] = (await handler.handle(messages)).records
    await delete_outbox(pool, [record.id for record in records])
    return [
        ActivityTaskMessage.model_validate_json(record.message.body)
        for record in records
        if record.message.message_type == "ActivityTask"
    ]


async def append_events_txn(connection: Connection, events: Sequence[NewEvent]) -> None:
    """Only the events of a batch (no row, no outbox): what the seq fence is tested with."""
    if events:
        await write_batch(connection, BatchWrite(events=events))
