"""A consuming channel the broker closes on its own (a channel error, its connection still
up) takes its consumers with it: the ConnectionSupervisor starts over on a new connection, so
the service goes on consuming instead of silently stopping."""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts import TaskCompleted, Topology
from durable.broker import OutgoingMessage, Publisher
from services.activities.worker import ActivityWorker
from services.common.consuming import ConnectionSupervisor
from tests.conftest import AMQP_URL, unique
from tests.helpers.waiting import assert_eventually
from tests.integration import messages
from tests.integration.queues import carried, receive

pytestmark = pytest.mark.asyncio


async def test_a_worker_consumes_again_after_the_broker_closes_its_channels(
    worker: ActivityWorker,
    publisher: Publisher,
    private_topology: Topology,
    channel: AbstractChannel,
) -> None:
    watched: list[AbstractChannel] = []
    attached = 0

    async def attach(connection: AbstractConnection) -> None:
        nonlocal attached
        watched.clear()

        def watch(consuming: AbstractChannel) -> None:
            watched.append(consuming)
            supervisor.watch(consuming)

        await worker.attach(connection, watch)
        attached += 1

    async def detach() -> None:
        worker.detach()

    supervisor = ConnectionSupervisor(AMQP_URL, unique("test.consume."), attach, detach)
    stopping = asyncio.Event()
    keeper = await supervisor.start(stopping)
    try:
        broken = watched[0]
        # An acknowledgement of a tag the broker never gave: it closes that channel alone.
        await (await broken.get_underlay_channel()).basic_ack(999_999)
        await assert_eventually(lambda: attached == 2, timeout=15, message="not attached again")
        assert broken.is_closed

        instance_id = unique("broken-")
        task = messages.activity_task(instance_id, "square", 7)
        exchange, routing_key = private_topology.activity_route("square")
        await publisher.publish(OutgoingMessage.of(task, exchange, routing_key))
        queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))
        [delivery] = await receive(channel, queue_name, 1)
        [result] = carried([delivery])
        assert isinstance(result.body, TaskCompleted)
        assert result.body.result == 49
    finally:
        stopping.set()
        await keeper
        await supervisor.close()
