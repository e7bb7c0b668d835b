"""Stored rows as JSON lines, built by Postgres so numbers and JSON values stay exactly as
stored (no float round trip): one line per instance row, event and timer row; reading them
out (``show``, ``export``) and back in (``import``).

The same event object is what ``show --json`` prints, what ``export`` writes and what
``republish`` sends as a message body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from durable.store.database import Connection

FORMAT_VERSION = 1


def _time(column: str) -> str:
    """A timestamptz as ISO 8601 UTC with microseconds and ``Z``, whatever the session zone."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


EVENT_OBJECT = f"""json_build_object(
    'kind', 'event',
    'instance_id', e.instance_id,
    'seq', e.seq,
    'execution_id', e.execution_id,
    'event_type', e.event_type,
    'global_position', e.global_position,
    'message_id', e.message_id,
    'recorded_at', {_time("e.recorded_at")},
    'payload', e.payload
)"""
"""An ``events e`` row as JSON."""

INSTANCE_OBJECT = f"""json_build_object(
    'kind', 'instance',
    'instance_id', i.instance_id,
    'name', i.name,
    'execution_id', i.execution_id,
    'status', i.status,
    'input', i.input,
    'output', i.output,
    'custom_status', i.custom_status,
    'failure', i.failure,
    'correlation_id', i.correlation_id,
    'parent_instance_id', i.parent_instance_id,
    'created_at', {_time("i.created_at")},
    'updated_at', {_time("i.updated_at")},
    'completed_at', {_time("i.completed_at")},
    'last_seq', i.last_seq,
    'execution_start_seq', i.execution_start_seq,
    'version', i.version
)"""
"""An ``instances i`` row as JSON."""

TIMER_OBJECT = f"""json_build_object(
    'kind', 'timer',
    'instance_id', t.instance_id,
    'execution_id', t.execution_id,
    'timer_id', t.timer_id,
    'fire_at', {_time("t.fire_at")},
    'correlation_id', t.correlation_id,
    'swept_at', {_time("t.swept_at")}
)"""
"""A ``timers t`` row as JSON."""

# Reading lines back: Postgres parses each line as ``json``, which keeps the text of every
# value, so an event's payload is stored with exactly the text it was exported with (key order
# and numbers included). JSON null in a jsonb column of ``instances`` is SQL NULL (the services
# never store a JSON null there).


def _jsonb(field: str) -> str:
    return f"CASE WHEN json_typeof(l->'{field}') = 'null' THEN NULL ELSE (l->'{field}')::jsonb END"


INSERT_INSTANCES = f"""
INSERT INTO instances (instance_id, name, execution_id, status, input, output, custom_status,
                       failure, correlation_id, parent_instance_id, created_at, updated_at,
                       completed_at, last_seq, execution_start_seq, version)
SELECT l->>'instance_id', l->>'name', l->>'execution_id', l->>'status',
       {_jsonb("input")}, {_jsonb("output")}, {_jsonb("custom_status")}, {_jsonb("failure")},
       l->>'correlation_id', l->>'parent_instance_id', (l->>'created_at')::timestamptz,
       (l->>'updated_at')::timestamptz, (l->>'completed_at')::timestamptz,
       (l->>'last_seq')::bigint, (l->>'execution_start_seq')::bigint, l->>'version'
FROM (SELECT line::json AS l FROM unnest($1::text[]) AS lines(line)) AS parsed
"""

INSERT_EVENTS = """
INSERT INTO events (instance_id, seq, execution_id, event_type, payload, message_id,
                    recorded_at, global_position)
OVERRIDING SYSTEM VALUE
SELECT l->>'instance_id', (l->>'seq')::bigint, l->>'execution_id', l->>'event_type',
       l->'payload', (l->>'message_id')::uuid, (l->>'recorded_at')::timestamptz,
       (l->>'global_position')::bigint
FROM (SELECT line::json AS l FROM unnest($1::text[]) AS lines(line)) AS parsed
"""

