"""Starting instances: a Pending row and its start message in the outbox, many starts in one
statement, and finding out whether a start whose connection was lost was written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from contracts import OrchestrationStatus
from durable.broker import OutgoingMessage
from durable.store.columns import RowShape, Statement
from durable.store.database import Connection
from durable.store.instances import NEW_INSTANCE_ROWS, NewInstance
from durable.store.outbox import OUTBOX_ROWS, OutboxRecord


@dataclass(frozen=True)
class Start:
    """A new instance and the message that starts it."""

    instance: NewInstance
    message: OutgoingMessage


def _instance(start: Start) -> NewInstance:
    return start.instance


def _message(start: Start) -> OutgoingMessage:
    return start.message


START_ROWS: RowShape[Start] = NEW_INSTANCE_ROWS.via(_instance) + OUTBOX_ROWS.via(
    _message, {"correlation_id": "message_correlation_id"}
)
"""A start's instance columns, then its message's (the message's correlation id renamed)."""

_STARTS = Statement()
_WANTED = _STARTS.rows("starts", START_ROWS, "w")
_PENDING = _STARTS.value("pending", "text")

_INSERT_STARTS = f"""
WITH wanted AS (
    SELECT * FROM {_WANTED}
),
created AS (
    INSERT INTO instances (instance_id, name, execution_id, status, input,
                           correlation_id, parent_instance_id, created_at, updated_at, version)
    SELECT instance_id, name, execution_id, {_PENDING}, input::jsonb, correlation_id,
           parent_instance_id, created_at, created_at, version
    FROM wanted
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id, execution_id
)
INSERT INTO outbox ({OUTBOX_ROWS.names})
SELECT w.exchange, w.routing_key, w.message_id, w.message_correlation_id, w.message_type, w.body
FROM wanted w JOIN created c USING (instance_id, execution_id)
RETURNING id, message_id
"""


async def insert_start(connection: Connection | asyncpg.Pool, start: Start) -> OutboxRecord | None:
    """Create a Pending instance and queue its start message: one statement, so one round
    trip and its own transaction. ``None`` (and nothing written) when the id is taken."""
    [record] = await insert_starts(connection, [start])
    return record


async def insert_starts(
    connection: Connection | asyncpg.Pool, starts: Sequence[Start]
) -> list[OutboxRecord | None]:
    """``insert_start`` for many starts in one statement: for each, its outbox row, or
    ``None`` (and nothing written for it) when its id is taken, by an existing instance or by
    a start before it in ``starts``."""
    rows = await connection.fetch(
        _INSERT_STARTS,
        *_STARTS.arguments(starts=starts, pending=OrchestrationStatus.PENDING.value),
    )
    ids = {str(row["message_id"]): row["id"] for row in rows}
    return [
        None
        if start.message.message_id not in ids
        else OutboxRecord(ids[start.message.message_id], start.message)
        for start in starts
    ]


async def start_was_written_txn(connection: Connection, instance: NewInstance) -> bool:
    """Whether ``instance`` was created by the start that wrote it, read in the caller's
    transaction, which the caller rolls back afterwards.

    Reading the row is not enough: the server may still be running a lost connection's
    statement, whose row no one else can see until it commits. Inserting the same id waits
    for that statement to finish (a unique key waits for the transaction that holds it); what
    is left once it has is what the lost statement did.
    """
    await connection.execute(
        "INSERT INTO instances (instance_id, name, execution_id, status, "
        "correlation_id, created_at, updated_at) "
        "VALUES ($1, '', '', 'Pending', '', now(), now()) "
        "ON CONFLICT (instance_id) DO NOTHING",
        instance.instance_id,
    )
    execution_id = await connection.fetchval(
        "SELECT execution_id FROM instances WHERE instance_id = $1", instance.instance_id
    )
    return bool(execution_id == instance.execution_id)
