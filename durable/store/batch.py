"""Writing a handler batch: events appended, instance rows updated, outbox and timer rows, in
one statement.

Appends name the seq they expect to write: ``PRIMARY KEY (instance_id, seq)`` makes a second
writer of the same seq fail, and each row is updated only while its ``last_seq`` is the one the
batch started from (``durable_fence`` fails the statement otherwise); either surfaces here as
``ConcurrencyError``. Outside a transaction the statement is the transaction: one round trip
writes a batch of cached instances (ADR 11). The rows of each kind travel as the parallel
arrays of their ``RowShape``; ``BatchWrite`` names what one statement writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from pydantic import JsonValue

from contracts import FailureDetails, HistoryEvent, OrchestrationStatus
from durable.broker import OutgoingMessage
from durable.store.columns import RowShape, Statement, column, json_text
from durable.store.database import Connection
from durable.store.errors import (
    ConcurrencyError,
    LeaseLostError,
    is_lease_lost,
    is_write_conflict,
)
from durable.store.leases import Lease, lease_arguments
from durable.store.outbox import OUTBOX_ROWS, OutboxRecord
from durable.store.timers import TIMER_KEYS, TIMER_ROWS, TimerChanges


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
    version: str | None = None
    """The app version the execution started under; ``None`` keeps the row's."""


@dataclass(frozen=True)
class _FencedUpdate:
    """An update with the ``last_seq`` its row must still have."""

    update: InstanceUpdate
    expected_seq: int


NEW_EVENT_ROWS: RowShape[NewEvent] = RowShape(
    (
        column("instance_id", "text"),
        column("seq", "bigint"),
        column("execution_id", "text"),
        column("event_type", "text", lambda e: e.event.event_type),
        column("payload", "text", lambda e: e.event.model_dump_json()),
        column("message_id", "uuid"),
    )
)
"""An appended event; its payload as JSON text (the column is ``json``, which keeps it)."""

INSTANCE_UPDATE_ROWS: RowShape[_FencedUpdate] = RowShape(
    (
        column("instance_id", "text", lambda f: f.update.instance_id),
        column("status", "text", lambda f: f.update.status.value),
        column("custom_status", "text", lambda f: json_text(f.update.custom_status)),
        column("output", "text", lambda f: json_text(f.update.output)),
        column(
            "failure",
            "text",
            lambda f: f.update.failure.model_dump_json() if f.update.failure else None,
        ),
        column("last_seq", "bigint", lambda f: f.update.last_seq),
        column("updated_at", "timestamptz", lambda f: f.update.updated_at),
        column("completed_at", "timestamptz", lambda f: f.update.completed_at),
        column("version", "text", lambda f: f.update.version),
        column("expected_seq", "bigint"),
    )
)


@dataclass(frozen=True)
class BatchWrite:
    """What one batch writes in one statement.

    Attributes:
        events: the events to append, at the seqs they name.
        updates: the instances' rows as the batch leaves them.
        expected_seqs: each updated instance's ``last_seq`` before the batch (what the cache
            or the locked row said); a row that no longer has it fails the statement.
        messages: outbox rows, recorded as written by ``partition`` (None: by no
            partition), for the sweepers.
        timers: the timer rows added and removed.
        partition: the partition whose batch this is (None: none's).
        lease: the lease the writer holds on ``partition``; the statement fails with
            ``LeaseLostError`` unless it still holds (None: no check, as when the
            orchestrator runs without leases).
    """

    events: Sequence[NewEvent] = ()
    updates: Sequence[InstanceUpdate] = ()
    expected_seqs: Mapping[str, int] = field(default_factory=dict)
    messages: Sequence[OutgoingMessage] = ()
    timers: TimerChanges = field(default_factory=TimerChanges)
    partition: int | None = None
    lease: Lease | None = None

    def arguments(self) -> list[object]:
        # A fixed lock order: concurrent batches over the same rows cannot deadlock.
        ordered = sorted(self.updates, key=lambda u: u.instance_id)
        fenced = [_FencedUpdate(u, self.expected_seqs[u.instance_id]) for u in ordered]
        created, closed, ended = self.timers.net()
        return _WRITE.arguments(
            events=self.events,
            updates=fenced,
            messages=self.messages,
            updated_rows=len(fenced),
            timers_created=created,
            timers_closed=closed,
            ended_instances=ended,
            partition=self.partition,
            **lease_arguments(self.lease),
        )


