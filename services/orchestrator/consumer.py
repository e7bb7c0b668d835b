"""Consuming one partition queue in batches.

Deliveries are buffered as they arrive; a worker takes everything buffered (up to
``batch_size``) as one batch, so under load many messages share one transaction and one
round of confirms, and when idle a single message goes through at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import UTC, datetime

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pydantic import ValidationError

from contracts import OrchestratorMessage, TimerFired, Topology
from services.common.amqp import Publisher, PublishFailedError, dead_letter
from services.common.db import AmbiguousCommitError, ConcurrencyError
from services.common.outbox import OutboxRecord
from services.orchestrator.dispatch import delayed
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.relay import OutboxRelay

log = structlog.get_logger(__name__)

_CONFLICT_RETRIES = 3
# Fires leave the cascade one to two seconds early (dispatch.ARRIVE_EARLY_SECONDS); earlier
# than this means the timer is longer than the cascade's range, or a clock is off.
_REDELAY_AFTER_SECONDS = 3.0
_FAILURE_BACKOFF_SECONDS = 0.5


class PartitionConsumer:
    def __init__(
        self,
        partition: int,
        handler: OrchestrationHandler,
        relay: OutboxRelay,
        publisher: Publisher,
        topology: Topology,
        *,
        batch_size: int,
        prefetch: int,
    ) -> None:
        self.partition = partition
        self.queue_name = topology.partition_queue(partition)
        self._handler = handler
        self._relay = relay
        self._publisher = publisher
        self._topology = topology
        self._batch_size = batch_size
        self._prefetch = prefetch
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._worker: asyncio.Task[None] | None = None
        self._held: set[AbstractIncomingMessage] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._log = log.bind(partition=partition)

    def start_worker(self) -> None:
        """Start processing what arrives (once; it outlives reconnections)."""
        self._worker = asyncio.create_task(self._run(), name=f"partition-{self.partition}")

    async def attach(self, connection: AbstractConnection) -> None:
        """Consume the partition queue on a (new) connection."""
        self._channel = await connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._channel.get_queue(self.queue_name, ensure=False)
        self._consumer_tag = await self._queue.consume(self._inbox.put)

    def detach(self) -> None:
        """The connection is gone: its unprocessed deliveries are void (the broker redelivers
        them), so they are dropped rather than processed and acknowledged on a dead channel."""
        self._channel = self._queue = None
        self._consumer_tag = None
        self._held.clear()
        while not self._inbox.empty():
            self._inbox.get_nowait()

    async def stop(self, timeout: float) -> None:
        """Stop taking deliveries, let the batch in flight finish, return the rest to the queue."""
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                await self._queue.cancel(self._consumer_tag)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        if self._channel is not None:
            # Unacknowledged deliveries (buffered, not yet processed) go back to the queue.
            with contextlib.suppress(Exception):
                await self._channel.close()

    async def _run(self) -> None:
        while True:
            first = await self._inbox.get()
            self._idle.clear()
            batch = [first]
            while len(batch) < self._batch_size and not self._inbox.empty():
                batch.append(self._inbox.get_nowait())
            self._held.difference_update(batch)
            try:
                await self._process(batch)
            except Exception:
                self._log.exception("batch.unexpected_error", size=len(batch))
            finally:
                if self._inbox.empty():
                    self._idle.set()

    async def _process(self, deliveries: list[AbstractIncomingMessage]) -> None:
        parsed: list[tuple[AbstractIncomingMessage, OrchestratorMessage]] = []
        for delivery in deliveries:
            try:
                parsed.append((delivery, OrchestratorMessage.model_validate_json(delivery.body)))
            except ValidationError as error:
                await self._reject_invalid(delivery, f"invalid message: {error}")
        parsed = [(d, m) for d, m in parsed if not await self._held_until_due(d, m)]
        if not parsed:
            return
        try:
            records = await self._handle([message for _, message in parsed])
        except AmbiguousCommitError as error:
            self._log.warning("batch.commit_ambiguous", size=len(parsed), error=str(error))
            await self._requeue([d for d, _ in parsed])
            return
        except Exception:
            if len(parsed) == 1:
                self._log.exception(
                    "message.failed", message_id=str(parsed[0][1].envelope.message_id)
                )
                await asyncio.sleep(_FAILURE_BACKOFF_SECONDS)
                await self._requeue([parsed[0][0]])
                return
            # Isolate whichever message breaks the batch: the others go through one by one,
            # and only the culprit keeps being redelivered until the delivery limit
            # dead-letters it.
            self._log.warning("batch.failed_splitting", size=len(parsed))
            for delivery, _ in parsed:
                await self._process([delivery])
            return
        await self._relay.publish_committed(records)
        await self._acknowledge([delivery for delivery, _ in parsed])

    async def _held_until_due(
        self, delivery: AbstractIncomingMessage, message: OrchestratorMessage
    ) -> bool:
        """Keep a timer fire that arrived early out of the batch until it is due.

        The delay cascade delivers fires one to two seconds early; they wait here
        (unacknowledged: a crash returns them to the queue) and rejoin the partition's inbox at
        their due time. A fire that is early by more than a few seconds (a timer longer than
        the cascade's range) is sent through the cascade again.
        """
        if not isinstance(message.body, TimerFired):
            return False
        now = datetime.now(UTC)
        early_by = (message.body.fire_at - now).total_seconds()
        if early_by <= 0:
            return False
        if early_by > _REDELAY_AFTER_SECONDS:
            try:
                await self._publisher.publish(delayed(self._topology, message, now))
            except PublishFailedError:
                await self._requeue([delivery])
                return True
            await self._settle(delivery.ack())
            return True
        # Held (unacknowledged) until it is taken into a batch again; see _acknowledge.
        self._held.add(delivery)
        asyncio.get_running_loop().call_later(early_by, self._inbox.put_nowait, delivery)
        return True

    async def _acknowledge(self, deliveries: list[AbstractIncomingMessage]) -> None:
        """Acknowledge a processed batch: one ``multiple`` ack per channel.

        Deliveries reach the batch in the order the channel numbered them, and every one
        before them is settled already, except fires held until due (waiting, or back in the
        inbox and not yet taken): while one is, each delivery is acknowledged on its own, so
        as not to acknowledge the held one with them.
        """
        if self._held:
            for delivery in deliveries:
                await self._settle(delivery.ack())
            return
        last: dict[int, AbstractIncomingMessage] = {}
        for delivery in deliveries:
            key = id(delivery.channel)
            if key not in last or (delivery.delivery_tag or 0) > (last[key].delivery_tag or 0):
                last[key] = delivery
        for delivery in last.values():
            await self._settle(delivery.ack(multiple=True))

    async def _handle(self, messages: list[OrchestratorMessage]) -> list[OutboxRecord]:
        for attempt in range(1, _CONFLICT_RETRIES + 1):
            try:
                return await self._handler.handle(messages)
            except ConcurrencyError:
                # Another writer won; our cached state is gone, so the retry reloads.
                self._log.info("batch.conflict_retry", attempt=attempt)
                if attempt == _CONFLICT_RETRIES:
                    raise
        raise AssertionError("unreachable")

    async def _reject_invalid(self, delivery: AbstractIncomingMessage, reason: str) -> None:
        try:
            await dead_letter(self._publisher, self._topology, self.queue_name, delivery, reason)
        except PublishFailedError:
            await self._requeue([delivery])

    async def _requeue(self, deliveries: list[AbstractIncomingMessage]) -> None:
        for delivery in deliveries:
            await self._settle(delivery.nack(requeue=True))

    async def _settle(self, settlement: Awaitable[None]) -> None:
        # After a reconnect, old delivery tags are void; the broker redelivers those messages
        # anyway, and the redelivery is deduplicated, so a failed ack needs no further action.
        try:
            await settlement
        except Exception as error:
            self._log.debug("delivery.settle_failed", error=repr(error))
