"""Reading the events of every instance in commit order, for ``republish``.

The order is ``(transaction_id, global_position)``: an event is read only once its
transaction id is below the oldest transaction still running (``horizon``), so the part of
the stream read so far never grows behind a reader's cursor (ADR 9). ``services.operations
.republish`` explains how it publishes them and keeps each instance's events in seq order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from durable.store.records import EVENT_OBJECT


@dataclass(frozen=True, order=True)
class EventKey:
    """An event's place in commit order."""

    transaction_id: int
    global_position: int

    def text(self) -> str:
        return f"transaction {self.transaction_id}, position {self.global_position}"


@dataclass(frozen=True)
class StartFilter:
    """Which events a run covers, besides its cursor."""

    from_position: int | None = None
    from_time: datetime | None = None

    def sql(self, parameter: int) -> tuple[str, list[Any]]:
        if self.from_position is not None:
            return f"e.global_position >= ${parameter}", [self.from_position]
        if self.from_time is not None:
            return f"e.recorded_at >= ${parameter}", [self.from_time]
        return "TRUE", []


@dataclass(frozen=True)
class StoredLine:
    """An event as republished: its key, its place in its stream, and its JSON body."""

    key: EventKey
    instance_id: str
    execution_id: str
    seq: int
    event_type: str
    body: str


@dataclass(frozen=True)
class Transaction:
    """A transaction still running, as ``pg_stat_activity`` shows it."""

    pid: int
    state: str | None
    started_at: datetime | None


_LINE_COLUMNS = f"""e.transaction_id, e.global_position, e.instance_id, e.execution_id,
    e.seq, e.event_type, {EVENT_OBJECT}::text AS body"""


def _line(row: asyncpg.Record) -> StoredLine:
    return StoredLine(
        key=EventKey(row["transaction_id"], row["global_position"]),
        instance_id=row["instance_id"],
        execution_id=row["execution_id"],
        seq=row["seq"],
        event_type=row["event_type"],
        body=row["body"],
    )


async def snapshot_horizon(pool: asyncpg.Pool) -> int:
    """The oldest transaction id still running: every one below it has ended."""
    return int(await pool.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())"))


async def snapshot_end(pool: asyncpg.Pool) -> int:
    """The first transaction id not yet assigned: every later one starts after now."""
    return int(await pool.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())"))


async def events_after(
    pool: asyncpg.Pool, after: EventKey, below: int, start: StartFilter, limit: int
) -> list[StoredLine]:
    """Up to ``limit`` events after ``after`` whose transaction id is below ``below``, in
    commit order."""
    condition, parameters = start.sql(4)
    rows = await pool.fetch(
        f"""
        SELECT {_LINE_COLUMNS}
        FROM events e
        WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
          AND e.transaction_id < $3::xid8 AND {condition}
        ORDER BY e.transaction_id, e.global_position
        LIMIT {int(limit)}
        """,
        after.transaction_id,
        after.global_position,
        below,
        *parameters,
    )
    return [_line(row) for row in rows]


async def event_keys(
    pool: asyncpg.Pool, events: Sequence[tuple[str, int]], start: StartFilter
) -> dict[tuple[str, int], EventKey]:
    """The keys of the events at ``(instance_id, seq)`` that exist and ``start`` covers."""
    condition, parameters = start.sql(3)
    rows = await pool.fetch(
        f"""
        SELECT e.instance_id, e.seq, e.transaction_id, e.global_position
        FROM unnest($1::text[], $2::bigint[]) AS wanted(instance_id, seq)
        JOIN events e ON e.instance_id = wanted.instance_id AND e.seq = wanted.seq
        WHERE {condition}
        """,
        [instance_id for instance_id, _ in events],
        [seq for _, seq in events],
        *parameters,
    )
    return {
        (row["instance_id"], row["seq"]): EventKey(row["transaction_id"], row["global_position"])
        for row in rows
    }


async def events_up_to(
    pool: asyncpg.Pool, last_seqs: dict[str, int], after: EventKey, start: StartFilter
) -> list[StoredLine]:
    """Each instance's events up to its seq in ``last_seqs`` that come after ``after``, by
    instance and seq."""
    condition, parameters = start.sql(5)
    rows = await pool.fetch(
        f"""
        SELECT {_LINE_COLUMNS}
        FROM unnest($1::text[], $2::bigint[]) AS wanted(instance_id, last_seq)
        JOIN events e ON e.instance_id = wanted.instance_id AND e.seq <= wanted.last_seq
        WHERE (e.transaction_id, e.global_position) > ($3::xid8, $4::bigint) AND {condition}
        ORDER BY e.instance_id, e.seq
        """,
        list(last_seqs),
        list(last_seqs.values()),
        after.transaction_id,
        after.global_position,
        *parameters,
    )
    return [_line(row) for row in rows]


async def count_held_back(
    pool: asyncpg.Pool, after: EventKey, horizon: int, start: StartFilter, cap: int
) -> int:
    """How many committed events after ``after`` wait for ``horizon`` (at most ``cap``)."""
    condition, parameters = start.sql(4)
    held_back = await pool.fetchval(
        f"""
        SELECT count(*) FROM (
            SELECT 1 FROM events e
            WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
              AND e.transaction_id >= $3::xid8 AND {condition}
            LIMIT {int(cap)}
        ) AS held
        """,
        after.transaction_id,
        after.global_position,
        horizon,
        *parameters,
    )
    return int(held_back)


async def oldest_transaction(pool: asyncpg.Pool) -> Transaction | None:
    """The oldest transaction that holds an id, if any."""
    row = await pool.fetchrow(
        """
        SELECT pid, state, xact_start FROM pg_stat_activity
        WHERE backend_xid IS NOT NULL ORDER BY age(backend_xid) DESC LIMIT 1
        """
    )
    return None if row is None else Transaction(row["pid"], row["state"], row["xact_start"])
