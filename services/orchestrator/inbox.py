"""What a partition's worker takes next, as one batch.

Deliveries are buffered as they arrive; the worker takes everything buffered (up to
``batch_size``) as one batch, so under load many messages share one transaction and one
round of confirms, and when idle a single message goes through at once.

Messages that come without a delivery (timer fires that have come due, local activities'
results) wait in a lane of their own, which does not wait for publishing: deliveries wait
until the batches before them are published (``deliveries_wait``), so that meanwhile more of
them gather into the next batch, but a fire coming due is committed at once. When both are
ready, they take turns.

Events raised to instances the process runs already (``express``: deliveries of type
``EventRaised`` whose instance is cached and started) are taken apart (``next_events``), by an
express worker, at once, beside the batch in flight: a manager's answer or a "Ping" arriving
while a burst of starts fills the partition would otherwise wait behind the whole burst (ADR
39). They keep their order among themselves; overtaking the other messages of their instance
is what any two senders' messages may do already, and its start cannot be among them. While
an event is buffered or being processed, no other batch is taken: the only batch beside it is
the one that was in flight when it arrived, whose deliveries were all numbered before it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from aio_pika.abc import AbstractIncomingMessage

from contracts import EventRaised, OrchestratorMessage

BatchItem = AbstractIncomingMessage | OrchestratorMessage
"""A delivery, or a message that came without one (a due fire, a local result)."""

_EVENT_TYPE: str = EventRaised.model_fields["event_type"].default
"""The AMQP type of a delivery carrying one raised event (``OutgoingMessage.of``)."""


def is_raised_event(item: BatchItem) -> bool:
    """Whether ``item`` is a delivery of one raised event (by its AMQP type)."""
    return not isinstance(item, OrchestratorMessage) and item.type == _EVENT_TYPE


class PartitionInbox:
    """The deliveries and the due messages of one partition, taken in batches.

    ``deliveries_wait`` says whether deliveries must wait (the partition is still publishing);
    call ``wake`` when that changes.
    """

    def __init__(self, batch_size: int, deliveries_wait: Callable[[], bool]) -> None:
        self._batch_size = batch_size
        self._deliveries_wait = deliveries_wait
        self._deliveries: deque[AbstractIncomingMessage] = deque()
        self._events: deque[AbstractIncomingMessage] = deque()
        self._due: deque[OrchestratorMessage] = deque()
        # Set when either lane gains one, or what deliveries wait for may have ended.
        self._wake = asyncio.Event()
        self._due_last = False
        # Set while the worker waits, no delivery buffered and nothing publishing (wait_idle).
        self._idle = asyncio.Event()
        self._idle.set()
        # Set while no event is buffered or being processed: other batches wait for it.
        self._events_idle = asyncio.Event()
        self._events_idle.set()
        self._events_taken = False
        self._events_wake = asyncio.Event()

    def put_delivery(self, delivery: AbstractIncomingMessage, *, express: bool = False) -> None:
        """Buffer ``delivery``: with ``express`` (a raised event that may overtake what
        arrived before it), for ``next_events``."""
        if express:
            self._events.append(delivery)
            self._events_idle.clear()
            self._events_wake.set()
        else:
            self._deliveries.append(delivery)
            self._wake.set()

    def put_due(self, message: OrchestratorMessage) -> None:
        """Add a message that came without a delivery: it does not wait for publishing."""
        self._due.append(message)
        self._wake.set()

    @property
    def has_events(self) -> bool:
        """Whether a raised event is buffered, not yet taken."""
        return bool(self._events)

    def wake(self) -> None:
        """Look again whether deliveries may be taken (a publishing task has ended)."""
        self._wake.set()

    def clear(self) -> None:
        """Forget what is buffered (the deliveries' channel is gone: the broker redelivers
        them; the due messages are the timer sweeper's and the outbox sweeper's now)."""
        self._deliveries.clear()
        self._events.clear()
        self._due.clear()
        if not self._events_taken:
            self._events_idle.set()

    async def next_events(self) -> list[AbstractIncomingMessage]:
        """The raised events buffered (up to ``batch_size``), as soon as there are some; call
        ``events_done`` once they are processed."""
        while not self._events:
            self._events_wake.clear()
            await self._events_wake.wait()
        self._events_taken = True
        count = min(len(self._events), self._batch_size)
        return [self._events.popleft() for _ in range(count)]

    def events_done(self) -> None:
        """The events ``next_events`` gave are processed: other batches may be taken again,
        unless more events have arrived meanwhile."""
        self._events_taken = False
        if not self._events:
            self._events_idle.set()
            self._wake.set()

    async def next_batch(self) -> list[BatchItem]:
        """Due messages first, deliveries once they need not wait; when both are ready, they
        take turns. Neither while a raised event is buffered or being processed."""
        while True:
            source: deque[AbstractIncomingMessage] | deque[OrchestratorMessage] | None = None
            deliveries_ready = bool(self._deliveries) and not self._deliveries_wait()
            if not self._events_idle.is_set():
                pass  # the events go first: woken by ``events_done``
            elif self._due and not (self._due_last and deliveries_ready):
                source = self._due
            elif deliveries_ready:
                source = self._deliveries
            if source is not None:
                self._due_last = source is self._due
                self._idle.clear()
                count = min(len(source), self._batch_size)
                return [source.popleft() for _ in range(count)]
            if not self._deliveries and not self._deliveries_wait():
                self._idle.set()
            self._wake.clear()
            await self._wake.wait()

    async def wait_idle(self) -> None:
        """Wait until the worker, asking for a batch, finds no delivery buffered and none
        waiting for publishing, and no raised event is buffered or being processed: the
        deliveries both workers took are processed."""
        await self._events_idle.wait()
        await self._idle.wait()
