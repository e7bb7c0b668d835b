"""The event store's contract, part three: the outbox, starts, timers and the registry."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg

from durable.store.batch import BatchWrite, write_batch
from durable.store.outbox import (
    OutboxCleaner,
    claim_stale_outbox_txn,
    delete_outbox,
    delete_outbox_txn,
    insert_outbox_txn,
)
from durable.store.queries import fetch_instance
from durable.store.registered_functions import (
    protected_events,
    record_registered_functions,
    registered_activities,
    registered_orchestrators,
)
from durable.store.starts import Start, insert_start, insert_starts, start_was_written_txn
from durable.store.timers import (
    TimerChanges,
    TimerKey,
    claim_overdue_timers_txn,
    mark_timers_swept_txn,
)
from tests.conftest import unique
from tests.store.factories import message, new_instance, overdue_timer, running_instance


async def claim(store: asyncpg.Pool, partitions: list[int] | None) -> set[str]:
    """The message ids of the stale rows a sweeper of ``partitions`` would take now."""
    async with store.acquire() as connection, connection.transaction():
        records = await claim_stale_outbox_txn(connection, 0.0, 100_000, partitions)
    return {record.message.message_id for record in records}


async def overdue(store: asyncpg.Pool, grace_seconds: float = 1.0) -> set[TimerKey]:
    async with store.acquire() as connection, connection.transaction():
        return {t.key for t in await claim_overdue_timers_txn(connection, grace_seconds, 100_000)}


class OutboxContract:
    """Outbox rows come back as written, to the sweeper of the partition that wrote them;
    starts create an instance and its message together or not at all; overdue timers are
    claimed until swept; the registry remembers what each deployment runs."""

    async def test_outbox_rows_keep_their_order_and_message(self, store: asyncpg.Pool) -> None:
        messages = [message('{"n": 1}'), message('{"n": 2}')]
        async with store.acquire() as connection, connection.transaction():
            records = await insert_outbox_txn(connection, messages, partition=7)

        assert [record.message for record in records] == messages
        assert records[0].id < records[1].id

    async def test_the_sweeper_takes_only_its_partitions_rows(self, store: asyncpg.Pool) -> None:
        ours, theirs, clients = message(), message(), message()
        async with store.acquire() as connection, connection.transaction():
            await insert_outbox_txn(connection, [ours], partition=3)
            await insert_outbox_txn(connection, [theirs], partition=4)
            await insert_outbox_txn(connection, [clients])

        claimed = await claim(store, [3])
        assert ours.message_id in claimed
        assert not {theirs.message_id, clients.message_id} & claimed
        # Partition 0's sweeper takes the rows of no partition (the client's).
        assert clients.message_id in await claim(store, [0])

    async def test_claimed_rows_come_back_whole_and_deleted_rows_do_not(
        self, store: asyncpg.Pool
    ) -> None:
        swept, published = message('{"a": 1}'), message()
        async with store.acquire() as connection, connection.transaction():
            records = await insert_outbox_txn(connection, [swept, published], partition=5)
        await delete_outbox(store, [records[1].id])

        async with store.acquire() as connection, connection.transaction():
            claimed = await claim_stale_outbox_txn(connection, 0.0, 100_000, [5])
            assert [record.message for record in claimed] == [swept]
            await delete_outbox_txn(connection, [record.id for record in claimed])

        assert await claim(store, [5]) == set()

    async def test_the_sweeper_skips_rows_being_published(self, store: asyncpg.Pool) -> None:
        async with store.acquire() as connection, connection.transaction():
            [record] = await insert_outbox_txn(connection, [message()], partition=6)
            claimed = await claim_stale_outbox_txn(connection, 0.0, 100_000, [6], {record.id})
        assert claimed == []

    async def test_the_cleaner_deletes_rows_in_the_background(self, store: asyncpg.Pool) -> None:
        async with store.acquire() as connection, connection.transaction():
            records = await insert_outbox_txn(connection, [message(), message()], partition=8)
        cleaner = OutboxCleaner(store)
        cleaner.discard([record.id for record in records])
        await asyncio.sleep(0)
        await cleaner.close()
        assert await claim(store, [8]) == set()

    async def test_a_start_writes_its_instance_and_message_together(
        self, store: asyncpg.Pool
    ) -> None:
        first, again = new_instance(), message()
        record = await insert_start(store, Start(first, message()))
        assert record is not None
        assert await insert_start(store, Start(first, again)) is None

        status = await fetch_instance(store, first.instance_id)
        assert status is not None
        assert status.name == first.name
        assert again.message_id not in await claim(store, [0])

    async def test_starts_in_one_statement_each_get_their_answer(self, store: asyncpg.Pool) -> None:
        taken, _ = await running_instance(store)
        fresh = new_instance()
        # The same id again in the same statement, by another start (its own execution id).
        twin = dataclasses.replace(fresh, execution_id="e2")
        starts = [
            Start(fresh, message()),
            Start(twin, message()),
            Start(new_instance(taken), message()),
        ]

        records = await insert_starts(store, starts)

        assert [record is not None for record in records] == [True, False, False]
        assert records[0] is not None
        assert records[0].message == starts[0].message

    async def test_a_lost_start_is_found_written_or_not(self, store: asyncpg.Pool) -> None:
        written, lost = new_instance(), new_instance()
        await insert_start(store, Start(written, message()))
        async with store.acquire() as connection:
            for instance, expected in ((written, True), (lost, False)):
                transaction = connection.transaction()
                await transaction.start()
                try:
                    assert await start_was_written_txn(connection, instance) is expected
                finally:
                    await transaction.rollback()
        assert await fetch_instance(store, lost.instance_id) is None

    async def test_overdue_timers_are_claimed_until_swept(self, store: asyncpg.Pool) -> None:
        instance_id, _ = await running_instance(store)
        due, later = overdue_timer(instance_id, 1), overdue_timer(instance_id, 2, hours=-1)
        async with store.acquire() as connection:
            await write_batch(connection, BatchWrite(timers=TimerChanges(created=[due, later])))

        assert due.key in await overdue(store)
        assert later.key not in await overdue(store)
        async with store.acquire() as connection:
            await mark_timers_swept_txn(connection, [due.key])
        assert due.key not in await overdue(store, grace_seconds=60)
        assert due.key in await overdue(store, grace_seconds=0)

    async def test_closed_and_ended_timers_are_deleted(self, store: asyncpg.Pool) -> None:
        instance_id, _ = await running_instance(store)
        ending, _ = await running_instance(store)
        fired, born_closed = overdue_timer(instance_id, 1), overdue_timer(instance_id, 2)
        async with store.acquire() as connection:
            created = [fired, overdue_timer(ending, 1)]
            await write_batch(connection, BatchWrite(timers=TimerChanges(created=created)))
            changes = TimerChanges(
                created=[born_closed, overdue_timer(ending, 2)],
                closed=[fired.key, born_closed.key],
                ended=[ending],
            )
            await write_batch(connection, BatchWrite(timers=changes))

        left = {key for key in await overdue(store) if key.instance_id in (instance_id, ending)}
        assert left == set()

    async def test_the_registry_remembers_functions_and_protected_events(
        self, store: asyncpg.Pool
    ) -> None:
        orchestrator, activity = unique("orchestrator_"), unique("activity_")
        await record_registered_functions(
            store, "orchestrator", [orchestrator], {orchestrator: ["Approve", "Reject"]}
        )
        await record_registered_functions(store, "activity", [activity])

        assert orchestrator in await registered_orchestrators(store)
        assert activity in await registered_activities(store)
        assert orchestrator not in await registered_activities(store)
        assert await protected_events(store, orchestrator) == {"approve", "reject"}
        # A later deployment that protects nothing protects nothing.
        await record_registered_functions(store, "orchestrator", [orchestrator])
        assert await protected_events(store, orchestrator) == frozenset()
