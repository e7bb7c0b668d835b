"""Entities in the store (ADR 38): an entity is the ``instances`` row ``@name@key``, its
state in ``output`` while its status is Running (Completed: it has none), the critical
section holding it in ``custom_status`` (``{"lockedBy": …, "criticalSection": …}``), and its
recorded requests in ``events``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import JsonValue

from contracts import OrchestrationStatus
from contracts.entities import EntityId, is_entity_id
from durable.store.columns import json_value
from durable.store.database import Connection
from durable.store.instances import ENDED


@dataclass(frozen=True)
class EntityRecord:
    """One entity as clients see it."""

    entity_id: EntityId
    state: JsonValue
    exists: bool
    locked_by: str | None
    last_modified: datetime


@dataclass(frozen=True)
class OrphanedLock:
    """An entity held by a critical section whose orchestration has ended or is gone."""

    entity_id: str
    critical_section_id: str
    holder: str
    correlation_id: str


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _record(row: asyncpg.Record) -> EntityRecord:
    lock = json_value(row["custom_status"])
    holder = lock.get("lockedBy") if isinstance(lock, dict) else None
    exists = row["status"] == OrchestrationStatus.RUNNING.value
    return EntityRecord(
        entity_id=EntityId.parse(row["instance_id"]),
        state=json_value(row["output"]) if exists else None,
        exists=exists,
        locked_by=holder if isinstance(holder, str) else None,
        last_modified=row["updated_at"],
    )


async def entity_states_txn(
    connection: Connection, entity_ids: Sequence[str]
) -> dict[str, JsonValue]:
    """The state each entity's row holds (None for one without state)."""
    rows = await connection.fetch(
        "SELECT instance_id, output FROM instances WHERE instance_id = ANY($1::text[])",
        list(entity_ids),
    )
    return {row["instance_id"]: json_value(row["output"]) for row in rows}


async def read_entity(
    connection: Connection | asyncpg.Pool, entity_id: EntityId
) -> EntityRecord | None:
    """The entity, or None when it has no state (never had, or was destructed)."""
    row = await connection.fetchrow(
        """
        SELECT instance_id, status, output, custom_status, updated_at FROM instances
        WHERE instance_id = $1 AND status = $2
        """,
        entity_id.instance_id,
        OrchestrationStatus.RUNNING.value,
    )
    return None if row is None else _record(row)


async def list_entities(
    connection: Connection | asyncpg.Pool,
    name: str | None,
    *,
    after: str | None,
    limit: int,
    include_deleted: bool = False,
) -> list[EntityRecord]:
    """A page of entities (of entity function ``name``, or all), in id order, after the
    entity id ``after``; those without state only with ``include_deleted``."""
    prefix = "@" if name is None else f"@{name.lower()}@"
    rows = await connection.fetch(
        f"""
        SELECT instance_id, status, output, custom_status, updated_at FROM instances
        WHERE instance_id LIKE $1 AND ($2::text IS NULL OR instance_id > $2)
          AND ($3 OR status = $4)
        ORDER BY instance_id
        LIMIT {int(limit)}
        """,
        _escaped(prefix) + "%",
        after,
        include_deleted,
        OrchestrationStatus.RUNNING.value,
    )
    return [_record(row) for row in rows if is_entity_id(row["instance_id"])]


async def remove_empty_entities_txn(connection: Connection) -> int:
    """Delete the entities without state that no critical section holds, with their events
    (their requests, kept to drop duplicates: a late duplicate would now run again)."""
    gone = await connection.fetch(
        """
        WITH gone AS (
            DELETE FROM instances
            WHERE instance_id LIKE '@%' AND status = $1 AND custom_status IS NULL
            RETURNING instance_id
        )
        DELETE FROM events WHERE instance_id IN (SELECT instance_id FROM gone)
        RETURNING instance_id
        """,
        OrchestrationStatus.COMPLETED.value,
    )
    return len({row["instance_id"] for row in gone})


async def orphaned_locks(connection: Connection | asyncpg.Pool) -> list[OrphanedLock]:
    """Entities held by a critical section whose orchestration has ended or does not exist."""
    rows = await connection.fetch(
        """
        SELECT e.instance_id, e.correlation_id,
               e.custom_status ->> 'lockedBy' AS holder,
               e.custom_status ->> 'criticalSection' AS section
        FROM instances e
        LEFT JOIN instances o ON o.instance_id = e.custom_status ->> 'lockedBy'
        WHERE e.instance_id LIKE '@%' AND e.custom_status ? 'lockedBy'
          AND (o.instance_id IS NULL OR o.status = ANY($1::text[]))
        """,
        ENDED,
    )
    return [
        OrphanedLock(row["instance_id"], row["section"], row["holder"], row["correlation_id"])
        for row in rows
    ]
