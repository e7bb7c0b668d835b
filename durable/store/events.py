"""Reading event streams: an instance's events in seq order, decoded into history events.

Events are appended by ``batch`` (the handler's statement) and, for an import, ``transfer``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contracts import HistoryEvent
from contracts.history import HISTORY_EVENT_ADAPTER
from contracts.limits import STORED
from durable.store.database import Connection


@dataclass(frozen=True)
class StreamEvent:
    """An event with the execution it belongs to, as the operations tools read streams."""

    seq: int
    execution_id: str
    event: HistoryEvent


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    event: HistoryEvent
    message_id: uuid.UUID | None
    recorded_at: datetime | None = None


async def load_histories_txn(
    connection: Connection, from_seq: Mapping[str, int]
) -> dict[str, list[StoredEvent]]:
    """Each instance's events from the given seq on, in seq order."""
    histories: dict[str, list[StoredEvent]] = {instance_id: [] for instance_id in from_seq}
    if not from_seq:
        return histories
    rows = await connection.fetch(
        """
        SELECT e.instance_id, e.seq, e.payload, e.message_id, e.recorded_at
        FROM unnest($1::text[], $2::bigint[]) AS wanted(instance_id, from_seq)
        JOIN events e ON e.instance_id = wanted.instance_id AND e.seq >= wanted.from_seq
        ORDER BY e.instance_id, e.seq
        """,
        list(from_seq.keys()),
        list(from_seq.values()),
    )
    for row in rows:
        histories[row["instance_id"]].append(
            StoredEvent(
                seq=row["seq"],
                event=HISTORY_EVENT_ADAPTER.validate_json(row["payload"], context=STORED),
                message_id=row["message_id"],
                recorded_at=row["recorded_at"],
            )
        )
    return histories


async def load_history(pool: asyncpg.Pool, instance_id: str) -> list[StoredEvent]:
    """All events of an instance (every execution), in seq order."""
    async with pool.acquire() as connection:
        histories = await load_histories_txn(connection, {instance_id: 1})
    return histories[instance_id]


async def load_stream_txn(
    connection: Connection, instance_id: str, from_seq: int = 1
) -> list[StreamEvent]:
    """The instance's events from ``from_seq`` on, in seq order, with their executions."""
    rows = await connection.fetch(
        "SELECT seq, execution_id, payload FROM events "
        "WHERE instance_id = $1 AND seq >= $2 ORDER BY seq",
        instance_id,
        from_seq,
    )
    return [
        StreamEvent(
            row["seq"],
            row["execution_id"],
            HISTORY_EVENT_ADAPTER.validate_json(row["payload"], context=STORED),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class RawStreamEvent:
    """An event as stored, its payload not decoded: for checks that must see events whose
    payload no longer reads as a history event (``durable-ops check-invariants``)."""

    seq: int
    execution_id: str
    event_type: str
    payload: str


async def raw_streams_txn(
    connection: Connection, instance_ids: Sequence[str]
) -> dict[str, list[RawStreamEvent]]:
    """The stored events of ``instance_ids`` (every execution), each instance's in seq order;
    an instance without events has an empty list."""
    streams: dict[str, list[RawStreamEvent]] = {instance_id: [] for instance_id in instance_ids}
    rows = await connection.fetch(
        "SELECT instance_id, seq, execution_id, event_type, payload::text AS payload "
        "FROM events WHERE instance_id = ANY($1::text[]) ORDER BY instance_id, seq",
        list(instance_ids),
    )
    for row in rows:
        streams[row["instance_id"]].append(
            RawStreamEvent(row["seq"], row["execution_id"], row["event_type"], row["payload"])
        )
    return streams
