"""This process's membership and partition leases: which partitions it consumes (ADR 27).

Every orchestrator process, on whatever host, is a member of its deployment. Every
``lease_seconds / 3`` it heartbeats, renews its leases, and evens out its share: with N live
members and P partitions each holds ⌊P/N⌋ or ⌈P/N⌉ (the first ``P mod N`` members in id
order hold one more). A member over its share releases the extra partitions (after its
consumers of them have stopped); a member under it takes free or expired ones. So a join
moves only the partitions the newcomer takes, a graceful stop hands its partitions over at
once, and a crash frees them when their leases expire.

A lease that fails to renew (another member took it, or the database was out of reach for
longer than the lease) is lost at once: the partition's consumer stops without finishing
anything, and whatever it had not committed comes back from the broker to the next owner.
That stop runs apart from the rounds, so that a stop that hangs (a broker call on a
connection that died unnoticed) cannot stop the member's heartbeat: the others would take it
for lapsed, end its sessions and take its partitions round after round. A member takes no
partition while a stop is under way, and says so when one lasts longer than a lease
(``partition.stop_slow``).
Every write checks its lease in its own transaction (``durable.store.leases``), so a process
that has not noticed yet commits nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from durable.store import leases as store
from durable.store.database import Connection
from durable.store.leases import Lease
from services.common import metrics

log = structlog.get_logger(__name__)

PartitionCallback = Callable[[Lease], Awaitable[None]]


def default_member_id() -> str:
    """``host-pid-xxxxxx``: unique per process, readable in ``durable-ops members``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def fair_share(members: list[str], member: str, partitions: int) -> int:
    """How many partitions ``member`` should hold among ``members`` (sorted ids)."""
    if member not in members:
        return 0
    base, extra = divmod(partitions, len(members))
    return base + (1 if members.index(member) < extra else 0)


