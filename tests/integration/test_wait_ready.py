"""``ServiceGroup.wait_ready`` on the real broker: a deployment whose services are up but
leave a queue unserved (the activities service loads other modules than the test expects)
times out saying which queue, instead of only showing logs in which nothing went wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts import Topology
from deploy.processes import ServiceGroup
from durable.broker import connect
from durable.declarations import declare_activity_queues, declare_orchestrator_queues
from tests.conftest import AMQP_URL, delete_broker_objects, unique

SERVED, UNSERVED, UNDECLARED = "echo", "charge_payment", "never_declared"


@pytest.fixture
async def channel() -> AsyncIterator[AbstractChannel]:
    connection = await connect(AMQP_URL, "tests.wait-ready")
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
async def topology() -> AsyncIterator[Topology]:
    topology = Topology(namespace=unique("wr"), partitions=1)
    yield topology
    await delete_broker_objects(topology, [SERVED, UNSERVED, UNDECLARED])


async def consume(channel: AbstractChannel, queue_names: list[str]) -> None:
    async def take(message: AbstractIncomingMessage) -> None:
        await message.ack()

    for name in queue_names:
        queue = await channel.get_queue(name, ensure=False)
        await queue.consume(take)


def activities_only(tmp_path: Path) -> ServiceGroup:
    """A group whose activity queues are checked, with no process of its own: the test's
    consumers stand in for the services."""
    return ServiceGroup({"DF_AMQP_URL": AMQP_URL}, tmp_path, names=("activities",))


async def test_wait_ready_names_the_queues_nothing_consumes_when_it_times_out(
    channel: AbstractChannel, topology: Topology, tmp_path: Path
) -> None:
    await declare_orchestrator_queues(channel, topology)
    await declare_activity_queues(channel, topology, [SERVED, UNSERVED])
    await consume(channel, [topology.partition_queue(0), topology.activity_queue(SERVED)])

    with pytest.raises(TimeoutError) as raised:
        await activities_only(tmp_path).wait_ready(
            topology, [SERVED, UNSERVED, UNDECLARED], timeout=1.0
        )

    reason = str(raised.value).splitlines()[0]
    assert reason == (
        "services not ready after 1.0 s: no consumer on "
        f"{topology.activity_queue(UNSERVED)}, {topology.activity_queue(UNDECLARED)} (not declared)"
    )


async def test_wait_ready_returns_once_every_queue_has_a_consumer(
    channel: AbstractChannel, topology: Topology, tmp_path: Path
) -> None:
    await declare_orchestrator_queues(channel, topology)
    await declare_activity_queues(channel, topology, [SERVED])
    await consume(channel, [topology.partition_queue(0), topology.activity_queue(SERVED)])

    await activities_only(tmp_path).wait_ready(topology, [SERVED], timeout=10.0)
