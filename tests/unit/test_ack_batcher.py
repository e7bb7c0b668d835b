"""The ack batcher: one multiple ack for a finished run from the oldest unsettled delivery,
single acks for the rest, never an ack over a delivery still being worked on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from services.common.acks import AckBatcher


@dataclass
class Channel:
    acks: list[tuple[int, bool]] = field(default_factory=list)
    nacks: list[int] = field(default_factory=list)


@dataclass
class Delivery:
    """What the batcher uses of an aio-pika delivery: its channel, its tag, ``ack``; and
    ``nack``, which its callers settle it with otherwise."""

    channel: Channel
    delivery_tag: int

    async def ack(self, multiple: bool = False) -> None:
        self.channel.acks.append((self.delivery_tag, multiple))

    async def nack(self) -> None:
        self.channel.nacks.append(self.delivery_tag)


def deliveries(channel: Channel, count: int) -> list[Delivery]:
    return [Delivery(channel, tag) for tag in range(1, count + 1)]


async def test_deliveries_finished_together_in_order_are_one_multiple_ack() -> None:
    batcher, channel = AckBatcher(), Channel()
    received = deliveries(channel, 5)
    for delivery in received:
        batcher.received(delivery)  # type: ignore[arg-type]

    for delivery in received[:4]:
        batcher.ack(delivery)  # type: ignore[arg-type]
    await batcher.drain()

    assert channel.acks == [(4, True)]


async def test_a_delivery_still_running_is_never_covered() -> None:
    batcher, channel = AckBatcher(), Channel()
    received = deliveries(channel, 5)
    for delivery in received:
        batcher.received(delivery)  # type: ignore[arg-type]

    # 1 and 2 finish, 3 is still running, 4 and 5 finish: 4 and 5 are acknowledged alone.
    for index in (0, 1, 3, 4):
        batcher.ack(received[index])  # type: ignore[arg-type]
    await batcher.drain()
    assert sorted(channel.acks) == [(2, True), (4, False), (5, False)]

    batcher.ack(received[2])  # type: ignore[arg-type]
    await batcher.drain()
    assert channel.acks[-1] == (3, True)


async def test_a_requeued_delivery_does_not_hold_back_the_ones_after_it() -> None:
    batcher, channel = AckBatcher(), Channel()
    received = deliveries(channel, 3)
    for delivery in received:
        batcher.received(delivery)  # type: ignore[arg-type]

    await batcher.settle_alone(received[0], received[0].nack())  # type: ignore[arg-type]
    batcher.ack(received[1])  # type: ignore[arg-type]
    batcher.ack(received[2])  # type: ignore[arg-type]
    await batcher.drain()

    assert channel.nacks == [1]
    assert channel.acks == [(3, True)]


async def test_no_multiple_ack_covers_a_delivery_whose_requeue_has_not_gone_yet() -> None:
    batcher, channel = AckBatcher(), Channel()
    received = deliveries(channel, 3)
    for delivery in received:
        batcher.received(delivery)  # type: ignore[arg-type]
    release = asyncio.Event()

    async def requeue_when_released() -> None:
        await release.wait()
        await received[1].nack()

    requeue = asyncio.create_task(
        batcher.settle_alone(received[1], requeue_when_released())  # type: ignore[arg-type]
    )
    batcher.ack(received[0])  # type: ignore[arg-type]
    batcher.ack(received[2])  # type: ignore[arg-type]
    await batcher.drain()
    # 3 is acknowledged alone: a multiple ack up to 3 would acknowledge 2 before its nack.
    assert sorted(channel.acks) == [(1, True), (3, False)]

    release.set()
    await requeue
    assert channel.nacks == [2]


async def test_acks_go_out_by_the_end_of_the_loop_turn_without_a_drain() -> None:
    batcher, channel = AckBatcher(), Channel()
    [delivery] = deliveries(channel, 1)
    batcher.received(delivery)  # type: ignore[arg-type]
    batcher.ack(delivery)  # type: ignore[arg-type]

    for _ in range(3):  # the flush, the ack task, its completion
        await asyncio.sleep(0)

    assert channel.acks == [(1, True)]


async def test_channels_are_acknowledged_separately_and_cleared_ones_not_at_all() -> None:
    batcher, first, second = AckBatcher(), Channel(), Channel()
    one, two = Delivery(first, 1), Delivery(second, 1)
    batcher.received(one)  # type: ignore[arg-type]
    batcher.received(two)  # type: ignore[arg-type]
    batcher.ack(one)  # type: ignore[arg-type]
    batcher.ack(two)  # type: ignore[arg-type]
    await batcher.drain()
    assert (first.acks, second.acks) == ([(1, True)], [(1, True)])

    stale = Delivery(first, 2)
    batcher.received(stale)  # type: ignore[arg-type]
    batcher.clear()
    batcher.ack(stale)  # type: ignore[arg-type]
    await batcher.drain()
    assert first.acks == [(1, True)]
