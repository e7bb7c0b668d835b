"""A partition's publishing does not hold up its timer fires, and does hold up its deliveries.

A partition consumer runs in-process against the real broker and database; its relay
publishes only once the test opens a gate, standing in for a batch whose thousands of
messages take the broker a while to confirm.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts import OrchestrationStatus, Topology
from durable import FunctionApp
from durable.broker import Publisher
from durable.client import DurableClient
from durable.store.outbox import OutboxRecord
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.relay import OutboxRelay
from tests.helpers.waiting import assert_eventually, wait_for_status
from tests.integration.consumers import start_partition_consumers, stop_partition_consumers
from tests.integration.messages import ids_on_one_partition


class GatedRelay(OutboxRelay):
    """The real relay, publishing only once ``gate`` is set."""

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher) -> None:
        super().__init__(pool, publisher)
        self.gate = asyncio.Event()

    async def publish_committed(self, records: Sequence[OutboxRecord]) -> bool:
        await self.gate.wait()
        return await super().publish_committed(records)


@pytest.fixture
async def gated_relay(pool: asyncpg.Pool, publisher: Publisher) -> AsyncIterator[GatedRelay]:
    relay = GatedRelay(pool, publisher)
    yield relay
    relay.gate.set()
    await relay.close()


@pytest.fixture
async def partition_consumers(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    gated_relay: GatedRelay,
    amqp_connection: AbstractConnection,
) -> AsyncIterator[list[PartitionConsumer]]:
    handler = OrchestrationHandler(pool, functions, InstanceCache(), private_topology)
    consumers = await start_partition_consumers(
        handler, gated_relay, publisher, private_topology, amqp_connection
    )
    yield consumers
    gated_relay.gate.set()
    await stop_partition_consumers(consumers)


async def first_recorded(pool: asyncpg.Pool, instance_id: str, event_type: str) -> datetime:
    recorded: datetime | None = await pool.fetchval(
        "SELECT min(recorded_at) FROM events WHERE instance_id = $1 AND event_type = $2",
        instance_id,
        event_type,
    )
    assert recorded is not None, f"{instance_id} has no {event_type}"
    return recorded


async def test_a_fire_coming_due_is_recorded_while_the_batch_before_it_is_publishing(
    partition_consumers: list[PartitionConsumer],
    gated_relay: GatedRelay,
    private_client: DurableClient,
    private_topology: Topology,
    channel: AbstractChannel,
    pool: asyncpg.Pool,
) -> None:
    sleeper, later = ids_on_one_partition(private_topology, 2)
    queue_name = private_topology.partition_queue(private_topology.partition_for(sleeper))
    queue = await channel.get_queue(queue_name, ensure=False)

    # The start is committed, its acknowledgement waits behind the gate; the timer's fire,
    # due in 0.3 s, is held in memory, comes due and completes the instance meanwhile.
    await private_client.start_new("sleeper", sleeper, 0.3)
    await wait_for_status(private_client, sleeper, OrchestrationStatus.COMPLETED)

    # A delivery behind the gated batch waits for it: it reaches the consumer...
    await private_client.start_new("sleeper", later, 0.1)

    async def delivered() -> bool:
        declared = await queue.declare()
        return declared.message_count == 0

    await assert_eventually(delivered, message="the second start was not delivered")
    opened = datetime.now(UTC)
    gated_relay.gate.set()
    # ...and is committed only once the batch before it has published.
    await wait_for_status(private_client, later, OrchestrationStatus.COMPLETED)

    assert await first_recorded(pool, sleeper, "TimerFired") < opened
    assert await first_recorded(pool, later, "ExecutionStarted") >= opened
