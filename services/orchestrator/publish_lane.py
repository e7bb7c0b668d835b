"""The ordered lane in which a partition's committed batches are published, then acknowledged.

A batch is decided and committed by the partition's worker; publishing what it sends and then
acknowledging its deliveries runs in a task of its own, chained after the batch before it, so
the worker can go on with what does not wait for publishing (timer fires coming due, local
activities' results), and a batch that publishes thousands of messages (a fan-out, many
timers) does not make them late. A batch's deliveries are acknowledged once its messages are
published, or left in the outbox for the sweeper (ADR 4), and the chain keeps that true of
one ``multiple`` ack per batch: it never covers an earlier batch's deliveries before that
batch's messages are confirmed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from aio_pika.abc import AbstractIncomingMessage
from structlog.typing import FilteringBoundLogger

from durable.dead_lettering import DeadLetter
from durable.store.outbox import OutboxRecord
from services.orchestrator.acknowledgements import Acknowledgements
from services.orchestrator.dead_letters import PartitionDeadLetters
from services.orchestrator.relay import OutboxRelay


class PublishLane:
    """Publishes committed batches and acknowledges their deliveries, one batch after another.

    ``on_done`` is called each time a batch's task ends, so that what waits for the lane to be
    free (``busy``) looks again.
    """

    def __init__(
        self,
        relay: OutboxRelay,
        dead_letters: PartitionDeadLetters,
        acks: Acknowledgements,
        on_done: Callable[[], None],
        log: FilteringBoundLogger,
    ) -> None:
        self._relay = relay
        self._dead_letters = dead_letters
        self._acks = acks
        self._on_done = on_done
        self._log = log
        # Publish-and-acknowledge tasks of committed batches, oldest first.
        self._tasks: deque[asyncio.Task[None]] = deque()

    @property
    def busy(self) -> bool:
        """Whether a batch is still being published or acknowledged."""
        return bool(self._tasks)

    def publish(
        self,
        records: Sequence[OutboxRecord],
        deliveries: list[AbstractIncomingMessage],
        letters: dict[AbstractIncomingMessage, list[DeadLetter]],
        *,
        in_order: bool = True,
    ) -> None:
        """Publish a committed batch's messages and dead ``letters``, then acknowledge its
        deliveries, after the batches committed before it, in a task of its own; one by one
        when the batch was taken ahead of earlier deliveries (not ``in_order``)."""
        if not records and not deliveries:
            return  # held fires coming due: nothing to send or settle
        previous = self._tasks[-1] if self._tasks else None
        task = asyncio.create_task(
            self._publish_after(previous, records, deliveries, letters, in_order)
        )
        self._tasks.append(task)
        task.add_done_callback(self._published)

    async def wait(self, timeout: float) -> None:
        """Wait, at most ``timeout`` seconds, for the batches in the lane."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    def _published(self, task: asyncio.Task[None]) -> None:
        self._tasks.remove(task)
        self._on_done()

    async def _publish_after(
        self,
        previous: asyncio.Task[None] | None,
        records: Sequence[OutboxRecord],
        deliveries: list[AbstractIncomingMessage],
        letters: dict[AbstractIncomingMessage, list[DeadLetter]],
        in_order: bool,
    ) -> None:
        if previous is not None:
            # In order: one ``multiple`` ack must not cover an earlier batch's deliveries
            # before that batch's messages are confirmed.
            await asyncio.wait({previous})
        try:
            # Rows that cannot be published stay in the outbox for the relay's sweeper.
            await self._relay.publish_committed(records)
            # A delivery whose dead letter is not confirmed goes back to the queue, and before
            # the ``multiple`` ack, which must then not name it, nor cover it.
            requeued = await self._dead_letters.send(letters)
            acked = [d for d in deliveries if d not in requeued]
            await self._acks.ack_batch(acked, in_order=in_order)
        except Exception:
            self._log.exception("batch.publish_failed", size=len(records))
