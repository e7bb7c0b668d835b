"""The partitions this process consumes now: one consumer per lease it holds (ADR 27).

The lease keeper (``leases``) decides; this starts a partition's consumer when a lease is
taken, on the broker connection of the moment (and on every later one), and stops it when the
lease is given up (gracefully: the batch in flight finishes) or lost (at once). Either way the
instances of that partition leave the cache: the next owner rebuilds them from the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog
from aio_pika.abc import AbstractConnection

from durable.store.leases import Lease
from services.common.consuming import ChannelWatch
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer

log = structlog.get_logger(__name__)

ConsumerFactory = Callable[[Lease], PartitionConsumer]


class Assignments:
    """The consumers of the partitions held, attached to the current connection."""

    def __init__(
        self,
        make_consumer: ConsumerFactory,
        cache: InstanceCache,
        partition_of: Callable[[str], int],
    ) -> None:
        self._make_consumer = make_consumer
        self._cache = cache
        self._partition_of = partition_of
        self.consumers: dict[int, PartitionConsumer] = {}
        self._connection: AbstractConnection | None = None
        self._watch: ChannelWatch | None = None

    async def attach(self, connection: AbstractConnection, watch: ChannelWatch) -> None:
        self._connection, self._watch = connection, watch
        for consumer in list(self.consumers.values()):
            await consumer.attach(connection, watch)

    def detach(self) -> None:
        self._connection = self._watch = None
        for consumer in self.consumers.values():
            consumer.detach()

    def unconsumed(self, partitions: Iterable[int]) -> list[int]:
        """Those of ``partitions`` no consumer takes deliveries from now."""
        return sorted(
            p for p in partitions if (c := self.consumers.get(p)) is None or not c.consuming
        )

    async def start(self, lease: Lease) -> None:
        consumer = self._make_consumer(lease)
        self.consumers[lease.partition] = consumer
        consumer.start_worker()
        if self._connection is not None:
            try:
                await consumer.attach(self._connection, self._watch)
            except Exception as error:
                # The connection is going; the supervisor attaches every consumer to the
                # next one.
                log.warning("partition.attach_failed", partition=lease.partition, error=repr(error))

    async def stop(self, lease: Lease, timeout: float, *, lost: bool = False) -> None:
        """Stop consuming ``lease``'s partition: given up (the timer fires held go to the next
        owner through the queue) or ``lost`` (they are dropped: this process may be stale)."""
        consumer = self.consumers.pop(lease.partition, None)
        if consumer is not None:
            await consumer.stop(timeout, hand_over=not lost)
        evicted = self._cache.evict_where(lambda i: self._partition_of(i) == lease.partition)
        log.debug("partition.stopped", partition=lease.partition, evicted=evicted)

    async def stop_all(self, timeout: float) -> None:
        await asyncio.gather(
            *(
                self.stop(consumer.lease, timeout)
                for consumer in list(self.consumers.values())
                if consumer.lease
            )
        )
