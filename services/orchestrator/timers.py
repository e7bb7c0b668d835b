"""The sweeper that fires timers the broker lost.

A timer's row (``durable.store.timers``) is written with its ``TimerCreated`` event, in the
same transaction, and deleted when it fires, is cancelled, or its instance ends. The delay
cascade normally delivers the fire on time; the row is what makes it durable: the sweeper
fires any timer that is overdue by more than a grace period (queues purged, broker state
lost), and keeps firing it every grace period until the fire is recorded. Every copy of a
fire has the same message id, and the orchestrator records a timer's fire once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from contracts import Topology
from durable.broker import Publisher
from durable.store.leases import Lease, fence_txn
from durable.store.timers import claim_overdue_timers_txn, mark_timers_swept_txn
from services.common import metrics
from services.orchestrator.dispatch import direct, timer_fired_message

log = structlog.get_logger(__name__)


class TimerSweeper:
    """Fires overdue timers directly to their partitions, as a safety net for the cascade.

    Attributes:
        grace_seconds: how overdue a timer must be before the sweeper fires it, and how long
            it waits before firing it again; the most a lost fire can be late.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        topology: Topology,
        *,
        grace_seconds: float = 5.0,
        interval_seconds: float = 1.0,
        batch: int = 500,
        lease: Callable[[], Lease | None] | None = None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._topology = topology
        self.grace_seconds = grace_seconds
        self._interval_seconds = interval_seconds
        self._batch = batch
        # The lease this sweeper's writes check (None: none); when it returns None, this
        # process does not hold the partition the sweeper runs with, and does not sweep.
        self._lease = lease

    async def sweep_once(self) -> int:
        """Fire up to one batch of overdue timers; return how many were fired."""
        now = datetime.now(UTC)
        lease = None if self._lease is None else self._lease()
        if self._lease is not None and lease is None:
            return 0
        async with self._pool.acquire() as connection, connection.transaction():
            if lease is not None:
                await fence_txn(connection, lease)
            rows = await claim_overdue_timers_txn(connection, self.grace_seconds, self._batch)
            if not rows:
                return 0
            fires = [
                direct(
                    self._topology,
                    timer_fired_message(
                        row.instance_id,
                        row.execution_id,
                        row.correlation_id,
                        row.timer_id,
                        row.fire_at,
                        now,
                    ),
                )
                for row in rows
            ]
            await self._publisher.publish_many(fires)
            await mark_timers_swept_txn(connection, [row.key for row in rows])
        log.warning("timers.swept", count=len(rows), oldest=rows[0].fire_at.isoformat())
        metrics.TIMERS_SWEPT.inc(len(rows))
        return len(rows)

    async def run(self, stopping: asyncio.Event) -> None:
        """Sweep until ``stopping`` is set; errors are logged and the sweep retried."""
        while not stopping.is_set():
            try:
                while await self.sweep_once() == self._batch:
                    pass
            except Exception as error:  # keep sweeping through outages
                log.warning("timers.sweep_failed", error=repr(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval_seconds)
