"""The confirming publisher against the real broker."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel

from contracts import Topology
from durable import broker
from durable.broker import OutgoingMessage, Publisher, PublishFailedError
from tests.conftest import AMQP_URL
from tests.helpers.waiting import assert_eventually
from tests.integration.queues import message_count


async def test_concurrent_first_publishes_to_an_activity_declare_its_queue_once(
    private_topology: Topology, channel: AbstractChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fan-out's first publish of each activity declares its queue; the thousands of
    # publishes gathered with it must wait for that one declaration, not make their own.
    declarations: list[list[str]] = []
    real = broker.declare_activity_queues

    async def counted(channel: Any, topology: Topology, names: Any) -> None:
        declarations.append(list(names))
        await real(channel, topology, names)

    monkeypatch.setattr(broker, "declare_activity_queues", counted)
    exchange, routing_key = private_topology.activity_route("echo")
    messages = [
        OutgoingMessage(exchange, routing_key, str(uuid.uuid4()), "c", "ActivityTask", b"{}")
        for _ in range(500)
    ]
    publisher = await Publisher.open(AMQP_URL, private_topology, "integration.fan-out")
    try:
        await publisher.publish_many(messages)
    finally:
        await publisher.close()

    assert declarations == [["echo"]]
    queue = private_topology.activity_queue("echo")

    async def all_queued() -> bool:
        count = await message_count(channel, queue)
        assert count == 500, f"{count} of 500 queued"
        return True

    await assert_eventually(all_queued, timeout=10)


@pytest.fixture
def full_partition_queue(private_topology: Topology) -> Iterator[str]:
    """Partition 0's queue, limited by a policy to one message and refusing (nacking) the
    publishes beyond it: as a quorum queue refuses them while it elects a new leader."""
    queue = private_topology.partition_queue(0)
    name = f"df-test-full-{uuid.uuid4().hex[:8]}"
    definition = '{"max-length": 1, "overflow": "reject-publish"}'
    subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "set_policy",
            "--apply-to",
            "queues",
            "--priority",
            "100",
            name,
            f"^{re.escape(queue)}$",
            definition,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield queue
    finally:
        subprocess.run(["rabbitmqctl", "-q", "clear_policy", name], capture_output=True, timeout=60)


def to_partition_zero(topology: Topology) -> Callable[[], OutgoingMessage]:
    """New messages for partition 0's queue, the one ``full_partition_queue`` limits."""
    instance_id = next(f"i-{n}" for n in range(1000) if topology.partition_for(f"i-{n}") == 0)
    exchange, routing_key = topology.orchestrator_route(instance_id)
    return lambda: OutgoingMessage(exchange, routing_key, str(uuid.uuid4()), "c", "Task", b"{}")


async def test_a_refused_publish_is_tried_again_until_the_queue_takes_it(
    private_topology: Topology, channel: AbstractChannel, full_partition_queue: str
) -> None:
    message = to_partition_zero(private_topology)
    publisher = await Publisher.open(AMQP_URL, private_topology, "integration.patience")
    try:
        # Fill the queue until it refuses (a quorum queue's limit is approximate).
        async def fill() -> None:
            for _ in range(10):
                await publisher.publish(message())

        with pytest.raises(PublishFailedError):
            await fill()
        last = message()
        waiting = asyncio.create_task(publisher.publish_patiently(last, within=30))
        # Room is made while it retries (as a new leader is elected): it goes through.
        queue = await channel.get_queue(full_partition_queue, ensure=False)
        await queue.purge()
        await asyncio.wait_for(waiting, 30)
    finally:
        await publisher.close()
    async with queue.iterator() as deliveries:
        async for delivery in deliveries:
            assert delivery.message_id == last.message_id
            await delivery.ack()
            break


async def test_a_nacked_publisher_publishes_next_on_a_new_connection(
    private_topology: Topology,
    channel: AbstractChannel,
    full_partition_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RabbitMQ 3.10 can keep nacking a channel that published during a quorum queue's leader
    # election long after it, while a new connection's publishes are confirmed.
    monkeypatch.setattr(broker, "RENEW_AFTER_NACK_SECONDS", 0.0)
    message = to_partition_zero(private_topology)
    publisher = await Publisher.open(AMQP_URL, private_topology, "integration.renewal")
    try:
        refused_on = None
        for _ in range(10):
            refused_on = publisher._connection
            try:
                await publisher.publish(message())
            except PublishFailedError:
                break
        else:
            pytest.fail("the full queue took every publish")
        queue = await channel.get_queue(full_partition_queue, ensure=False)
        await queue.purge()
        await publisher.publish(message())
        assert refused_on is not None
        assert refused_on.is_closed
        assert publisher._connection is not refused_on
    finally:
        await publisher.close()


class StuckConnectionExchange:
    """An exchange whose confirms are rejected as aiormq rejects those of a connection it
    found stuck (its node cut off): with ``CancelledError``, though no task was cancelled."""

    def __init__(self) -> None:
        self.publishes = 0

    async def publish(self, *args: Any, **kwargs: Any) -> None:
        self.publishes += 1
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        confirm.set_exception(asyncio.CancelledError())
        await confirm


async def test_a_publish_whose_confirm_is_rejected_as_cancelled_fails_as_a_lost_connection(
    private_topology: Topology,
) -> None:
    message = to_partition_zero(private_topology)()
    publisher = await Publisher.open(AMQP_URL, private_topology, "integration.stuck")
    try:
        await publisher.publish(message)  # opens the channel and its exchanges
        stuck = StuckConnectionExchange()
        publisher._exchanges[message.exchange] = stuck  # type: ignore[assignment]
        # Tried again once, as on a lost connection, then refused: never a CancelledError,
        # which a caller (the HTTP API) would take for its own cancellation.
        with pytest.raises(PublishFailedError, match="connection stuck"):
            await publisher.publish(message)
        assert stuck.publishes == 2

        # A publish that is itself cancelled still is.
        started, blocked = asyncio.Event(), asyncio.Event()

        class Blocking:
            async def publish(self, *args: Any, **kwargs: Any) -> None:
                started.set()
                await blocked.wait()

        publisher._exchanges[message.exchange] = Blocking()  # type: ignore[assignment]
        publishing = asyncio.create_task(publisher.publish(message))
        await started.wait()
        publishing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await publishing
    finally:
        await publisher.close()
