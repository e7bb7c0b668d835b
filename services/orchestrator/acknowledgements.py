"""Settling a partition's deliveries: acknowledged, requeued, on a channel that may be gone.

After a reconnect the old channel's delivery tags are void; the broker redelivers those
messages anyway, and the redelivery is deduplicated, so a settlement that fails needs no
further action and is only logged. A processed batch is acknowledged with one ``multiple`` ack
per channel, since every delivery before it has been settled already.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from aio_pika.abc import AbstractIncomingMessage
from structlog.typing import FilteringBoundLogger


class Acknowledgements:
    """Settles the deliveries of one partition queue, tolerating channels that have gone."""

    def __init__(self, log: FilteringBoundLogger) -> None:
        self._log = log

    async def settle(self, settlement: Awaitable[None]) -> None:
        """Await ``settlement`` (a delivery's ack or nack); a failure is logged, not raised."""
        try:
            await settlement
        except Exception as error:
            self._log.debug("delivery.settle_failed", error=repr(error))

    async def ack(self, delivery: AbstractIncomingMessage) -> None:
        """Acknowledge ``delivery`` alone."""
        await self.settle(delivery.ack())

    async def requeue(self, deliveries: Iterable[AbstractIncomingMessage]) -> None:
        """Send ``deliveries`` back to their queue, to be delivered again."""
        for delivery in deliveries:
            await self.settle(delivery.nack(requeue=True))

    async def ack_batch(
        self, deliveries: Iterable[AbstractIncomingMessage], *, in_order: bool = True
    ) -> None:
        """Acknowledge a processed batch: one ``multiple`` ack per channel.

        Deliveries reach the batch in the order the channel numbered them, and every one
        before them is settled already (invalid ones dead-lettered, early fires acknowledged
        when they were set aside, those whose dead letters failed requeued), so one ack covers
        the batch. (A carrier's invalid messages are dead-lettered without settling it.)

        A batch taken ahead of deliveries numbered before it (raised events go first, ADR 39)
        is not ``in_order``: a ``multiple`` ack would cover those unprocessed deliveries, so
        each of its deliveries is acknowledged alone.
        """
        if not in_order:
            for delivery in deliveries:
                await self.ack(delivery)
            return
        last: dict[int, AbstractIncomingMessage] = {}
        for delivery in deliveries:
            key = id(delivery.channel)
            if key not in last or (delivery.delivery_tag or 0) > (last[key].delivery_tag or 0):
                last[key] = delivery
        for delivery in last.values():
            await self.settle(delivery.ack(multiple=True))
