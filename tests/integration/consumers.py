"""Partition consumers run in-process by the integration tests, one per partition."""

from __future__ import annotations

from aio_pika.abc import AbstractConnection

from contracts import Topology
from durable.broker import Publisher
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.local import LocalActivities
from services.orchestrator.relay import OutboxRelay


async def start_partition_consumers(
    handler: OrchestrationHandler,
    relay: OutboxRelay,
    publisher: Publisher,
    topology: Topology,
    connection: AbstractConnection,
    local: LocalActivities | None = None,
) -> list[PartitionConsumer]:
    """A consumer for every partition of ``topology``, working and consuming ``connection``."""
    consumers = [
        PartitionConsumer(
            partition,
            handler,
            relay,
            publisher,
            topology,
            batch_size=16,
            prefetch=32,
            local=local,
        )
        for partition in range(topology.partitions)
    ]
    for consumer in consumers:
        consumer.start_worker()
        await consumer.attach(connection)
    return consumers


async def stop_partition_consumers(consumers: list[PartitionConsumer]) -> None:
    for consumer in consumers:
        await consumer.stop(timeout=5)
