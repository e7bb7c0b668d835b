"""Raised events in a partition (ADR 39): for an instance the process runs already, committed
beside the batch in flight, acknowledged one by one so that no ``multiple`` ack covers a
delivery not yet processed, and never beside a batch that steps the same instance; for an
instance it does not run yet (its start may be behind), in their turn."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from contracts import OrchestratorMessage
from durable.store.leases import Lease
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import Committed
from tests.helpers.waiting import assert_eventually
from tests.unit.consumer_fakes import (
    Channel,
    Delivery,
    event_raised,
    started_consumer,
    task_completed,
)


class Handler:
    """Holds every batch that has a task result in it until ``release`` is set, and every
    batch of events until ``release_events`` is; records each batch's instances when it is
    given and when it is done."""

    def __init__(self, running: frozenset[str] = frozenset({"waiter"})) -> None:
        self.running = running
        self.release = asyncio.Event()
        self.release_events = asyncio.Event()
        self.release_events.set()
        self.given: list[set[str]] = []
        self.done: list[set[str]] = []
        # Each batch's instances and whether it was given as express (ADR 40: no slot).
        self.express: list[tuple[frozenset[str], bool]] = []

    def runs(self, instance_id: str) -> bool:
        return instance_id in self.running

    async def handle(
        self,
        messages: Sequence[OrchestratorMessage],
        partition: int | None = None,
        lease: Lease | None = None,
        *,
        express: bool = False,
    ) -> Committed:
        instances = {message.envelope.instance_id for message in messages}
        self.given.append(instances)
        self.express.append((frozenset(instances), express))
        if any(message.envelope.type == "TaskCompleted" for message in messages):
            await self.release.wait()
        else:
            await self.release_events.wait()
        self.done.append(instances)
        return Committed([], [], [])


async def deliver(
    partition: PartitionConsumer, channel: Channel, tag: int, message: OrchestratorMessage
) -> None:
    body = message.model_dump_json().encode()
    delivery = Delivery(channel, tag, body=body, type=message.envelope.type)
    await partition._receive(delivery)  # type: ignore[arg-type]


async def test_an_event_is_committed_beside_the_batch_in_flight_and_acknowledged_alone() -> None:
    handler, channel = Handler(), Channel()
    partition = started_consumer(handler)
    await deliver(partition, channel, 1, task_completed("busy"))
    await deliver(partition, channel, 2, task_completed("also-busy"))
    await assert_eventually(lambda: len(handler.given) == 1, timeout=5)  # in flight, held

    await deliver(partition, channel, 3, event_raised("waiter"))
    await assert_eventually(lambda: ("ack", 3, False) in channel.settled, timeout=5)
    assert handler.done == [{"waiter"}]  # the batch in flight is still held
    assert not any(tag < 3 for _, tag, _ in channel.settled)  # nothing of it settled
    # The event's batch does not wait for the process's decision slot (ADR 40).
    assert handler.express == [(frozenset({"busy", "also-busy"}), False), ({"waiter"}, True)]

    handler.release.set()
    await assert_eventually(lambda: ("ack", 2, True) in channel.settled, timeout=5)
    assert channel.settled == [("ack", 3, False), ("ack", 2, True)]
    await partition.stop(timeout=1)


async def test_an_event_for_an_instance_in_the_batch_in_flight_waits_for_it() -> None:
    handler, channel = Handler(), Channel()
    partition = started_consumer(handler)
    await deliver(partition, channel, 1, task_completed("waiter"))
    await assert_eventually(lambda: len(handler.given) == 1, timeout=5)

    await deliver(partition, channel, 2, event_raised("waiter"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert handler.given == [{"waiter"}]  # the event's batch was not started beside it

    handler.release.set()
    await assert_eventually(lambda: ("ack", 2, False) in channel.settled, timeout=5)
    assert handler.done == [{"waiter"}, {"waiter"}]
    assert channel.settled == [("ack", 1, True), ("ack", 2, False)]
    await partition.stop(timeout=1)


async def test_no_batch_is_taken_while_an_event_is_processed() -> None:
    handler, channel = Handler(), Channel()
    partition = started_consumer(handler)
    handler.release.set()
    handler.release_events.clear()
    await deliver(partition, channel, 1, event_raised("waiter"))
    await deliver(partition, channel, 2, task_completed("other"))  # numbered after the event
    for _ in range(20):
        await asyncio.sleep(0)
    # Taken beside the event, its multiple ack at tag 2 would settle the event unprocessed.
    assert handler.given == [{"waiter"}]

    handler.release_events.set()
    await assert_eventually(lambda: ("ack", 2, True) in channel.settled, timeout=5)
    assert channel.settled == [("ack", 1, False), ("ack", 2, True)]
    await partition.stop(timeout=1)


async def test_an_event_for_an_instance_not_running_here_goes_in_its_turn() -> None:
    # Its start may be among the deliveries before it: recorded after the event, the start
    # would find the event buffered instead of waiting for it as it does otherwise.
    handler, channel = Handler(running=frozenset()), Channel()
    partition = started_consumer(handler)
    await deliver(partition, channel, 1, task_completed("busy"))
    await assert_eventually(lambda: len(handler.given) == 1, timeout=5)
    await deliver(partition, channel, 2, task_completed("new"))  # a start, say
    await deliver(partition, channel, 3, event_raised("new"))
    for _ in range(20):
        await asyncio.sleep(0)
    assert handler.done == []  # not beside the batch in flight

    handler.release.set()
    await assert_eventually(lambda: ("ack", 3, True) in channel.settled, timeout=5)
    assert handler.given == [{"busy"}, {"new"}]  # then both together, in their order
    assert channel.settled == [("ack", 1, True), ("ack", 3, True)]
    await partition.stop(timeout=1)
