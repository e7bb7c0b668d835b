"""Status queries over the ``instances`` read model: one instance, pages of instances, counts,
and purging ended instances with their events and timers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import JsonValue

from contracts import FailureDetails, OrchestrationStatus
from durable.store.columns import json_text, json_value
from durable.store.database import Connection
from durable.store.instances import ENDED


@dataclass(frozen=True)
class InstanceStatus:
    """One instance as status queries report it."""

    instance_id: str
    name: str
    execution_id: str
    runtime_status: OrchestrationStatus
    input: JsonValue
    output: JsonValue
    custom_status: JsonValue
    failure: FailureDetails | None
    correlation_id: str
    parent_instance_id: str | None
    created_at: datetime
    last_updated_at: datetime
    completed_at: datetime | None
    version: str | None = None
    """The app version the instance started under, once it has started with one."""


_STATUS_COLUMNS = """
    instance_id, name, execution_id, status, input, output, custom_status, failure,
    correlation_id, parent_instance_id, created_at, updated_at, completed_at, version
"""


async def fetch_instance(
    connection: Connection | asyncpg.Pool, instance_id: str
) -> InstanceStatus | None:
    row = await connection.fetchrow(
        f"""
        SELECT {_STATUS_COLUMNS} FROM instances WHERE instance_id = $1
        """,
        instance_id,
    )
    return None if row is None else _status(row)


def _status(row: asyncpg.Record) -> InstanceStatus:
    failure = row["failure"]
    return InstanceStatus(
        instance_id=row["instance_id"],
        name=row["name"],
        execution_id=row["execution_id"],
        runtime_status=OrchestrationStatus(row["status"]),
        input=json_value(row["input"]),
        output=json_value(row["output"]),
        custom_status=json_value(row["custom_status"]),
        failure=FailureDetails.model_validate_json(failure) if failure else None,
        correlation_id=row["correlation_id"],
        parent_instance_id=row["parent_instance_id"],
        created_at=row["created_at"],
        last_updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        version=row["version"],
    )


@dataclass(frozen=True)
class InstanceQuery:
    """Filters for listing instances; ``None`` means "any".

    ``custom_status_contains`` keeps the instances whose custom status contains this JSON
    value, as Postgres' ``jsonb @>`` defines it: an object matches when it has every given
    key with a matching value (``{"stage": "manager"}``), an array when it holds every given
    element, a scalar when it is equal. A GIN index serves it (migration 0003).

    Entities (``@name@key`` rows, ADR 38) are never listed, counted or purged by a query,
    as Durable Functions' instance queries leave them out: the entity routes list them and
    ``clean_entity_storage`` removes them. No orchestration id starts with ``@``
    (``contracts.limits``), so the prefix alone tells them apart.
    """

    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: tuple[OrchestrationStatus, ...] | None = None
    instance_id_prefix: str | None = None
    name: str | None = None
    custom_status_contains: JsonValue = None

    def where(self, first_parameter: int) -> tuple[str, list[object]]:
        """A SQL condition over ``instances`` and its parameters, numbered from
        ``first_parameter``."""
        conditions: list[str] = ["instance_id NOT LIKE '@%'"]
        parameters: list[object] = []

        def add(condition: str, value: object) -> None:
            parameters.append(value)
            conditions.append(condition.format(f"${first_parameter + len(parameters) - 1}"))

        if self.created_from is not None:
            add("created_at >= {}", self.created_from)
        if self.created_to is not None:
            add("created_at <= {}", self.created_to)
        if self.statuses:
            add("status = ANY({}::text[])", [s.value for s in self.statuses])
        if self.instance_id_prefix:
            escaped = self.instance_id_prefix.replace("\\", "\\\\")
            escaped = escaped.replace("%", "\\%").replace("_", "\\_")
            add("instance_id LIKE {}", escaped + "%")
        if self.name is not None:
            add("name = {}", self.name)
        if self.custom_status_contains is not None:
            add("custom_status @> {}::jsonb", json_text(self.custom_status_contains))
        return " AND ".join(conditions), parameters


async def query_instances(
    connection: Connection | asyncpg.Pool,
    query: InstanceQuery,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[InstanceStatus]:
    """One page of instances matching ``query``, oldest first, after the keyset ``after``."""
    condition, parameters = query.where(3)
    rows = await connection.fetch(
        f"""
        SELECT {_STATUS_COLUMNS} FROM instances
        WHERE ($1::timestamptz IS NULL OR (created_at, instance_id) > ($1, $2::text))
          AND {condition}
        ORDER BY created_at, instance_id
        LIMIT {int(limit)}
        """,
        after[0] if after else None,
        after[1] if after else None,
        *parameters,
    )
    return [_status(row) for row in rows]


async def count_instances(connection: Connection | asyncpg.Pool, query: InstanceQuery) -> int:
    """How many instances match ``query`` (every page together)."""
    condition, parameters = query.where(1)
    count = await connection.fetchval(
        f"SELECT count(*) FROM instances WHERE {condition}", *parameters
    )
    return int(count)


async def purge_instances_txn(connection: Connection, instance_ids: Sequence[str]) -> int:
    """Delete instances (rows, events, timers) that have ended; return how many were deleted.

    Instances that are not Completed, Failed or Terminated are left alone.
    """
    if not instance_ids:
        return 0
    deleted = await connection.fetch(
        """
        DELETE FROM instances
        WHERE instance_id = ANY($1::text[]) AND status = ANY($2::text[])
        RETURNING instance_id
        """,
        list(instance_ids),
        ENDED,
    )
    ids = [row["instance_id"] for row in deleted]
    if ids:
        await connection.execute("DELETE FROM events WHERE instance_id = ANY($1::text[])", ids)
        await connection.execute("DELETE FROM timers WHERE instance_id = ANY($1::text[])", ids)
    return len(ids)


async def ended_instance_ids_txn(
    connection: Connection, query: InstanceQuery, limit: int
) -> list[str]:
    """Up to ``limit`` ended instances matching ``query``, locked for purging."""
    condition, parameters = query.where(2)
    rows = await connection.fetch(
        f"""
        SELECT instance_id FROM instances
        WHERE status = ANY($1::text[]) AND {condition}
        ORDER BY created_at, instance_id
        LIMIT {int(limit)}
        FOR UPDATE SKIP LOCKED
        """,
        ENDED,
        *parameters,
    )
    return [row["instance_id"] for row in rows]