INSERT_TIMERS = """
INSERT INTO timers (instance_id, execution_id, timer_id, fire_at, correlation_id, swept_at)
SELECT l->>'instance_id', l->>'execution_id', (l->>'timer_id')::integer,
       (l->>'fire_at')::timestamptz, l->>'correlation_id', (l->>'swept_at')::timestamptz
FROM (SELECT line::json AS l FROM unnest($1::text[]) AS lines(line)) AS parsed
"""

_INSERTS = {"instance": INSERT_INSTANCES, "event": INSERT_EVENTS, "timer": INSERT_TIMERS}


async def instance_lines_txn(connection: Connection, instance_ids: Sequence[str]) -> list[str]:
    """The instances' rows as JSON lines, in id order."""
    rows = await connection.fetch(
        f"SELECT {INSTANCE_OBJECT}::text AS line FROM instances i "
        "WHERE i.instance_id = ANY($1::text[]) ORDER BY i.instance_id",
        list(instance_ids),
    )
    return [row["line"] for row in rows]


async def event_lines_txn(
    connection: Connection, instance_ids: Sequence[str], prefetch: int
) -> AsyncIterator[str]:
    """The instances' events as JSON lines, by instance and seq, through a server-side
    cursor that fetches ``prefetch`` rows at a time (inside the caller's transaction)."""
    cursor = connection.cursor(
        f"SELECT {EVENT_OBJECT}::text AS line FROM events e "
        "WHERE e.instance_id = ANY($1::text[]) ORDER BY e.instance_id, e.seq",
        list(instance_ids),
        prefetch=prefetch,
    )
    async for row in cursor:
        yield row["line"]


async def timer_lines_txn(connection: Connection, instance_ids: Sequence[str]) -> list[str]:
    """The instances' timer rows as JSON lines."""
    rows = await connection.fetch(
        f"SELECT {TIMER_OBJECT}::text AS line FROM timers t "
        "WHERE t.instance_id = ANY($1::text[]) "
        "ORDER BY t.instance_id, t.execution_id, t.timer_id",
        list(instance_ids),
    )
    return [row["line"] for row in rows]


async def lock_for_import_txn(connection: Connection) -> bool:
    """Keep everyone else from writing instances, events and timers until the caller's
    transaction ends; return whether the store is empty (an import fills only an empty one)."""
    await connection.execute("LOCK TABLE instances, events, timers IN EXCLUSIVE MODE")
    not_empty = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM instances) OR EXISTS (SELECT 1 FROM events)"
    )
    return not not_empty


async def import_lines_txn(connection: Connection, kind: str, lines: Sequence[str]) -> None:
    """Insert exported lines of one ``kind`` (instance, event or timer) as they were
    exported, ``global_position`` included. Raises asyncpg's errors for a line Postgres
    refuses."""
    await connection.execute(_INSERTS[kind], list(lines))


async def continue_global_positions_txn(connection: Connection) -> None:
    """Make new events' ``global_position`` follow the highest one imported."""
    await connection.execute(
        "SELECT setval(pg_get_serial_sequence('events', 'global_position'), m) "
        "FROM (SELECT max(global_position) AS m FROM events) AS last WHERE m IS NOT NULL"
    )


async def instance_status(pool: asyncpg.Pool, instance_id: str) -> str | None:
    """The instance's status as stored, or ``None`` when there is no such instance."""
    status: str | None = await pool.fetchval(
        "SELECT status FROM instances WHERE instance_id = $1", instance_id
    )
    return status


@dataclass(frozen=True)
class EventLine:
    """An event as ``show`` prints it: its place, its payload, and its JSON line."""

    seq: int
    execution_id: str
    recorded_at: datetime
    payload: str
    line: str


async def event_lines_after(
    pool: asyncpg.Pool, instance_id: str, after_seq: int, limit: int
) -> list[EventLine]:
    """Up to ``limit`` of the instance's events after ``after_seq``, in seq order."""
    rows = await pool.fetch(
        f"SELECT e.seq, e.execution_id, e.recorded_at, e.payload, {EVENT_OBJECT}::text "
        "AS line FROM events e WHERE e.instance_id = $1 AND e.seq > $2 "
        f"ORDER BY e.seq LIMIT {int(limit)}",
        instance_id,
        after_seq,
    )
    return [EventLine(**dict(row)) for row in rows]