class LeaseKeeper:
    """Keeps this member's leases and tells the service which partitions to consume.

    ``on_acquired`` starts consuming a partition; ``on_released`` stops consuming it
    gracefully (the batch in flight finishes) before the lease is given up; ``on_lost`` stops
    at once, since another member may already own the partition.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        namespace: str,
        partitions: int,
        *,
        member: str,
        lease_seconds: float,
        on_acquired: PartitionCallback,
        on_released: PartitionCallback,
        on_lost: PartitionCallback,
    ) -> None:
        self._pool = pool
        self.namespace = namespace
        self.partitions = partitions
        self.member = member
        self.lease_seconds = lease_seconds
        self._on_acquired = on_acquired
        self._on_released = on_released
        self._on_lost = on_lost
        self.held: dict[int, Lease] = {}
        self._stopping: dict[int, asyncio.Task[None]] = {}
        self._renewed_at = time.monotonic()
        self._cannot_end_sessions = False
        self._host = socket.gethostname()
        self._log = log.bind(member=member)

    @property
    def interval(self) -> float:
        return self.lease_seconds / 3

    @property
    def in_touch(self) -> bool:
        """Whether a round reached the database within a lease: the others still count this
        process as a member."""
        return time.monotonic() - self._renewed_at < self.lease_seconds

    def lease(self, partition: int) -> Lease | None:
        return self.held.get(partition)

    async def join(self) -> None:
        """Register and take a first share (all partitions, for the first member)."""
        async with self._pool.acquire() as connection:
            await store.join_txn(
                connection, self.namespace, self.member, self._host, os.getpid(), self.partitions
            )
        await self.tick()
        metrics.PARTITIONS_HELD.set(len(self.held))

    async def run(self, stopping: asyncio.Event) -> None:
        """Keep the leases until ``stopping`` is set; a failed round is logged and retried."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)
            if stopping.is_set():
                return
            started = time.monotonic()
            try:
                await self.tick()
            except Exception as error:
                self._log.warning("lease.round_failed", error=repr(error))
                metrics.LEASE_ROUNDS_FAILED.inc()
                self._expire_if_stale()
            took = time.monotonic() - started
            if took > self.interval:
                # The others judge this member by its heartbeats, one per round.
                self._log.warning("lease.round_slow", seconds=round(took, 2))
                metrics.LEASE_ROUNDS_SLOW.inc()
            metrics.PARTITIONS_HELD.set(len(self.held))

    async def tick(self) -> None:
        """One round: heartbeat, renew, and even out the share.

        A member back after a lease or more out of touch (paused, or the database out of
        reach) only heartbeats and renews in its first round: if the database was away, every
        member was out of touch with it, and judging the others lapsed before they have had a
        round to heartbeat would end their sessions and take all their partitions, only to
        hand them back a round later.
        """
        started = time.monotonic()
        back = started - self._renewed_at > self.lease_seconds
        async with self._pool.acquire() as connection:
            await store.heartbeat(connection, self.namespace, self.member, self._host, os.getpid())
            renewed = await store.renew(connection, list(self.held.values()), self.lease_seconds)
            members = await store.live_members(connection, self.namespace, self.lease_seconds)
            if not back:
                await self._end_lapsed_sessions(connection)
        self._renewed_at = started
        for partition in sorted(self.held.keys() - renewed):
            self._lose(partition, "taken over")
        if back:
            self._log.info("member.back", held=sorted(self.held))
            return
        target = fair_share(members, self.member, self.partitions)
        if len(self.held) > target:
            await self._release(sorted(self.held)[target:], members=len(members))
        elif len(self.held) < target and not self._stopping:
            await self._acquire(target - len(self.held), members=len(members))

    async def _end_lapsed_sessions(self, connection: Connection) -> None:
        """End the sessions of members that have lapsed, before their partitions are taken:
        a lapsed process (paused, cut off) may have a transaction open, whose row locks
        would hold up the writes of the partitions' next owners for as long as it lasts."""
        try:
            ended = await store.end_lapsed_sessions(
                connection, self.namespace, self.lease_seconds, wait_seconds=self.interval / 2
            )
        except asyncpg.InsufficientPrivilegeError as error:
            if not self._cannot_end_sessions:
                self._cannot_end_sessions = True
                self._log.warning("member.cannot_end_sessions", error=str(error))
            return
        for member, sessions in sorted(ended.items()):
            self._log.warning("member.sessions_ended", lapsed=member, sessions=sessions)

    async def stopped(self) -> None:
        """Wait until the lost partitions' consumers have stopped."""
        while self._stopping:
            await asyncio.wait(list(self._stopping.values()))

    async def leave(self) -> None:
        """Stop consuming every partition, then give them up and leave (a graceful stop)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopped(), self.lease_seconds)
        await self._release(sorted(self.held), members=None)
        metrics.PARTITIONS_HELD.set(len(self.held))
        async with self._pool.acquire() as connection:
            await store.leave(connection, self.namespace, self.member)
        self._log.info("member.left")

    async def _acquire(self, count: int, *, members: int) -> None:
        async with self._pool.acquire() as connection:
            taken = await store.acquire(
                connection, self.namespace, self.member, self.partitions, count, self.lease_seconds
            )
        for acquired in taken:
            lease = acquired.lease
            self.held[lease.partition] = lease
            if acquired.previous is None or acquired.previous == self.member:
                self._log.info(
                    "lease.acquired", partition=lease.partition, epoch=lease.epoch, members=members
                )
            else:
                self._log.warning(
                    "lease.stolen",
                    partition=lease.partition,
                    epoch=lease.epoch,
                    previous=acquired.previous,
                    members=members,
                )
            await self._on_acquired(lease)

    async def _release(self, partitions: list[int], *, members: int | None) -> None:
        if not partitions:
            return
        leases = [self.held[p] for p in partitions]
        # Together: each stop may wait for its batch in flight, and the leases kept meanwhile
        # must still be renewed in time.
        await asyncio.gather(*(self._on_released(lease) for lease in leases))
        async with self._pool.acquire() as connection:
            await store.release(connection, leases)
        for lease in leases:
            # A write may have found one lost meanwhile (``lost``).
            self.held.pop(lease.partition, None)
            self._log.info(
                "lease.released", partition=lease.partition, epoch=lease.epoch, members=members
            )

    def lost(self, partition: int) -> None:
        """A write found the lease gone (``LeaseLostError``)."""
        if partition in self.held:
            self._lose(partition, "refused a write")

    def _lose(self, partition: int, why: str) -> None:
        """Forget the lease and stop the partition's consumer apart from the rounds (see the
        module's docstring)."""
        lease = self.held.pop(partition, None)
        if lease is None:  # lost already
            return
        self._log.warning("lease.lost", partition=partition, epoch=lease.epoch, why=why)
        metrics.LEASES_LOST.labels(str(partition)).inc()
        metrics.PARTITIONS_HELD.set(len(self.held))
        task = asyncio.create_task(self._stop_lost(lease), name=f"lease-lost-{partition}")
        self._stopping[partition] = task
        # No partition is taken while a stop is under way, so none is lost twice meanwhile.
        task.add_done_callback(lambda _: self._stopping.pop(partition))

    async def _stop_lost(self, lease: Lease) -> None:
        stop = asyncio.ensure_future(self._on_lost(lease))
        done, _ = await asyncio.wait({stop}, timeout=self.lease_seconds)
        if not done:
            self._log.warning("partition.stop_slow", partition=lease.partition)
            metrics.PARTITION_STOPS_SLOW.labels(str(lease.partition)).inc()
        try:
            await stop
        except Exception:
            self._log.exception("partition.stop_failed", partition=lease.partition)

    def _expire_if_stale(self) -> None:
        """Out of touch with the database for a whole lease: others may own our partitions
        by now, so stop consuming them (the writes would be refused anyway)."""
        if time.monotonic() - self._renewed_at < self.lease_seconds:
            return
        for partition in sorted(self.held):
            self._lose(partition, "not renewed in time")
