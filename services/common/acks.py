"""Acknowledging concurrent deliveries in as few frames as their order allows.

A consumer that works on many deliveries at once finishes them out of order. Each ack is a
frame to send and, on a quorum queue, an entry in the queue's log; under load most of them
can be one ``basic.ack(multiple)``. An ``AckBatcher`` collects the deliveries finished during
one turn of the event loop and, per channel, acknowledges the longest run of finished ones
that starts at the oldest unsettled delivery with a single ``multiple`` ack; the others are
acknowledged one by one. No ack waits for more than that turn of the loop, and none covers a
delivery that is still being worked on, or one being settled otherwise (requeued,
dead-lettered) whose own frame has not gone yet: a ``multiple`` ack sent first would
acknowledge it, the broker would drop a task meant to come back, and then close the channel
over the nack of a tag it no longer knows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from aio_pika.abc import AbstractIncomingMessage


class AckBatcher:
    def __init__(self) -> None:
        # Per channel, its unsettled deliveries by tag, in the order the channel numbered them.
        self._unsettled: dict[int, dict[int, AbstractIncomingMessage]] = {}
        self._finished: dict[int, set[int]] = {}
        self._flush: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def received(self, delivery: AbstractIncomingMessage) -> None:
        """Track a delivery from its arrival (before any later one can be acknowledged)."""
        tag = delivery.delivery_tag
        if tag is not None:
            self._unsettled.setdefault(id(delivery.channel), {})[tag] = delivery

    def ack(self, delivery: AbstractIncomingMessage) -> None:
        """Acknowledge ``delivery`` at the end of this turn of the event loop."""
        if delivery.delivery_tag is None:
            return
        self._finished.setdefault(id(delivery.channel), set()).add(delivery.delivery_tag)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._send)

    async def settle_alone(
        self, delivery: AbstractIncomingMessage, settle: Awaitable[None]
    ) -> None:
        """Settle ``delivery`` otherwise (``settle``: a requeue, a dead-letter): it holds back
        every ``multiple`` ack until ``settle`` is done, and is forgotten after."""
        try:
            await settle
        finally:
            if delivery.delivery_tag is not None:
                self._unsettled.get(id(delivery.channel), {}).pop(delivery.delivery_tag, None)

    def clear(self) -> None:
        """The channels are gone: their deliveries are void, nothing is acknowledged."""
        self._unsettled.clear()
        self._finished.clear()

    async def drain(self) -> None:
        """Send what is due now and wait for it (before closing the channels)."""
        if self._flush is not None:
            self._flush.cancel()
            self._send()
        if self._sending:
            await asyncio.wait(self._sending)

    def _send(self) -> None:
        self._flush = None
        for channel, finished in self._finished.items():
            unsettled = self._unsettled.get(channel, {})
            run_end: AbstractIncomingMessage | None = None
            for tag in sorted(unsettled):
                if tag not in finished:
                    break
                run_end = unsettled.pop(tag)
                finished.discard(tag)
            if run_end is not None:
                self._start(run_end.ack(multiple=True))
            for tag in finished:
                delivery = unsettled.pop(tag, None)
                if delivery is not None:
                    self._start(delivery.ack())
        self._finished.clear()

    def _start(self, ack: Awaitable[None]) -> None:
        async def send() -> None:
            # A failed ack (the channel closed) needs nothing: the broker redelivers.
            with contextlib.suppress(Exception):
                await ack

        task = asyncio.ensure_future(send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
