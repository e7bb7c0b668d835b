"""The outbox relay: publishes committed outbox rows and sweeps up rows left behind.

The handler's caller publishes each batch's rows right after the commit (``publish_committed``).
Rows outlive that only when a process died between commit and publish, or the broker was
unreachable; the sweeper publishes those once they are older than a grace period, so it
does not race the normal path for fresh rows. Nor for old ones still being published (a
fan-out of thousands can take longer than the grace period): the sweeper skips the rows its
own process is publishing, and in a service of several processes each sweeps only the rows
its own partitions wrote (ADR 15).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import asyncpg
import structlog

from durable.broker import Publisher
from durable.store.leases import Lease, fence_all_txn
from durable.store.outbox import (
    OutboxCleaner,
    OutboxRecord,
    claim_stale_outbox_txn,
    delete_outbox_txn,
    outbox_backlog,
    publish_committed,
)
from services.common import metrics

log = structlog.get_logger(__name__)

_BACKLOG_EVERY_SWEEPS = 5
"""A count of the outbox reads every row: at a sweep a second, every fifth is plenty for a
gauge scraped every 15 s, and costs little even when a fan-out leaves thousands of rows."""


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        *,
        grace_seconds: float = 5.0,
        sweep_interval_seconds: float = 1.0,
        sweep_batch: int = 500,
        partitions: Sequence[int] | None = None,
        leases: Callable[[], Sequence[Lease]] | None = None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._grace_seconds = grace_seconds
        self._sweep_interval_seconds = sweep_interval_seconds
        self._sweep_batch = sweep_batch
        self._cleaner = OutboxCleaner(pool)
        # The partitions whose rows the sweeper takes (None: every row), or the leases this
        # process holds at the moment of each sweep, which its writes then check.
        self._partitions = partitions
        self._leases = leases
        # Rows of this process being published right now: never the sweeper's.
        self._in_flight: set[int] = set()

    async def publish_committed(self, records: Sequence[OutboxRecord]) -> bool:
        """Publish rows just committed; they are deleted in the background. False if they
        stay for the sweeper."""
        ids = [record.id for record in records]
        self._in_flight.update(ids)
        try:
            return await publish_committed(self._cleaner, self._publisher, records)
        finally:
            self._in_flight.difference_update(ids)

    def discard(self, ids: Sequence[int]) -> None:
        """Delete rows whose messages were delivered some other way (local activities)."""
        self._cleaner.discard(ids)

    async def close(self) -> None:
        """Delete the rows published and not yet deleted."""
        await self._cleaner.close()

    async def sweep_once(self) -> int:
        """Publish and delete up to one batch of stale rows; return how many were published."""
        held = None if self._leases is None else self._leases()
        partitions = self._partitions if held is None else [lease.partition for lease in held]
        if partitions is not None and not partitions:
            return 0
        async with self._pool.acquire() as connection, connection.transaction():
            if held:
                await fence_all_txn(connection, held)
            records = await claim_stale_outbox_txn(
                connection,
                self._grace_seconds,
                self._sweep_batch,
                partitions,
                self._in_flight,
            )
            if not records:
                return 0
            # Each row on its own: one row that cannot be published must not hold back the
            # rows behind it (it stays, and is retried at every sweep).
            results = await asyncio.gather(
                *(self._publisher.publish(record.message) for record in records),
                return_exceptions=True,
            )
            published = [r.id for r, result in zip(records, results, strict=True) if result is None]
            failures = [result for result in results if isinstance(result, BaseException)]
            await delete_outbox_txn(connection, published)
        if published:
            log.info("outbox.swept", count=len(published))
            metrics.OUTBOX_SWEPT.inc(len(published))
        if failures:
            log.warning("outbox.sweep_incomplete", failed=len(failures), error=repr(failures[0]))
        return len(published)

    async def measure_backlog(self) -> None:
        """Set the outbox gauges to the backlog of this process's partitions."""
        held = None if self._leases is None else self._leases()
        partitions = self._partitions if held is None else [lease.partition for lease in held]
        if partitions is not None and not partitions:
            metrics.outbox_backlog(0, 0.0)
            return
        async with self._pool.acquire() as connection:
            backlog = await outbox_backlog(connection, partitions)
        metrics.outbox_backlog(backlog.rows, backlog.oldest_age_seconds)

    async def run_sweeper(self, stopping: asyncio.Event) -> None:
        """Sweep until ``stopping`` is set; errors are logged and the sweep retried. The
        backlog is measured every ``_BACKLOG_EVERY_SWEEPS`` sweeps."""
        sweeps = 0
        while not stopping.is_set():
            try:
                while await self.sweep_once() == self._sweep_batch:
                    pass
                if sweeps % _BACKLOG_EVERY_SWEEPS == 0:
                    await self.measure_backlog()
                sweeps += 1
            except Exception as error:
                log.warning("outbox.sweep_failed", error=repr(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._sweep_interval_seconds)
