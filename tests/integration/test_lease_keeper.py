"""Lease keepers on the real Postgres: members share the partitions out fairly, a join moves
only what the newcomer takes, a member that leaves hands its partitions over at once, a
member whose lease was taken over loses it at its next round (and a stop that hangs does not
stop its heartbeat), and the sessions of a member that lapsed are ended, so its
transactions' locks hold up no one (ADR 27)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import asyncpg

from durable.store.leases import Lease, session_name
from services.orchestrator.leases import LeaseKeeper
from tests.conftest import database_url_for, unique
from tests.helpers.waiting import assert_eventually

PARTITIONS = 16


class Member:
    """A keeper whose callbacks record what the service would do."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        namespace: str,
        name: str,
        lease_seconds: float = 30,
        on_lost: Callable[[Lease], Awaitable[None]] | None = None,
    ):
        self.consuming: dict[int, Lease] = {}
        self.events: list[tuple[str, int]] = []
        self.keeper = LeaseKeeper(
            pool,
            namespace,
            PARTITIONS,
            member=name,
            lease_seconds=lease_seconds,
            on_acquired=self._acquired,
            on_released=self._released,
            on_lost=on_lost or self._lost,
        )

    async def _acquired(self, lease: Lease) -> None:
        self.consuming[lease.partition] = lease
        self.events.append(("acquired", lease.partition))

    async def _released(self, lease: Lease) -> None:
        del self.consuming[lease.partition]
        self.events.append(("released", lease.partition))

    async def _lost(self, lease: Lease) -> None:
        del self.consuming[lease.partition]
        self.events.append(("lost", lease.partition))


async def settle(*members: Member) -> None:
    """Rounds until no member's share changes (what the keepers' loops do every interval)."""
    for _ in range(4):
        for member in members:
            await member.keeper.tick()


async def takes_everything(member: Member) -> None:
    """Rounds of ``member`` until it holds every partition (the others' leases expired)."""

    async def took_over() -> bool:
        await member.keeper.tick()
        assert sorted(member.consuming) == list(range(PARTITIONS))
        return True

    await assert_eventually(took_over, timeout=10)


async def test_members_share_the_partitions_out_evenly_and_a_join_moves_only_what_it_takes(
    private_pool: asyncpg.Pool,
) -> None:
    namespace = unique("leases")
    a, b = Member(private_pool, namespace, "a"), Member(private_pool, namespace, "b")
    await a.keeper.join()
    assert sorted(a.consuming) == list(range(PARTITIONS))  # alone: all of them
    await b.keeper.join()
    await settle(a, b)
    before = {m: set(m.consuming) for m in (a, b)}

    c = Member(private_pool, namespace, "c")
    await c.keeper.join()
    await settle(a, b, c)

    shares = sorted(len(m.consuming) for m in (a, b, c))
    assert shares == [5, 5, 6]
    assert set(a.consuming) <= before[a]
    assert set(b.consuming) <= before[b]
    moved = (before[a] - set(a.consuming)) | (before[b] - set(b.consuming))
    assert moved == set(c.consuming)  # sticky: only what the newcomer took moved
    owners = Counter(p for m in (a, b, c) for p in m.consuming)
    assert set(owners) == set(range(PARTITIONS))
    assert set(owners.values()) == {1}


async def test_a_member_that_leaves_hands_its_partitions_over_at_the_next_round(
    private_pool: asyncpg.Pool,
) -> None:
    namespace = unique("leases")
    a, b = Member(private_pool, namespace, "a"), Member(private_pool, namespace, "b")
    await a.keeper.join()
    await b.keeper.join()
    await settle(a, b)
    leaving = set(a.consuming)

    await a.keeper.leave()
    await b.keeper.tick()

    assert a.consuming == {}
    assert sorted(b.consuming) == list(range(PARTITIONS))
    assert all(b.consuming[p].epoch >= 2 for p in leaving)


async def test_a_member_whose_expired_lease_was_taken_loses_it_at_its_next_round(
    private_pool: asyncpg.Pool,
) -> None:
    namespace = unique("leases")
    paused = Member(private_pool, namespace, "a", lease_seconds=0.5)
    await paused.keeper.join()
    taken = set(paused.consuming)
    other = Member(private_pool, namespace, "b", lease_seconds=0.5)
    await other.keeper.join()

    # "a" is paused: it neither heartbeats nor renews, and "b" ends up with everything.
    await takes_everything(other)
    await paused.keeper.tick()
    await paused.keeper.stopped()

    assert paused.consuming == {}
    assert sorted(p for kind, p in paused.events if kind == "lost") == sorted(taken)


