"""A partition's settlements: one multiple ack per channel for a batch, each delivery alone for
a batch taken ahead of earlier ones, requeues one by one, and nothing raised when the channel
has gone (the broker redelivers its deliveries)."""

from __future__ import annotations

import structlog

from services.orchestrator.acknowledgements import Acknowledgements
from tests.unit.consumer_fakes import Channel, Delivery, deliveries


def acknowledgements() -> Acknowledgements:
    return Acknowledgements(structlog.get_logger())


async def test_a_batch_is_one_multiple_ack_per_channel_at_its_highest_tag() -> None:
    first, second = Channel(), Channel()
    batch = [Delivery(first, 3), Delivery(second, 1), Delivery(first, 5), Delivery(first, 4)]
    batch.append(Delivery(second, 2))

    await acknowledgements().ack_batch(batch)  # type: ignore[arg-type]

    assert first.settled == [("ack", 5, True)]
    assert second.settled == [("ack", 2, True)]


async def test_a_batch_taken_ahead_acknowledges_each_delivery_alone() -> None:
    # Raised events are processed before deliveries numbered before them (ADR 39): a multiple
    # ack at the event's tag would settle those unprocessed deliveries.
    channel = Channel()
    batch = [Delivery(channel, 7), Delivery(channel, 9)]

    await acknowledgements().ack_batch(batch, in_order=False)  # type: ignore[arg-type]

    assert channel.settled == [("ack", 7, False), ("ack", 9, False)]


async def test_requeued_deliveries_go_back_one_by_one_and_a_single_ack_covers_no_other() -> None:
    channel = Channel()
    one, two, three = deliveries(channel, 3)
    acks = acknowledgements()

    await acks.requeue([one, three])  # type: ignore[list-item]
    await acks.ack(two)  # type: ignore[arg-type]

    assert channel.settled == [("requeue", 1, False), ("requeue", 3, False), ("ack", 2, False)]


async def test_settling_on_a_channel_that_has_gone_does_not_raise() -> None:
    channel = Channel(closed=True)
    one, two = deliveries(channel, 2)
    acks = acknowledgements()

    await acks.ack(one)  # type: ignore[arg-type]
    await acks.requeue([one, two])  # type: ignore[list-item]
    await acks.ack_batch([one, two])  # type: ignore[list-item]
    await acks.settle(two.ack())

    assert channel.settled == []


async def test_a_failed_settlement_does_not_stop_the_ones_after_it() -> None:
    gone, live = Channel(closed=True), Channel()

    await acknowledgements().ack_batch([Delivery(gone, 7), Delivery(live, 2)])  # type: ignore[list-item]

    assert live.settled == [("ack", 2, True)]
