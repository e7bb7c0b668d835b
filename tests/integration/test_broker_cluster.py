"""The broker side of issue 17 on a three-node RabbitMQ cluster of the test's own
(``tests/helpers/rabbit_cluster.py``): the cluster itself, connections given the list of its
nodes, a supervised consumer that loses its node, and publisher confirms across a kill -9 of
a quorum queue's leader.

One cluster serves the module (building one takes some ten seconds); a test that kills a
node starts it again before it ends. The figures are printed (``-s``): ``ha figure: ...``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from contracts import Topology
from durable.broker import OutgoingMessage, Publisher, PublishFailedError, connect
from durable.declarations import declare_orchestrator_queues
from services.common.consuming import ConnectionSupervisor
from tests.helpers.rabbit_cluster import RabbitCluster
from tests.helpers.rabbit_node import RabbitNode
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.ha

PUBLISHES = 3000
IN_FLIGHT = 100
KILL_AFTER = 1050  # confirms: half-way through a batch, so that fifty are in flight


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[RabbitCluster]:
    async with RabbitCluster.started(nodes=3) as cluster:
        print(f"ha figure: three clustered nodes started in {cluster.build_seconds:.1f} s")
        yield cluster


@pytest.fixture
def topology() -> Topology:
    return Topology(namespace=f"ha{uuid.uuid4().hex[:8]}", partitions=1)


def node_of(cluster: RabbitCluster, connection: AbstractConnection) -> RabbitNode:
    port = connection.url.port  # type: ignore[attr-defined]
    return next(node for node in cluster.nodes if node.amqp_port == port)


async def test_three_nodes_form_one_cluster_and_a_quorum_queue_has_a_replica_on_each(
    cluster: RabbitCluster, topology: Topology
) -> None:
    assert await cluster.cluster_nodes() == sorted(node.name for node in cluster.nodes)

    publisher = await Publisher.open(cluster.amqp_url, topology, "ha.declare")
    await publisher.close()

    members = await cluster.members_of(topology.partition_queue(0))
    assert sorted(members) == sorted(node.name for node in cluster.nodes)


async def test_a_list_whose_first_node_is_down_connects_to_another(
    cluster: RabbitCluster,
) -> None:
    first = cluster.nodes[0]
    cluster.kill(first)
    try:
        # Every start of the rotation, the dead node's among them, ends on a live node.
        for _ in range(6):
            connection = await connect(cluster.amqp_url, "ha.first-down")
            try:
                assert node_of(cluster, connection) is not first
            finally:
                await connection.close()
    finally:
        await cluster.start(first)


async def test_a_supervised_consumer_whose_node_is_killed_consumes_again_from_another(
    cluster: RabbitCluster, topology: Topology
) -> None:
    publisher = await Publisher.open(cluster.amqp_url, topology, "ha.publish")
    received: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()

    async def on_message(delivery: AbstractIncomingMessage) -> None:
        async with delivery.process():
            received.put_nowait((delivery.message_id or "", delivery.redelivered or False))

    async def attach(connection: AbstractConnection) -> None:
        channel = await connection.channel()
        await declare_orchestrator_queues(channel, topology)
        queue = await channel.get_queue(topology.partition_queue(0), ensure=False)
        await queue.consume(on_message)

    async def detach() -> None:
        return None

    stopping = asyncio.Event()
    supervisor = ConnectionSupervisor(cluster.amqp_url, "ha.consume", attach, detach)
    keeper = await supervisor.start(stopping)
    exchange, routing_key = topology.orchestrator_route("instance")
    killed: RabbitNode | None = None
    try:
        await publisher.publish(OutgoingMessage(exchange, routing_key, "before", "c", "T", b"{}"))
        assert await asyncio.wait_for(received.get(), 30) == ("before", False)

        assert supervisor._connection is not None
        killed = node_of(cluster, supervisor._connection)
        started = time.monotonic()
        cluster.kill(killed)

        async def reattached_elsewhere() -> bool:
            connection = supervisor._connection
            assert supervisor.attached.is_set()
            assert connection is not None
            assert not connection.is_closed
            assert node_of(cluster, connection) is not killed
            return True

        await assert_eventually(reattached_elsewhere, timeout=30, interval=0.05)
        print(f"ha figure: consumer reattached {time.monotonic() - started:.2f} s after kill -9")
        await publisher.publish(OutgoingMessage(exchange, routing_key, "after", "c", "T", b"{}"))
        # The ack of "before" may have been on its way when the node died: then the queue
        # hands it out again, marked redelivered (at least once), ahead of "after".
        then = await asyncio.wait_for(received.get(), 30)
        if then == ("before", True):
            then = await asyncio.wait_for(received.get(), 30)
        assert then == ("after", False)
        assert received.empty()
    finally:
        stopping.set()
        await keeper
        await supervisor.close()
        await publisher.close()
        if killed is not None:
            await cluster.start(killed)


@pytest.mark.parametrize("publisher_on", ["the leader's node", "another node"])
async def test_every_confirmed_publish_is_delivered_after_the_queue_leader_is_killed(
    cluster: RabbitCluster, topology: Topology, publisher_on: str
) -> None:
    queue = topology.partition_queue(0)
    declaring = await Publisher.open(cluster.amqp_url, topology, "ha.declare")
    await declaring.close()
    leader = await cluster.leader_of(queue)
    # Killing the leader's node also drops the publisher's connection there (it reconnects
    # to another node); on another node the publisher only waits for a new leader.
    publisher = await publisher_connected(cluster, topology, leader, publisher_on)
    exchange, routing_key = topology.orchestrator_route("instance")
    ids = [f"m-{n:05d}" for n in range(PUBLISHES)]
    confirmed: set[str] = set()
    unconfirmed_sends = 0
    sends = 0
    started = time.monotonic()

    async def send(message_id: str) -> None:
        nonlocal unconfirmed_sends, sends, killed_at
        sends += 1
        message = OutgoingMessage(exchange, routing_key, message_id, "c", "T", message_id.encode())
        try:
            await publisher.publish(message)
        except PublishFailedError:
            unconfirmed_sends += 1  # sent again below: at least once, as the outbox does
        else:
            confirmed.add(message_id)
            if not killed_at and len(confirmed) >= KILL_AFTER:
                killed_at = time.monotonic()
                cluster.kill(leader)  # mid-way: the rest of this batch is in flight

    killed_at = 0.0
    try:
        pending = list(ids)
        while pending:
            for start in range(0, len(pending), IN_FLIGHT):
                await asyncio.gather(*(send(i) for i in pending[start : start + IN_FLIGHT]))
            pending = [i for i in ids if i not in confirmed]
            assert time.monotonic() - started < 120, f"{len(pending)} still unconfirmed"
        publishing_seconds = time.monotonic() - started
        assert killed_at, "the leader was never killed"

        delivered = await consume_all(cluster, queue, expected=set(ids))
        assert set(ids) <= set(delivered)  # none confirmed is lost
        duplicates = len(delivered) - len(set(delivered))
        print(
            f"ha figure: publisher on {publisher_on}: {PUBLISHES} confirmed publishes, "
            f"leader {leader.name} killed after "
            f"{KILL_AFTER}; {unconfirmed_sends} publishes not confirmed and sent again "
            f"({sends} sends in all, {publishing_seconds:.1f} s), {len(delivered)} deliveries, "
            f"{duplicates} duplicates, new leader {(await cluster.leader_of(queue)).name}"
        )
    finally:
        await publisher.close()
        await cluster.start(leader)


async def publisher_connected(
    cluster: RabbitCluster, topology: Topology, leader: RabbitNode, where: str
) -> Publisher:
    """A publisher on the leader's node or on another, as ``where`` says (a connection
    starts from a random node: open until one lands where wanted)."""
    for _ in range(50):
        publisher = await Publisher.open(cluster.amqp_url, topology, "ha.confirms")
        assert publisher._connection is not None
        on_leader = node_of(cluster, publisher._connection) is leader
        if on_leader == (where == "the leader's node"):
            return publisher
        await publisher.close()
    raise AssertionError(f"no publisher connected to {where} in 50 tries")


async def consume_all(cluster: RabbitCluster, queue: str, expected: set[str]) -> list[str]:
    """Every message in ``queue`` (its body), once ``expected`` have all come."""
    connection = await connect(cluster.amqp_url, "ha.drain")
    delivered: list[str] = []
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        source = await channel.get_queue(queue, ensure=False)

        async def on_message(delivery: AbstractIncomingMessage) -> None:
            delivered.append(delivery.body.decode())
            await delivery.ack()

        await source.consume(on_message)

        async def all_there() -> bool:
            missing = expected - set(delivered)
            assert not missing, f"{len(missing)} confirmed messages not delivered yet"
            return True

        await assert_eventually(all_there, timeout=60, interval=0.1)
        return delivered
    finally:
        await connection.close()
