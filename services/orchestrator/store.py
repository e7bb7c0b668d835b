"""Writing the event store: locking instances, appending events, updating the read model.

Reading streams is in ``services.common.events``. Helpers named ``*_txn`` run inside the
caller's transaction; the handler owns the transaction. Appends name the seq they expect to
write: ``PRIMARY KEY (instance_id, seq)`` makes a second writer of the same seq fail, which
surfaces here as ``ConcurrencyError``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import JsonValue

from contracts import FailureDetails, HistoryEvent, OrchestrationStatus
from services.common.db import ConcurrencyError, Connection, is_unique_violation
from services.common.instances import json_text


@dataclass(frozen=True)
class InstanceRecord:
    """The locked row of one instance: enough to decide whether the cache is current."""

    instance_id: str
    name: str
    execution_id: str
    status: OrchestrationStatus
    correlation_id: str
    last_seq: int
    execution_start_seq: int


@dataclass(frozen=True)
class NewEvent:
    instance_id: str
    seq: int
    execution_id: str
    event: HistoryEvent
    message_id: uuid.UUID | None = None


@dataclass(frozen=True)
class InstanceUpdate:
    instance_id: str
    status: OrchestrationStatus
    custom_status: JsonValue
    output: JsonValue
    failure: FailureDetails | None
    last_seq: int
    updated_at: datetime
    completed_at: datetime | None


_INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, correlation_id, last_seq, execution_start_seq"
)


def _instance(row: asyncpg.Record) -> InstanceRecord:
    return InstanceRecord(
        instance_id=row["instance_id"],
        name=row["name"],
        execution_id=row["execution_id"],
        status=OrchestrationStatus(row["status"]),
        correlation_id=row["correlation_id"],
        last_seq=row["last_seq"],
        execution_start_seq=row["execution_start_seq"],
    )


async def lock_instances_txn(
    connection: Connection, instance_ids: Sequence[str]
) -> dict[str, InstanceRecord]:
    """Lock the instances' rows (in id order, so concurrent batches cannot deadlock)."""
    rows = await connection.fetch(
        f"""
        SELECT {_INSTANCE_COLUMNS} FROM instances
        WHERE instance_id = ANY($1::text[])
        ORDER BY instance_id
        FOR UPDATE
        """,
        list(instance_ids),
    )
    return {row["instance_id"]: _instance(row) for row in rows}


async def append_events_txn(connection: Connection, events: Sequence[NewEvent]) -> None:
    """Append events at their expected seqs.

    Raises ``ConcurrencyError`` when another writer appended one of these seqs first.
    """
    if not events:
        return
    try:
        await connection.execute(
            """
            INSERT INTO events (instance_id, seq, execution_id, event_type, payload, message_id)
            SELECT id, seq, execution_id, event_type, payload::json, message_id
            FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::uuid[])
                 AS t(id, seq, execution_id, event_type, payload, message_id)
            """,
            [e.instance_id for e in events],
            [e.seq for e in events],
            [e.execution_id for e in events],
            [e.event.event_type for e in events],
            [e.event.model_dump_json() for e in events],
            [e.message_id for e in events],
        )
    except asyncpg.PostgresError as error:
        if is_unique_violation(error):
            raise ConcurrencyError(str(error)) from error
        raise


async def update_instances_txn(connection: Connection, updates: Sequence[InstanceUpdate]) -> None:
    """Write the read model of each instance touched by the batch."""
    if not updates:
        return
    await connection.execute(
        """
        UPDATE instances AS i SET
            status = u.status,
            custom_status = u.custom_status::jsonb,
            output = u.output::jsonb,
            failure = u.failure::jsonb,
            last_seq = u.last_seq,
            updated_at = u.updated_at,
            completed_at = u.completed_at
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                    $7::timestamptz[], $8::timestamptz[])
             AS u(instance_id, status, custom_status, output, failure, last_seq, updated_at,
                  completed_at)
        WHERE i.instance_id = u.instance_id
        """,
        [u.instance_id for u in updates],
        [u.status.value for u in updates],
        [json_text(u.custom_status) for u in updates],
        [json_text(u.output) for u in updates],
        [u.failure.model_dump_json() if u.failure else None for u in updates],
        [u.last_seq for u in updates],
        [u.updated_at for u in updates],
        [u.completed_at for u in updates],
    )