async def test_a_lost_partition_whose_consumer_will_not_stop_holds_up_no_heartbeat(
    private_pool: asyncpg.Pool,
) -> None:
    namespace = unique("leases")
    hang = asyncio.Event()

    async def stop_that_hangs(lease: Lease) -> None:
        stuck.events.append(("stopping", lease.partition))
        await hang.wait()
        del stuck.consuming[lease.partition]

    stuck = Member(private_pool, namespace, "a", lease_seconds=0.5, on_lost=stop_that_hangs)
    await stuck.keeper.join()
    other = Member(private_pool, namespace, "b", lease_seconds=0.5)
    await other.keeper.join()

    await takes_everything(other)
    # "a" is back: it loses every lease, and its consumers do not stop.
    await asyncio.wait_for(stuck.keeper.tick(), 5)
    assert sorted(p for kind, p in stuck.events if kind == "stopping") == list(range(PARTITIONS))
    assert stuck.keeper.held == {}

    async def heartbeats_and_waits() -> bool:
        # Rounds go on (a heartbeat each), but it takes nothing while its stops hang.
        await asyncio.wait_for(stuck.keeper.tick(), 5)
        await other.keeper.tick()
        live = await private_pool.fetchval(
            "SELECT count(*) FROM orchestrator_members WHERE namespace = $1 "
            "AND heartbeat_at > now() - interval '0.5 seconds'",
            namespace,
        )
        assert live == 2
        assert len(other.consuming) == PARTITIONS // 2, "b has not handed half over yet"
        return True

    await assert_eventually(heartbeats_and_waits, timeout=10)
    assert stuck.keeper.held == {}
    assert len(other.consuming) == PARTITIONS // 2  # released, for "a", who takes none yet

    hang.set()
    await stuck.keeper.stopped()
    await settle(stuck, other)
    assert len(stuck.consuming) == len(other.consuming) == PARTITIONS // 2


async def test_the_sessions_of_a_lapsed_member_are_ended_and_its_locks_go_with_them(
    private_pool: asyncpg.Pool,
) -> None:
    namespace = unique("leases")
    url = database_url_for(await private_pool.fetchval("SELECT current_database()"))
    paused = Member(private_pool, namespace, "a", lease_seconds=0.5)
    other = Member(private_pool, namespace, "b", lease_seconds=0.5)
    await paused.keeper.join()
    await other.keeper.join()

    async def session(namespace: str, member: str) -> asyncpg.Connection:
        name = session_name(namespace, member)
        return await asyncpg.connect(url, server_settings={"application_name": name})

    # "a" stops inside a transaction that holds a lock; a member of the same name in another
    # deployment, and "b" itself, are left alone.
    stale = await session(namespace, "a")
    await stale.execute("BEGIN; SELECT pg_advisory_xact_lock(42)")
    elsewhere = await session(unique("leases"), "a")
    live = await session(namespace, "b")

    async def running(pid: int) -> bool:
        return bool(await private_pool.fetchval("SELECT 1 FROM pg_stat_activity WHERE pid=$1", pid))

    async def ended() -> bool:
        await other.keeper.tick()
        assert not await running(stale.get_server_pid()), "the lapsed member's session runs"
        return True

    await assert_eventually(ended, timeout=10)
    assert await running(elsewhere.get_server_pid())
    assert await running(live.get_server_pid())
    async with private_pool.acquire() as waiter, waiter.transaction():
        # The lock went with the session: taking it does not wait.
        assert await waiter.fetchval("SELECT pg_try_advisory_xact_lock(42)")
    for connection in (stale, elsewhere, live):
        connection.terminate()


async def test_a_member_back_after_an_outage_waits_a_round_before_judging_the_others(
    private_pool: asyncpg.Pool,
) -> None:
    # Both members out of touch for longer than a lease (the database away): the first back
    # must not take the other's partitions, which the other is about to renew.
    namespace = unique("leases")
    a = Member(private_pool, namespace, "a", lease_seconds=0.5)
    b = Member(private_pool, namespace, "b", lease_seconds=0.5)
    await a.keeper.join()
    await b.keeper.join()
    await settle(a, b)
    shares = {m: set(m.consuming) for m in (a, b)}

    async def both_lapsed() -> bool:
        lapsed = await private_pool.fetchval(
            "SELECT count(*) FROM orchestrator_members WHERE namespace = $1 "
            "AND heartbeat_at < now() - interval '0.5 seconds'",
            namespace,
        )
        assert lapsed == 2
        return True

    await assert_eventually(both_lapsed, timeout=10)
    await a.keeper.tick()
    await b.keeper.tick()
    await settle(a, b)

    assert {m: set(m.consuming) for m in (a, b)} == shares
    assert [kind for kind, _ in b.events if kind == "lost"] == []
