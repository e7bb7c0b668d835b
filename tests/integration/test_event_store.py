"""The event store on the real Postgres: appends, the seq fence, atomic batches, loads, locks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from contracts import OrchestrationStatus
from durable.broker import OutgoingMessage
from durable.store import batch as store_batch
from durable.store.batch import BatchWrite, InstanceUpdate, NewEvent
from durable.store.database import Connection
from durable.store.errors import ConcurrencyError
from durable.store.events import load_histories_txn, load_history
from durable.store.instances import (
    InstanceRecord,
    NewInstance,
    insert_instances_txn,
    lock_instances_txn,
)
from durable.store.outbox import insert_outbox_txn
from durable.store.timers import TimerChanges, TimerKey, TimerRow
from tests.conftest import unique
from tests.helpers.history import HistoryBuilder
from tests.integration.stored import append_events_txn, stored_instance

NOW = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


async def write_rows(connection: Connection | asyncpg.Pool, *parts: Any, **named: Any) -> None:
    """One batch statement, its parts given as ``BatchWrite``'s fields."""
    await store_batch.write_batch(connection, BatchWrite(*parts, **named))


def chain_history() -> HistoryBuilder:
    """Six events: a start, one task scheduled, its completion, the next task scheduled."""
    history = HistoryBuilder().start("hello_cities").scheduled(0, "say_hello", "Tokyo")
    return history.episode().completed(0, "Hello Tokyo!").scheduled(1, "say_hello", "Seattle")


def new_events(instance_id: str, history: HistoryBuilder, first_seq: int = 1) -> list[NewEvent]:
    return [
        NewEvent(instance_id, seq, "e1", event)
        for seq, event in enumerate(history.events, start=first_seq)
    ]


def running(instance_id: str, last_seq: int) -> InstanceUpdate:
    return InstanceUpdate(
        instance_id=instance_id,
        status=OrchestrationStatus.RUNNING,
        custom_status={"step": last_seq},
        output=None,
        failure=None,
        last_seq=last_seq,
        updated_at=NOW,
        completed_at=None,
    )


def outgoing(body: str = "{}") -> OutgoingMessage:
    return OutgoingMessage(
        exchange="ex",
        routing_key="rk",
        message_id=str(uuid.uuid4()),
        correlation_id="corr",
        message_type="ActivityTask",
        body=body.encode(),
    )


async def create_instance(
    connection: Connection, instance_id: str, events: Sequence[NewEvent] = ()
) -> None:
    """A Pending instance row, with ``events`` appended and recorded as its last seq."""
    async with connection.transaction():
        await insert_instances_txn(
            connection,
            [NewInstance(instance_id, "hello_cities", "e1", f"corr-{instance_id}", None, NOW)],
        )
        await append_events_txn(connection, events)
        if events:
            last = running(instance_id, events[-1].seq)
            await write_rows(connection, [], [last], {instance_id: 0})


async def lock_with_timeout(
    connection: Connection, instance_id: str, timeout: str
) -> dict[str, InstanceRecord]:
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{timeout}'")
        return await lock_instances_txn(connection, [instance_id])


async def outbox_rows(pool: asyncpg.Pool, messages: list[OutgoingMessage]) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE message_id = ANY($1::uuid[])",
            [m.message_id for m in messages],
        )
    )


async def test_appended_events_load_back_in_seq_order(pool: asyncpg.Pool) -> None:
    instance_id = unique("store-")
    history = chain_history()
    events = new_events(instance_id, history)
    events[2] = NewEvent(instance_id, 3, "e1", events[2].event, message_id=uuid.uuid4())

    async with pool.acquire() as connection:
        await create_instance(connection, instance_id, events[:2])
        async with connection.transaction():
            # Rows inserted out of order still come back in seq order.
            await append_events_txn(connection, list(reversed(events[2:])))

    loaded = await load_history(pool, instance_id)
    assert [stored.seq for stored in loaded] == [1, 2, 3, 4, 5, 6]
    assert [stored.event for stored in loaded] == history.events
    assert [stored.message_id for stored in loaded] == [e.message_id for e in events]
    assert await load_history(pool, unique("never-written-")) == []


