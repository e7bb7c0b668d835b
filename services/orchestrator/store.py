"""Writing the event store: locking instances, appending events, updating the read model.

Reading streams is in ``services.common.events``. Helpers named ``*_txn`` run inside the
caller's transaction; the handler owns the transaction. Appends name the seq they expect to
write: ``PRIMARY KEY (instance_id, seq)`` makes a second writer of the same seq fail, which
surfaces here as ``ConcurrencyError``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import JsonValue

from contracts import FailureDetails, HistoryEvent, OrchestrationStatus
from durable.broker import OutgoingMessage
from services.common.db import ConcurrencyError, Connection, is_write_conflict
from services.common.instances import json_text
from services.common.outbox import OutboxRecord, outbox_columns
from services.orchestrator.timers import TimerKey, TimerRow


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


_INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, correlation_id, last_seq, execution_start_seq"
)


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
        f"""
        SELECT {_INSTANCE_COLUMNS} FROM instances
        WHERE instance_id = ANY($1::text[])
        ORDER BY instance_id
        FOR UPDATE
        """,
        list(instance_ids),
    )
    return {row["instance_id"]: _instance(row) for row in rows}


@dataclass(frozen=True)
class TimerChanges:
    """The timer rows a batch adds and removes (see ``services.orchestrator.timers``)."""

    created: Sequence[TimerRow] = ()
    closed: Sequence[TimerKey] = ()
    """Timers that fired or were cancelled."""
    ended: Sequence[str] = ()
    """Instances that ended (or continued as new): none of their timers is awaited any more."""

    def net(self) -> tuple[list[TimerRow], list[TimerKey], list[str]]:
        """The same changes as applying ``created``, then ``closed``, then ``ended`` one after
        the other: in one statement the deletes cannot see the rows it inserts, so a timer
        created and closed in the same batch is simply not inserted."""
        closed = {(k.instance_id, k.execution_id, k.timer_id) for k in self.closed}
        ended = set(self.ended)
        created = [
            t
            for t in self.created
            if t.instance_id not in ended
            and (t.instance_id, t.execution_id, t.timer_id) not in closed
        ]
        return created, list(self.closed), sorted(ended)


async def write_batch(
    connection: Connection,
    events: Sequence[NewEvent],
    updates: Sequence[InstanceUpdate],
    expected_seqs: Mapping[str, int],
    messages: Sequence[OutgoingMessage] = (),
    timers: TimerChanges = TimerChanges(),
    partition: int | None = None,
) -> list[OutboxRecord]:
    """Append ``events``, update the instances' rows, queue ``messages``, write the timer
    rows: one statement. ``partition``: the partition whose batch this is (outbox rows
    record it, for the sweepers).

    Each row is updated only while its ``last_seq`` is the one in ``expected_seqs`` (what the
    cache or the locked row said before the episode), so this is safe without a lock: when
    another writer moved a row, or appended one of these seqs, the whole statement fails and
    raises ``ConcurrencyError``. Outside a transaction the statement is the transaction: one
    round trip writes a batch of cached instances.
    """
    ordered = sorted(updates, key=lambda u: u.instance_id)  # a fixed lock order
    created, closed, ended = timers.net()
    try:
        row = await connection.fetchrow(
            """
            WITH appended AS (
                INSERT INTO events
                    (instance_id, seq, execution_id, event_type, payload, message_id)
                SELECT id, seq, execution_id, event_type, payload::json, message_id
                FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                            $6::uuid[]) AS t(id, seq, execution_id, event_type, payload,
                                             message_id)
            ),
            updated AS (
                UPDATE instances AS i SET
                    status = u.status,
                    custom_status = u.custom_status::jsonb,
                    output = u.output::jsonb,
                    failure = u.failure::jsonb,
                    last_seq = u.last_seq,
                    updated_at = u.updated_at,
                    completed_at = u.completed_at
                FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                            $12::bigint[], $13::timestamptz[], $14::timestamptz[],
                            $15::bigint[])
                     AS u(instance_id, status, custom_status, output, failure, last_seq,
                          updated_at, completed_at, expected_seq)
                WHERE i.instance_id = u.instance_id AND i.last_seq = u.expected_seq
                RETURNING i.instance_id
            ),
            queued AS (
                INSERT INTO outbox
                    (exchange, routing_key, message_id, correlation_id, message_type, body,
                     partition)
                SELECT *, $32::smallint
                FROM unnest($16::text[], $17::text[], $18::uuid[], $19::text[],
                            $20::text[], $21::text[])
                RETURNING id
            ),
            timers_created AS (
                INSERT INTO timers (instance_id, execution_id, timer_id, fire_at, correlation_id)
                SELECT * FROM unnest($23::text[], $24::text[], $25::int[], $26::timestamptz[],
                                     $27::text[])
                ON CONFLICT DO NOTHING
            ),
            timers_closed AS (
                DELETE FROM timers t
                USING unnest($28::text[], $29::text[], $30::int[])
                      AS d(instance_id, execution_id, timer_id)
                WHERE t.instance_id = d.instance_id
                  AND t.execution_id = d.execution_id
                  AND t.timer_id = d.timer_id
            ),
            timers_ended AS (
                DELETE FROM timers WHERE instance_id = ANY($31::text[])
            )
            SELECT durable_fence($22, (SELECT count(*) FROM updated)) AS updated,
                   ARRAY(SELECT id FROM queued ORDER BY id) AS outbox_ids
            """,
            [e.instance_id for e in events],
            [e.seq for e in events],
            [e.execution_id for e in events],
            [e.event.event_type for e in events],
            [e.event.model_dump_json() for e in events],
            [e.message_id for e in events],
            [u.instance_id for u in ordered],
            [u.status.value for u in ordered],
            [json_text(u.custom_status) for u in ordered],
            [json_text(u.output) for u in ordered],
            [u.failure.model_dump_json() if u.failure else None for u in ordered],
            [u.last_seq for u in ordered],
            [u.updated_at for u in ordered],
            [u.completed_at for u in ordered],
            [expected_seqs[u.instance_id] for u in ordered],
            *outbox_columns(messages),
            len(ordered),
            [t.instance_id for t in created],
            [t.execution_id for t in created],
            [t.timer_id for t in created],
            [t.fire_at for t in created],
            [t.correlation_id for t in created],
            [k.instance_id for k in closed],
            [k.execution_id for k in closed],
            [k.timer_id for k in closed],
            ended,
            partition,
        )
    except asyncpg.PostgresError as error:
        if is_write_conflict(error):
            raise ConcurrencyError(str(error)) from error
        raise
    assert row is not None
    ids: list[int] = row["outbox_ids"]
    return [OutboxRecord(i, message) for i, message in zip(ids, messages, strict=True)]
