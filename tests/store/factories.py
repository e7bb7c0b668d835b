"""Rows for the event store's contract tests: instances, events, updates, messages, timers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts import FailureDetails, HistoryEvent, OrchestrationStatus
from durable.broker import OutgoingMessage
from durable.store.batch import BatchWrite, InstanceUpdate, NewEvent, write_batch
from durable.store.instances import NewInstance, insert_instances_txn
from durable.store.timers import TimerRow
from tests.conftest import unique
from tests.helpers.history import HistoryBuilder

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def new_instance(
    instance_id: str | None = None,
    *,
    name: str = "hello_cities",
    created_at: datetime = NOW,
    parent: str | None = None,
    input: object = None,
) -> NewInstance:
    instance_id = instance_id or unique("store-")
    return NewInstance(instance_id, name, "e1", f"corr-{instance_id}", input, created_at, parent)


def chain_events() -> list[HistoryEvent]:
    """Six events: a start, one task scheduled, its completion, the next task scheduled."""
    history = HistoryBuilder().start("hello_cities").scheduled(0, "say_hello", "Tokyo")
    return (
        history.episode().completed(0, "Hello Tokyo!").scheduled(1, "say_hello", "Seattle").events
    )


def appended(
    instance_id: str, events: Sequence[HistoryEvent], first_seq: int = 1, execution_id: str = "e1"
) -> list[NewEvent]:
    return [
        NewEvent(instance_id, seq, execution_id, event, uuid.uuid4())
        for seq, event in enumerate(events, start=first_seq)
    ]


def update(
    instance_id: str,
    last_seq: int,
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
    *,
    output: object = None,
    failure: FailureDetails | None = None,
    at: datetime = NOW,
) -> InstanceUpdate:
    return InstanceUpdate(
        instance_id=instance_id,
        status=status,
        custom_status={"step": last_seq},
        output=output,
        failure=failure,
        last_seq=last_seq,
        updated_at=at,
        completed_at=at if status.is_terminal else None,
    )


def message(body: str = "{}", message_type: str = "ActivityTask") -> OutgoingMessage:
    return OutgoingMessage(
        exchange="ex",
        routing_key="rk",
        message_id=str(uuid.uuid4()),
        correlation_id="corr",
        message_type=message_type,
        body=body.encode(),
    )


def overdue_timer(instance_id: str, timer_id: int = 1, hours: float = 1.0) -> TimerRow:
    fire_at = datetime.now(UTC) - timedelta(hours=hours)
    return TimerRow(instance_id, "e1", timer_id, fire_at, f"corr-{instance_id}")


async def running_instance(
    pool: asyncpg.Pool,
    events: Sequence[HistoryEvent] | None = None,
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
    **instance: object,
) -> tuple[str, int]:
    """A new instance with ``events`` (a chain by default) appended and its row at
    ``status``; returns its id and last seq."""
    row = new_instance(**instance)
    stream = chain_events() if events is None else list(events)
    async with pool.acquire() as connection:
        await insert_instances_txn(connection, [row])
        await write_batch(
            connection,
            BatchWrite(
                events=appended(row.instance_id, stream),
                updates=[update(row.instance_id, len(stream), status)],
                expected_seqs={row.instance_id: 0},
            ),
        )
    return row.instance_id, len(stream)