_WRITE = Statement()
_EVENTS = _WRITE.rows("events", NEW_EVENT_ROWS, "t")
_UPDATES = _WRITE.rows("updates", INSTANCE_UPDATE_ROWS, "u")
_MESSAGES = _WRITE.rows("messages", OUTBOX_ROWS, "m")
_UPDATED_ROWS = _WRITE.value("updated_rows", "bigint")
_TIMERS_CREATED = _WRITE.rows("timers_created", TIMER_ROWS, "c")
_TIMERS_CLOSED = _WRITE.rows("timers_closed", TIMER_KEYS, "d")
_ENDED = _WRITE.value("ended_instances", "text[]")
_PARTITION = _WRITE.value("partition", "smallint")
_LEASE = (
    _WRITE.value("lease_namespace", "text"),
    _WRITE.value("lease_partition", "smallint"),
    _WRITE.value("lease_member", "text"),
    _WRITE.value("lease_epoch", "bigint"),
)

WRITE_BATCH = f"""
WITH appended AS (
    INSERT INTO events (instance_id, seq, execution_id, event_type, payload, message_id)
    SELECT instance_id, seq, execution_id, event_type, payload::json, message_id
    FROM {_EVENTS}
),
updated AS (
    UPDATE instances AS i SET
        status = u.status,
        custom_status = u.custom_status::jsonb,
        output = u.output::jsonb,
        failure = u.failure::jsonb,
        last_seq = u.last_seq,
        updated_at = u.updated_at,
        completed_at = u.completed_at,
        version = COALESCE(u.version, i.version)
    FROM {_UPDATES}
    WHERE i.instance_id = u.instance_id AND i.last_seq = u.expected_seq
    RETURNING i.instance_id
),
queued AS (
    INSERT INTO outbox ({OUTBOX_ROWS.names}, partition)
    SELECT *, {_PARTITION} FROM {_MESSAGES}
    RETURNING id
),
timers_created AS (
    INSERT INTO timers ({TIMER_ROWS.names})
    SELECT * FROM {_TIMERS_CREATED}
    ON CONFLICT DO NOTHING
),
timers_closed AS (
    DELETE FROM timers t
    USING {_TIMERS_CLOSED}
    WHERE t.instance_id = d.instance_id
      AND t.execution_id = d.execution_id
      AND t.timer_id = d.timer_id
),
timers_ended AS (
    DELETE FROM timers WHERE instance_id = ANY({_ENDED})
)
SELECT durable_fence({_UPDATED_ROWS}, (SELECT count(*) FROM updated)) AS updated,
       ARRAY(SELECT id FROM queued ORDER BY id) AS outbox_ids,
       CASE WHEN {_LEASE[0]} IS NULL THEN true
            ELSE durable_lease_fence({", ".join(_LEASE)}) END AS fenced
"""
"""The one statement of a batch (built once, at import)."""


async def write_batch(connection: Connection, write: BatchWrite) -> list[OutboxRecord]:
    """Write ``write`` in one statement; return its outbox rows (with their ids).

    Raises ``ConcurrencyError`` when another writer moved one of the rows or appended one of
    the seqs first, and ``LeaseLostError`` when the writer's lease moved on: either way
    nothing of the statement is written.
    """
    try:
        row = await connection.fetchrow(WRITE_BATCH, *write.arguments())
    except asyncpg.PostgresError as error:
        if is_lease_lost(error):
            raise LeaseLostError(str(error)) from error
        if is_write_conflict(error):
            raise ConcurrencyError(str(error)) from error
        raise
    assert row is not None
    ids: list[int] = row["outbox_ids"]
    return [OutboxRecord(i, message) for i, message in zip(ids, write.messages, strict=True)]
