"""The publish lane: a committed batch's messages are published, then its deliveries
acknowledged, one batch after another, so no ``multiple`` ack runs ahead of a publish."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from aio_pika.abc import AbstractIncomingMessage

from durable.dead_lettering import DeadLetter
from durable.store.outbox import OutboxRecord
from services.orchestrator.acknowledgements import Acknowledgements
from services.orchestrator.publish_lane import PublishLane
from tests.helpers.waiting import assert_eventually
from tests.unit.consumer_fakes import Channel, Delivery, deliveries, outbox_record


class Relay:
    """Publishes outbox rows; the first ``gated`` batches wait for ``gate``; ``broken`` ones
    raise."""

    def __init__(self, gated: int = 0, broken: Sequence[int] = ()) -> None:
        self.gate = asyncio.Event()
        self.started: list[list[int]] = []
        self.published: list[list[int]] = []
        self._gated = gated
        self._broken = set(broken)

    async def publish_committed(self, records: Sequence[OutboxRecord]) -> bool:
        ids = [record.id for record in records]
        self.started.append(ids)
        if len(self.started) <= self._gated:
            await self.gate.wait()
        if self._broken & set(ids):
            raise RuntimeError("the relay broke")
        self.published.append(ids)
        return True


class DeadLetters:
    """Sends dead letters; those of the ``unconfirmed`` deliveries are not confirmed, so
    those deliveries are requeued and returned."""

    def __init__(self, unconfirmed: Sequence[Delivery] = ()) -> None:
        self.sent: list[AbstractIncomingMessage] = []
        self._unconfirmed = list(unconfirmed)

    async def send(
        self, letters: dict[AbstractIncomingMessage, list[DeadLetter]]
    ) -> list[AbstractIncomingMessage]:
        requeued = []
        for delivery in letters:
            if delivery in self._unconfirmed:
                await delivery.nack(requeue=True)
                requeued.append(delivery)
            else:
                self.sent.append(delivery)
        return requeued


class Lane:
    def __init__(self, relay: Relay, dead_letters: DeadLetters | None = None) -> None:
        self.done = 0
        self.lane = PublishLane(
            relay,  # type: ignore[arg-type]
            dead_letters or DeadLetters(),  # type: ignore[arg-type]
            Acknowledgements(structlog.get_logger()),
            self._on_done,
            structlog.get_logger(),
        )

    def _on_done(self) -> None:
        self.done += 1


async def loop_turns(count: int = 10) -> None:
    """Let every task that can run without waiting run (no time passes)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_deliveries_are_acknowledged_only_after_their_batch_is_published() -> None:
    relay, channel = Relay(gated=1), Channel()
    lane = Lane(relay)

    lane.lane.publish([outbox_record(1)], deliveries(channel, 2), {})  # type: ignore[arg-type]
    await assert_eventually(lambda: relay.started == [[1]], timeout=5)
    assert lane.lane.busy
    assert channel.settled == []

    relay.gate.set()
    await assert_eventually(lambda: channel.settled == [("ack", 2, True)], timeout=5)
    await assert_eventually(lambda: not lane.lane.busy, timeout=5)
    assert lane.done == 1


async def test_a_batch_waits_for_the_batch_committed_before_it() -> None:
    relay, channel = Relay(gated=1), Channel()
    lane = Lane(relay)
    first, second = deliveries(channel, 2)

    lane.lane.publish([outbox_record(1)], [first], {})  # type: ignore[list-item]
    lane.lane.publish([outbox_record(2)], [second], {})  # type: ignore[list-item]
    await loop_turns()
    assert relay.started == [[1]]  # the second batch has not even begun
    assert channel.settled == []

    relay.gate.set()
    await assert_eventually(lambda: lane.done == 2, timeout=5)
    assert relay.published == [[1], [2]]
    assert channel.settled == [("ack", 1, True), ("ack", 2, True)]
    assert not lane.lane.busy


async def test_a_delivery_whose_dead_letter_is_not_confirmed_is_requeued_and_not_covered() -> None:
    channel = Channel()
    one, two, three = deliveries(channel, 3)
    dead_letters = DeadLetters(unconfirmed=[three])
    lane = Lane(Relay(), dead_letters)
    letters: dict[Delivery, list[DeadLetter]] = {two: [], three: []}

    lane.lane.publish([outbox_record(1)], [one, two, three], letters)  # type: ignore[arg-type]
    await lane.lane.wait(timeout=5)

    assert dead_letters.sent == [two]
    assert channel.settled == [("requeue", 3, False), ("ack", 2, True)]


async def test_a_batch_whose_publishing_breaks_does_not_hold_up_the_ones_after_it() -> None:
    relay, channel = Relay(broken=[1]), Channel()
    lane = Lane(relay)
    first, second = deliveries(channel, 2)

    lane.lane.publish([outbox_record(1)], [first], {})  # type: ignore[list-item]
    lane.lane.publish([outbox_record(2)], [second], {})  # type: ignore[list-item]
    await assert_eventually(lambda: lane.done == 2, timeout=5)

    assert relay.published == [[2]]
    assert channel.settled == [("ack", 2, True)]


async def test_a_batch_with_nothing_to_publish_or_settle_takes_no_turn() -> None:
    relay = Relay()
    lane = Lane(relay)

    lane.lane.publish([], [], {})
    await loop_turns()

    assert not lane.lane.busy
    assert (relay.started, lane.done) == ([], 0)


async def test_deliveries_alone_are_acknowledged_in_turn() -> None:
    relay, channel = Relay(gated=1), Channel()
    lane = Lane(relay)
    carrier = Delivery(channel, 2)

    lane.lane.publish([outbox_record(1)], [Delivery(channel, 1)], {})  # type: ignore[list-item]
    lane.lane.publish([], [carrier], {})  # type: ignore[list-item]
    await loop_turns()
    assert channel.settled == []

    relay.gate.set()
    await assert_eventually(lambda: lane.done == 2, timeout=5)
    assert channel.settled == [("ack", 1, True), ("ack", 2, True)]


async def test_waiting_for_the_lane_ends_at_the_timeout() -> None:
    relay = Relay(gated=1)
    lane = Lane(relay)
    lane.lane.publish([outbox_record(1)], [], {})

    await lane.lane.wait(timeout=0.05)
    assert lane.lane.busy

    relay.gate.set()
    await lane.lane.wait(timeout=5)
    assert relay.published == [[1]]