async def test_append_at_a_taken_seq_raises_concurrency_error_and_the_transaction_leaves_nothing(
    pool: asyncpg.Pool,
) -> None:
    instance_id = unique("store-")
    events = new_events(instance_id, chain_history())
    message = outgoing()
    async with pool.acquire() as connection:
        await create_instance(connection, instance_id, events[:2])
    before = await stored_instance(pool, instance_id)

    async def write_after_a_stale_read() -> None:
        async with pool.acquire() as connection, connection.transaction():
            await append_events_txn(connection, [events[2]])
            await write_rows(connection, [], [running(instance_id, 3)], {instance_id: 2})
            await insert_outbox_txn(connection, [message])
            # A writer that still believes seq 2 is free.
            await append_events_txn(connection, [NewEvent(instance_id, 2, "e1", events[3].event)])

    with pytest.raises(ConcurrencyError):
        await write_after_a_stale_read()

    assert await stored_instance(pool, instance_id) == before
    assert before.seqs == [1, 2]
    assert await outbox_rows(pool, [message]) == 0


async def two_instances(pool: asyncpg.Pool, history: HistoryBuilder) -> tuple[str, str]:
    """A new instance, and one that already holds its first event."""
    first, second = unique("batch-a-"), unique("batch-b-")
    async with pool.acquire() as connection:
        await create_instance(connection, first)
        await create_instance(connection, second, new_events(second, history)[:1])
    return first, second


async def write_batch(
    pool: asyncpg.Pool,
    history: HistoryBuilder,
    first: str,
    second: str,
    second_from_seq: int,
    messages: list[OutgoingMessage],
) -> None:
    """What a handler writes for two instances: their events, their rows, the outbox."""
    async with pool.acquire() as connection, connection.transaction():
        await append_events_txn(connection, new_events(first, history))
        await append_events_txn(connection, new_events(second, history, second_from_seq)[:3])
        await write_rows(
            connection, [], [running(first, 6), running(second, 4)], {first: 0, second: 1}
        )
        await insert_outbox_txn(connection, messages)


async def test_a_batch_over_several_instances_commits_every_part(pool: asyncpg.Pool) -> None:
    history = chain_history()
    first, second = await two_instances(pool, history)
    messages = [outgoing(), outgoing()]

    await write_batch(pool, history, first, second, 2, messages)

    first_state = await stored_instance(pool, first)
    second_state = await stored_instance(pool, second)
    assert first_state.seqs == [1, 2, 3, 4, 5, 6]
    assert second_state.seqs == [1, 2, 3, 4]
    assert (first_state.row["last_seq"], second_state.row["last_seq"]) == (6, 4)
    assert first_state.row["status"] == second_state.row["status"] == "Running"
    assert await outbox_rows(pool, messages) == 2


@pytest.mark.parametrize(
    ("second_from_seq", "last_body", "error"),
    [
        pytest.param(1, "{}", ConcurrencyError, id="second instance's events collide"),
        pytest.param(2, "\x00", asyncpg.CharacterNotInRepertoireError, id="last outbox row"),
    ],
)
async def test_a_batch_over_several_instances_leaves_nothing_when_one_part_fails(
    pool: asyncpg.Pool, second_from_seq: int, last_body: str, error: type[Exception]
) -> None:
    history = chain_history()
    first, second = await two_instances(pool, history)
    messages = [outgoing(), outgoing(last_body)]

    with pytest.raises(error):
        await write_batch(pool, history, first, second, second_from_seq, messages)

    first_state = await stored_instance(pool, first)
    second_state = await stored_instance(pool, second)
    assert first_state.seqs == []
    assert second_state.seqs == [1]
    assert (first_state.row["last_seq"], first_state.row["status"]) == (0, "Pending")
    assert (second_state.row["last_seq"], second_state.row["status"]) == (1, "Running")
    assert await outbox_rows(pool, messages) == 0


