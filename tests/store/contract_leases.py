"""The event store's contract, part five: members and partition leases (ADR 27).

A lease is taken only when free or expired, its epoch grows with each owner, a renewal or a
release counts only for the owner at its epoch, and a write checked against a lease that has
moved on is refused with nothing of it written, while a change of owner waits for a write in
flight.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from durable.store import leases
from durable.store.batch import BatchWrite, write_batch
from durable.store.errors import LeaseLostError
from durable.store.leases import Lease
from tests.conftest import unique
from tests.helpers.waiting import assert_eventually
from tests.store.factories import appended, chain_events, running_instance, update

PARTITIONS = 4


async def joined(store: asyncpg.Pool, namespace: str, *members: str) -> None:
    async with store.acquire() as connection:
        for member in members:
            await leases.join_txn(connection, namespace, member, "host", 1, PARTITIONS)


async def acquire(
    store: asyncpg.Pool, namespace: str, member: str, count: int, seconds: float = 30.0
) -> list[Lease]:
    async with store.acquire() as connection:
        taken = await leases.acquire(connection, namespace, member, PARTITIONS, count, seconds)
    return [acquired.lease for acquired in taken]


class LeasesContract:
    async def test_a_partition_is_leased_to_one_member_at_a_time(self, store: asyncpg.Pool) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a", "b")

        first = await acquire(store, namespace, "a", 3)
        second = await acquire(store, namespace, "b", 3)

        assert [lease.partition for lease in first] == [0, 1, 2]
        assert [lease.partition for lease in second] == [3]
        assert all(lease.epoch == 1 for lease in first + second)

    async def test_an_expired_lease_is_taken_over_at_a_higher_epoch(
        self, store: asyncpg.Pool
    ) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a", "b")
        [old] = await acquire(store, namespace, "a", 1, seconds=0.5)

        async def taken() -> list[leases.Acquired]:
            async with store.acquire() as connection:
                return await leases.acquire(connection, namespace, "b", PARTITIONS, 1, 30.0)

        # The free ones first; 0 is still alive.
        assert [lease.partition for lease in await acquire(store, namespace, "b", 4)] == [1, 2, 3]

        async def expired() -> leases.Acquired:
            # Expiry is the database clock's: poll until it has passed.
            found = await taken()
            assert found, "not expired yet"
            return found[0]

        stolen = await assert_eventually(expired, timeout=10)

        assert stolen.lease.partition == old.partition
        assert stolen.lease.epoch == old.epoch + 1
        assert stolen.previous == "a"
        async with store.acquire() as connection:
            assert await leases.renew(connection, [old], 30.0) == set()

    async def test_renewal_and_release_count_only_for_the_owner_at_its_epoch(
        self, store: asyncpg.Pool
    ) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a")
        held = await acquire(store, namespace, "a", 2)
        impostor = Lease(namespace, held[0].partition, "a", held[0].epoch + 5)

        async with store.acquire() as connection:
            assert await leases.renew(connection, held, 30.0) == {0, 1}
            await leases.release(connection, [impostor])
            assert await leases.renew(connection, held, 30.0) == {0, 1}
            await leases.release(connection, held[:1])
            assert await leases.renew(connection, held, 30.0) == {1}
        assert [lease.partition for lease in await acquire(store, namespace, "a", 1)] == [0]

    async def test_a_member_that_leaves_frees_its_leases_and_is_no_longer_counted(
        self, store: asyncpg.Pool
    ) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a", "b")
        await acquire(store, namespace, "a", 4)

        async with store.acquire() as connection:
            assert await leases.live_members(connection, namespace, 30.0) == ["a", "b"]
            await leases.leave(connection, namespace, "a")
            assert await leases.live_members(connection, namespace, 30.0) == ["b"]
        assert len(await acquire(store, namespace, "b", 4)) == 4
        found, rows = await leases.members_and_leases(store, namespace)
        assert [m.member_id for m in found] == ["b"]
        assert {row.owner for row in rows} == {"b"}

    async def test_a_write_fenced_by_a_lease_that_moved_on_writes_nothing(
        self, store: asyncpg.Pool
    ) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a")
        [lease] = await acquire(store, namespace, "a", 1)
        instance_id, last_seq = await running_instance(store)
        more = appended(instance_id, chain_events()[:1], first_seq=last_seq + 1)
        write = BatchWrite(
            events=more,
            updates=[update(instance_id, last_seq + 1)],
            expected_seqs={instance_id: last_seq},
            partition=lease.partition,
            lease=Lease(namespace, lease.partition, "a", lease.epoch - 1),
        )

        async with store.acquire() as connection:
            with pytest.raises(LeaseLostError):
                await write_batch(connection, write)
            written = await connection.fetchval(
                "SELECT max(seq) FROM events WHERE instance_id = $1", instance_id
            )
            await write_batch(connection, BatchWrite(**{**write.__dict__, "lease": lease}))
        assert written == last_seq

    async def test_a_change_of_owner_waits_for_the_write_in_flight(
        self, store: asyncpg.Pool
    ) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a", "b")
        [lease] = await acquire(store, namespace, "a", 1, seconds=0.2)
        async with store.acquire() as writer, writer.transaction():
            await leases.fence_txn(writer, lease)

            async def expired() -> bool:
                async with store.acquire() as connection:
                    return bool(
                        await connection.fetchval(
                            "SELECT expires_at < now() FROM partition_leases "
                            "WHERE namespace = $1 AND partition = $2",
                            namespace,
                            lease.partition,
                        )
                    )

            await assert_eventually(expired, timeout=10)
            # Expired, but locked by the write in flight: "b" skips it for now.
            assert [taken.partition for taken in await acquire(store, namespace, "b", 1)] == [1]
        [taken] = await acquire(store, namespace, "b", 1)
        assert (taken.partition, taken.epoch) == (lease.partition, lease.epoch + 1)
        async with store.acquire() as connection, connection.transaction():
            with pytest.raises(LeaseLostError):
                await leases.fence_txn(connection, lease)

    async def test_a_renewal_does_not_wait_for_a_write_in_flight(self, store: asyncpg.Pool) -> None:
        namespace = unique("ns")
        await joined(store, namespace, "a")
        [lease] = await acquire(store, namespace, "a", 1)
        async with store.acquire() as writer, writer.transaction():
            await leases.fence_txn(writer, lease)
            async with store.acquire() as keeper:
                # With the write's lock held: a renewal that waited would time out here.
                renewed = await asyncio.wait_for(leases.renew(keeper, [lease], 30.0), 5)
        assert renewed == {lease.partition}
