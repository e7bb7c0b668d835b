"""The event store's contract, part two: instance rows, status queries and purges."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from contracts import OrchestrationStatus
from durable.store.batch import BatchWrite, write_batch
from durable.store.events import load_history
from durable.store.instances import (
    delete_ended_instance_txn,
    insert_instances_txn,
    lock_instances_txn,
    move_execution_txn,
    running_children_txn,
)
from durable.store.queries import (
    InstanceQuery,
    count_instances,
    ended_instance_ids_txn,
    fetch_instance,
    purge_instances_txn,
    query_instances,
)
from durable.store.timers import TimerChanges, claim_overdue_timers_txn
from tests.conftest import unique
from tests.store.factories import NOW, new_instance, overdue_timer, running_instance

COMPLETED = OrchestrationStatus.COMPLETED


class InstancesContract:
    """Rows are created once, locked in id order, listed by keyset pages, purged when ended."""

    async def test_a_new_instance_is_pending_and_created_once(self, store: asyncpg.Pool) -> None:
        row = new_instance(input={"city": "Tokyo"})
        async with store.acquire() as connection:
            assert await insert_instances_txn(connection, [row]) == {row.instance_id}
            assert await insert_instances_txn(connection, [row]) == set()

        status = await fetch_instance(store, row.instance_id)
        assert status is not None
        assert status.runtime_status is OrchestrationStatus.PENDING
        assert (status.name, status.input, status.created_at) == (row.name, row.input, NOW)
        assert await fetch_instance(store, unique("missing-")) is None

    async def test_locking_returns_the_rows_that_exist(self, store: asyncpg.Pool) -> None:
        instance_id, last_seq = await running_instance(store)
        async with store.acquire() as connection, connection.transaction():
            rows = await lock_instances_txn(connection, [instance_id, unique("missing-")])

        assert list(rows) == [instance_id]
        assert rows[instance_id].last_seq == last_seq
        assert rows[instance_id].execution_start_seq == 1
        assert rows[instance_id].status is OrchestrationStatus.RUNNING

    async def test_queries_filter_and_page_oldest_first(self, store: asyncpg.Pool) -> None:
        prefix = unique("page-")
        ids = []
        for n in range(5):
            instance_id, _ = await running_instance(
                store, instance_id=f"{prefix}{n}", created_at=NOW + timedelta(seconds=n)
            )
            ids.append(instance_id)
        query = InstanceQuery(instance_id_prefix=prefix, statuses=(OrchestrationStatus.RUNNING,))

        first = await query_instances(store, query, after=None, limit=3)
        last = first[-1]
        rest = await query_instances(
            store, query, after=(last.created_at, last.instance_id), limit=3
        )

        assert [s.instance_id for s in first + rest] == ids
        assert await count_instances(store, query) == 5
        assert await count_instances(store, InstanceQuery(instance_id_prefix=prefix + "%")) == 0

    async def test_queries_match_custom_status_by_containment(self, store: asyncpg.Pool) -> None:
        instance_id, last_seq = await running_instance(store)
        query = InstanceQuery(custom_status_contains={"step": last_seq}, name="hello_cities")

        found = await query_instances(store, query, after=None, limit=10_000)

        assert instance_id in {s.instance_id for s in found}

    async def test_purging_deletes_ended_instances_with_events_and_timers(
        self, store: asyncpg.Pool
    ) -> None:
        ended, _ = await running_instance(store, status=COMPLETED)
        running, _ = await running_instance(store)
        async with store.acquire() as connection:
            timers = TimerChanges(created=[overdue_timer(ended), overdue_timer(running)])
            await write_batch(connection, BatchWrite(timers=timers))
            async with connection.transaction():
                deleted = await purge_instances_txn(connection, [ended, running])

            async with connection.transaction():
                timers_left = await claim_overdue_timers_txn(connection, 1.0, 100_000)

        assert deleted == 1
        assert await fetch_instance(store, ended) is None
        assert await load_history(store, ended) == []
        assert ended not in {timer.instance_id for timer in timers_left}
        assert await fetch_instance(store, running) is not None
        assert len(await load_history(store, running)) == 6
        assert running in {timer.instance_id for timer in timers_left}

    async def test_ended_instances_are_found_for_purging(self, store: asyncpg.Pool) -> None:
        prefix = unique("ended-")
        ended, _ = await running_instance(store, status=COMPLETED, instance_id=f"{prefix}a")
        await running_instance(store, instance_id=f"{prefix}b")
        async with store.acquire() as connection, connection.transaction():
            found = await ended_instance_ids_txn(
                connection, InstanceQuery(instance_id_prefix=prefix), limit=10
            )

        assert found == [ended]

    async def test_an_ended_instance_can_be_replaced_a_running_one_cannot(
        self, store: asyncpg.Pool
    ) -> None:
        ended, _ = await running_instance(store, status=COMPLETED)
        running, _ = await running_instance(store)
        async with store.acquire() as connection:
            await delete_ended_instance_txn(connection, ended)
            await delete_ended_instance_txn(connection, running)

        assert await fetch_instance(store, ended) is None
        assert await load_history(store, ended) == []
        assert await fetch_instance(store, running) is not None

    async def test_running_children_are_found_by_parent(self, store: asyncpg.Pool) -> None:
        parent, _ = await running_instance(store)
        child, _ = await running_instance(store, parent=parent)
        await running_instance(store, parent=parent, status=COMPLETED)
        async with store.acquire() as connection:
            children = await running_children_txn(connection, [parent])

        assert [(c.instance_id, c.correlation_id) for c in children] == [(child, f"corr-{child}")]

    async def test_moving_to_a_new_execution_can_drop_the_earlier_events(
        self, store: asyncpg.Pool
    ) -> None:
        instance_id, last_seq = await running_instance(store)
        async with store.acquire() as connection:
            await move_execution_txn(
                connection,
                instance_id,
                execution_id="e2",
                first_seq=last_seq,
                input={"round": 2},
                keep_input=False,
                drop_earlier_events=True,
            )
            rows = await lock_instances_txn(connection, [instance_id])

        status = await fetch_instance(store, instance_id)
        assert status is not None
        assert (status.execution_id, status.input) == ("e2", {"round": 2})
        assert rows[instance_id].execution_start_seq == last_seq
        assert [stored.seq for stored in await load_history(store, instance_id)] == [last_seq]
