"""The ``instances`` rows as writers see them: creating Pending rows, locking rows for a
batch, and the changes an episode sets off beyond its own statement (replacing an ended child,
finding running children, moving an instance to its next execution).

Shared by the client (which creates Pending rows when it starts an orchestration, so a status
query right after the start answers Pending) and the orchestrator (which creates the row when a
start message arrives from a publisher that did not). Status queries are in ``queries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg
from pydantic import JsonValue

from contracts import OrchestrationStatus
from durable.store.columns import RowShape, column, json_text
from durable.store.database import Connection

ENDED = [s.value for s in OrchestrationStatus if s.is_terminal]
"""The statuses of an instance that has ended, as stored."""


class ExistingInstancePolicy(StrEnum):
    """What a start does when its instance id is already in use."""

    ERROR = "error"
    """Refuse the start, whatever state the existing instance is in."""
    REPLACE_ENDED = "replace_ended"
    """Replace an instance that has ended (Completed, Failed, Terminated): its history is
    purged in the same transaction. Refuse the start while it has not ended. Durable
    Functions' default (``overridableExistingInstanceStates: NonRunningStates``)."""
    USE_EXISTING = "use_existing"
    """Keep the existing instance, whatever its state, and start nothing: the start is
    idempotent, so a caller can retry a start whose answer it never got without running
    the workflow twice."""


@dataclass(frozen=True)
class NewInstance:
    instance_id: str
    name: str
    execution_id: str
    correlation_id: str
    input: JsonValue
    created_at: datetime
    parent_instance_id: str | None = None
    version: str | None = None
    """The app version the start names, shown while it is Pending; ``None`` until the
    orchestrator that records the start stamps its own."""


NEW_INSTANCE_ROWS: RowShape[NewInstance] = RowShape(
    (
        column("instance_id", "text"),
        column("name", "text"),
        column("execution_id", "text"),
        column("input", "text", lambda i: json_text(i.input)),
        column("correlation_id", "text"),
        column("parent_instance_id", "text"),
        column("created_at", "timestamptz"),
        column("version", "text"),
    )
)
"""A new instance's columns; ``input`` as JSON text, cast to jsonb by the statement."""


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


_INSERT = f"""
    INSERT INTO instances (instance_id, name, execution_id, status, input, correlation_id,
                           parent_instance_id, created_at, updated_at, version)
    SELECT instance_id, name, execution_id, $9, input::jsonb, correlation_id,
           parent_instance_id, created_at, created_at, version
    FROM {NEW_INSTANCE_ROWS.unnest(1, "t")}
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id
"""


async def insert_instances_txn(
    connection: Connection, instances: Sequence[NewInstance]
) -> set[str]:
    """Insert Pending rows; instances that already exist are left alone. Returns the new ids."""
    if not instances:
        return set()
    rows = await connection.fetch(
        _INSERT, *NEW_INSTANCE_ROWS.arrays(instances), OrchestrationStatus.PENDING.value
    )
    return {row["instance_id"] for row in rows}


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
        """
        SELECT instance_id, name, execution_id, status, correlation_id, last_seq,
               execution_start_seq
        FROM instances
        WHERE instance_id = ANY($1::text[])
        ORDER BY instance_id
        FOR UPDATE
        """,
        list(instance_ids),
    )
    return {row["instance_id"]: _instance(row) for row in rows}


async def delete_ended_instance_txn(connection: Connection, instance_id: str) -> None:
    """Delete the instance's row and events if it has ended, so its id can be used again
    (a retried sub-orchestration reuses its child's id); one that has not ended stays."""
    await connection.execute(
        """
        WITH gone AS (
            DELETE FROM instances
            WHERE instance_id = $1 AND status = ANY($2::text[])
            RETURNING instance_id
        )
        DELETE FROM events WHERE instance_id IN (SELECT instance_id FROM gone)
        """,
        instance_id,
        ENDED,
    )


@dataclass(frozen=True)
class RunningChild:
    instance_id: str
    correlation_id: str


async def running_children_txn(
    connection: Connection, parent_ids: Sequence[str]
) -> list[RunningChild]:
    """The children of ``parent_ids`` that have not ended."""
    if not parent_ids:
        return []
    rows = await connection.fetch(
        """
        SELECT instance_id, correlation_id FROM instances
        WHERE parent_instance_id = ANY($1::text[]) AND NOT status = ANY($2::text[])
        """,
        list(parent_ids),
        ENDED,
    )
    return [RunningChild(row["instance_id"], row["correlation_id"]) for row in rows]


async def move_execution_txn(
    connection: Connection,
    instance_id: str,
    *,
    execution_id: str,
    first_seq: int,
    input: JsonValue,
    keep_input: bool,
    drop_earlier_events: bool,
) -> None:
    """Point the row at its new execution, whose first event is ``first_seq``, with
    ``input`` (unless ``keep_input``); with ``drop_earlier_events``, delete the events of
    the executions before it."""
    await connection.execute(
        """
        UPDATE instances SET execution_id = $2, execution_start_seq = $3,
                             input = CASE WHEN $5 THEN input ELSE $4::jsonb END,
                             completed_at = NULL
        WHERE instance_id = $1
        """,
        instance_id,
        execution_id,
        first_seq,
        json_text(input),
        keep_input,
    )
    if drop_earlier_events:
        await connection.execute(
            "DELETE FROM events WHERE instance_id = $1 AND seq < $2", instance_id, first_seq
        )
