"""The ``instances`` read model: creating rows and reading an instance's status.

Shared by the client (which creates Pending rows when it starts an orchestration, so a status
query right after the start answers Pending) and the orchestrator (which creates the row when a
start message arrives from a publisher that did not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import JsonValue, TypeAdapter

from contracts import FailureDetails, OrchestrationStatus
from services.common.db import Connection

_JSON_VALUE: TypeAdapter[JsonValue] = TypeAdapter(JsonValue)


def json_text(value: JsonValue) -> str | None:
    """JSON text for a jsonb column; Python ``None`` is stored as SQL NULL."""
    return None if value is None else _JSON_VALUE.dump_json(value).decode()


def json_value(text: str | None) -> JsonValue:
    return None if text is None else _JSON_VALUE.validate_json(text)


@dataclass(frozen=True)
class NewInstance:
    instance_id: str
    name: str
    execution_id: str
    correlation_id: str
    input: JsonValue
    created_at: datetime
    parent_instance_id: str | None = None


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


async def insert_instances_txn(
    connection: Connection, instances: Sequence[NewInstance]
) -> set[str]:
    """Insert Pending rows; instances that already exist are left alone. Returns the new ids."""
    if not instances:
        return set()
    rows = await connection.fetch(
        """
        INSERT INTO instances (instance_id, name, execution_id, status, input, correlation_id,
                               parent_instance_id, created_at, updated_at)
        SELECT id, name, execution_id, $8, input::jsonb, correlation_id, parent, created, created
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[])
             AS t(id, name, execution_id, input, correlation_id, parent, created)
        ON CONFLICT (instance_id) DO NOTHING
        RETURNING instance_id
        """,
        [i.instance_id for i in instances],
        [i.name for i in instances],
        [i.execution_id for i in instances],
        [json_text(i.input) for i in instances],
        [i.correlation_id for i in instances],
        [i.parent_instance_id for i in instances],
        [i.created_at for i in instances],
        OrchestrationStatus.PENDING.value,
    )
    return {row["instance_id"] for row in rows}


async def fetch_instance(
    connection: Connection | asyncpg.Pool, instance_id: str
) -> InstanceStatus | None:
    row = await connection.fetchrow(
        """
        SELECT instance_id, name, execution_id, status, input, output, custom_status, failure,
               correlation_id, parent_instance_id, created_at, updated_at, completed_at
        FROM instances WHERE instance_id = $1
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
    )
