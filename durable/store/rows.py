"""Whole ``instances`` rows, as the operations tools read them to check them against their
events (``replay-check``, ``rebuild-projections``) and write them back repaired."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts import FailureDetails, OrchestrationStatus
from durable.store.columns import json_text, json_value
from durable.store.database import Connection

ROW_COLUMNS = """
    instance_id, name, execution_id, status, input, output, custom_status, failure,
    correlation_id, parent_instance_id, created_at, updated_at, completed_at, last_seq,
    execution_start_seq, version
"""
JSON_COLUMNS = frozenset({"input", "output", "custom_status", "failure"})
PROJECTED_COLUMNS = (
    "name",
    "execution_id",
    "status",
    "input",
    "output",
    "custom_status",
    "failure",
    "parent_instance_id",
    "created_at",
    "updated_at",
    "completed_at",
    "last_seq",
    "execution_start_seq",
    "version",
)
"""The columns an instance's events decide (its projection), so the ones a repair may set."""
_REPAIRABLE = frozenset(PROJECTED_COLUMNS)


def live_row(record: asyncpg.Record) -> dict[str, Any]:
    """An ``instances`` row as Python values (JSON decoded, the status an enum)."""
    row = dict(record)
    for name in JSON_COLUMNS:
        row[name] = json_value(row[name])
    # A corrupted status stays a string, and differs from the rebuilt one.
    with contextlib.suppress(ValueError):
        row["status"] = OrchestrationStatus(row["status"])
    return row


async def instance_rows_txn(
    connection: Connection, instance_ids: Sequence[str], *, lock: bool
) -> list[dict[str, Any]]:
    """The rows of ``instance_ids`` that exist, in id order, as ``live_row`` gives them.
    With ``lock``, locked for the caller's transaction, skipping (leaving out) the rows
    another transaction holds."""
    locking = "FOR UPDATE SKIP LOCKED" if lock else ""
    rows = await connection.fetch(
        f"SELECT {ROW_COLUMNS} FROM instances WHERE instance_id = ANY($1::text[]) "
        f"ORDER BY instance_id {locking}",
        list(instance_ids),
    )
    return [live_row(row) for row in rows]


async def existing_instance_ids(pool: asyncpg.Pool, instance_ids: Sequence[str]) -> list[str]:
    """Those of ``instance_ids`` that have a row."""
    rows = await pool.fetch(
        "SELECT instance_id FROM instances WHERE instance_id = ANY($1::text[])",
        list(instance_ids),
    )
    return [row["instance_id"] for row in rows]


@dataclass(frozen=True)
class ReplayTarget:
    """Where an instance's current execution starts, to replay it from the store."""

    instance_id: str
    name: str
    execution_start_seq: int


async def replay_targets_txn(
    connection: Connection, instance_ids: Sequence[str]
) -> list[ReplayTarget]:
    """For the instances of ``instance_ids`` that exist, in id order, their current
    execution's start."""
    rows = await connection.fetch(
        "SELECT instance_id, name, execution_start_seq FROM instances "
        "WHERE instance_id = ANY($1::text[]) ORDER BY instance_id",
        list(instance_ids),
    )
    return [
        ReplayTarget(row["instance_id"], row["name"], row["execution_start_seq"]) for row in rows
    ]


def failure_json(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, FailureDetails):
        return value.model_dump_json()
    return FailureDetails.model_validate(value).model_dump_json()


def _column_value(name: str, value: Any) -> Any:
    if name == "failure":
        return failure_json(value)
    if name in JSON_COLUMNS:
        return json_text(value)
    if name == "status":
        return str(value.value if hasattr(value, "value") else value)
    return value


async def repair_instance_txn(
    connection: Connection, instance_id: str, values: dict[str, Any]
) -> None:
    """Set the columns of the instance's row named in ``values`` (any of the rebuildable
    ones: JSON values and the status as Python values)."""
    unknown = values.keys() - _REPAIRABLE
    if unknown:
        raise ValueError(f"not columns that can be repaired: {sorted(unknown)}")
    assignments: list[str] = []
    parameters: list[Any] = [instance_id]
    for name, value in values.items():
        parameters.append(_column_value(name, value))
        cast = "::jsonb" if name in JSON_COLUMNS else ""
        assignments.append(f"{name} = ${len(parameters)}{cast}")
    await connection.execute(
        f"UPDATE instances SET {', '.join(assignments)} WHERE instance_id = $1", *parameters
    )