async def test_load_histories_txn_reads_each_instance_from_its_own_seq(pool: asyncpg.Pool) -> None:
    long_one, short_one, unknown = unique("long-"), unique("short-"), unique("unknown-")
    history = chain_history()
    async with pool.acquire() as connection:
        await create_instance(connection, long_one, new_events(long_one, history))
        await create_instance(connection, short_one, new_events(short_one, history)[:3])

        histories = await load_histories_txn(connection, {long_one: 4, short_one: 1, unknown: 1})
        nothing = await load_histories_txn(connection, {})

    assert [stored.seq for stored in histories[long_one]] == [4, 5, 6]
    assert [stored.event for stored in histories[long_one]] == history.events[3:]
    assert [stored.seq for stored in histories[short_one]] == [1, 2, 3]
    assert histories[unknown] == []
    assert nothing == {}


async def test_lock_instances_txn_returns_the_rows_and_holds_them_until_commit(
    pool: asyncpg.Pool,
) -> None:
    locked_one, other = unique("lock-a-"), unique("lock-b-")
    async with pool.acquire() as holder, pool.acquire() as contender:
        await create_instance(holder, locked_one, new_events(locked_one, chain_history())[:2])
        await create_instance(holder, other)

        async with holder.transaction():
            rows = await lock_instances_txn(holder, [other, locked_one, unique("missing-")])
            assert set(rows) == {locked_one, other}
            assert rows[locked_one].last_seq == 2
            assert rows[locked_one].status is OrchestrationStatus.RUNNING
            assert rows[locked_one].execution_start_seq == 1
            assert (rows[other].last_seq, rows[other].name) == (0, "hello_cities")

            with pytest.raises(asyncpg.LockNotAvailableError):
                await lock_with_timeout(contender, locked_one, "100ms")

        assert set(await lock_with_timeout(contender, locked_one, "5s")) == {locked_one}


async def timer_count(pool: asyncpg.Pool, instance_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM timers WHERE instance_id = $1", instance_id)
    )


async def test_a_write_from_a_stale_cache_fails_the_fence_and_writes_nothing(
    pool: asyncpg.Pool,
) -> None:
    instance_id = unique("fence-")
    events = new_events(instance_id, chain_history())
    async with pool.acquire() as connection:
        await create_instance(connection, instance_id, events[:3])
    before = await stored_instance(pool, instance_id)
    message = outgoing()
    timer = TimerRow(instance_id, "e1", 7, NOW, "corr")

    # The cache believes the row is at seq 2; it is at 3. Seq 4 is free, so only the row's
    # last_seq can tell, and the statement is its own transaction: nothing of it may stay.
    with pytest.raises(ConcurrencyError):
        await write_rows(
            pool,
            events[3:4],
            [running(instance_id, 4)],
            {instance_id: 2},
            [message],
            TimerChanges(created=[timer]),
        )

    assert await stored_instance(pool, instance_id) == before
    assert await outbox_rows(pool, [message]) == 0
    assert await timer_count(pool, instance_id) == 0


async def test_timers_created_and_closed_in_one_batch_leave_no_row(pool: asyncpg.Pool) -> None:
    instance_id = unique("timers-")
    events = new_events(instance_id, chain_history())
    async with pool.acquire() as connection:
        await create_instance(connection, instance_id, events[:2])
    kept, cancelled = (TimerRow(instance_id, "e1", i, NOW, "corr") for i in (1, 2))

    await write_rows(
        pool,
        events[2:3],
        [running(instance_id, 3)],
        {instance_id: 2},
        timers=TimerChanges(created=[kept, cancelled], closed=[TimerKey(instance_id, "e1", 2)]),
    )
    assert await timer_count(pool, instance_id) == 1

    # The instance ends: its remaining timer goes, even one created in the same batch.
    late = TimerRow(instance_id, "e1", 3, NOW, "corr")
    await write_rows(
        pool,
        events[3:4],
        [running(instance_id, 4)],
        {instance_id: 3},
        timers=TimerChanges(created=[late], ended=[instance_id]),
    )
    assert await timer_count(pool, instance_id) == 0
