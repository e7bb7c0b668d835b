"""Consuming one partition queue in batches: the worker, and the pieces it coordinates.

The worker takes what arrived as batches (``inbox``), and an express worker the raised events,
beside the batch in flight (ADR 39); it sets aside timer fires that arrived early
(``early_fires``), runs each batch through the handler's transaction, and hands what the commit
sends to the publish lane (``publish_lane``), which publishes it and then acknowledges the
batch's deliveries (``acknowledgements``), one batch after another. The local activities a
batch schedules run here after its commit (``local_runs``). What is not a valid message is
dead-lettered (``dead_letters``); a batch that fails is retried in parts, until only the
message that breaks it is redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pydantic import ValidationError

from contracts import ORCHESTRATOR_MESSAGE_BATCH, OrchestratorMessage, Topology
from durable.broker import Publisher, PublishFailedError
from durable.store.errors import (
    AmbiguousCommitError,
    ConcurrencyError,
    LeaseLostError,
    is_unreachable,
)
from durable.store.leases import Lease
from services.common import metrics
from services.common.consuming import ChannelWatch, consuming_channel
from services.orchestrator.acknowledgements import Acknowledgements
from services.orchestrator.dead_letters import PartitionDeadLetters
from services.orchestrator.dispatch import direct
from services.orchestrator.early_fires import EarlyFires
from services.orchestrator.handler import Committed, OrchestrationHandler
from services.orchestrator.inbox import BatchItem, PartitionInbox, is_raised_event
from services.orchestrator.local import LocalActivities
from services.orchestrator.local_runs import LocalRuns
from services.orchestrator.publish_lane import PublishLane
from services.orchestrator.relay import OutboxRelay
from services.orchestrator.turns import NO_TURNS, Turns

log = structlog.get_logger(__name__)

_CONFLICT_RETRIES = 3
_FAILURE_BACKOFF_SECONDS = 0.5
_UNREACHABLE_RETRY_SECONDS = 0.5
_BROKER_CALL_SECONDS = 5.0
"""The longest a stop waits for the broker to cancel the consumer or close the channel: a
connection may have died without the process noticing yet (it was paused, say)."""


class PartitionConsumer:
    """Consumes one partition queue: attached to each new connection, its worker processes
    what arrives, in batches, until stopped."""

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
        local: LocalActivities | None = None,
        lease: Lease | None = None,
        on_lease_lost: Callable[[int], None] | None = None,
        turns: Turns = NO_TURNS,
    ) -> None:
        self.partition = partition
        self.lease = lease
        self._on_lease_lost = on_lease_lost
        self.queue_name = topology.partition_queue(partition)
        self._handler = handler
        self._publisher = publisher
        self._topology = topology
        self._prefetch = prefetch
        self._turns = turns
        self._log = log.bind(partition=partition)
        self._acks = Acknowledgements(self._log)
        self._dead_letters = PartitionDeadLetters(
            publisher, topology, self.queue_name, self._acks.settle
        )
        # Deliveries wait for the lane; the lane wakes the inbox when a batch leaves it.
        self._inbox = PartitionInbox(batch_size, lambda: self._lane.busy)
        self._lane = PublishLane(relay, self._dead_letters, self._acks, self._inbox.wake, self._log)
        self._early_fires = EarlyFires(publisher, topology, self._acks, self._inbox.put_due)
        self._local_runs = (
            None if local is None else LocalRuns(local, relay, self._inbox.put_due, self._log)
        )
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._worker: asyncio.Task[None] | None = None
        self._express: asyncio.Task[None] | None = None
        # The instances of the worker's batch in flight (None: not known yet, being parsed);
        # the express worker waits while its events' instances are among them.
        self._in_flight: set[str] | None = set()
        self._in_flight_changed = asyncio.Condition()

    @property
    def consuming(self) -> bool:
        """Whether it takes deliveries now: attached, on a channel that is open."""
        channel = self._channel
        return self._consumer_tag is not None and channel is not None and not channel.is_closed

    def start_worker(self) -> None:
        """Start processing what arrives (once; it outlives reconnections)."""
        self._worker = asyncio.create_task(self._run(), name=f"partition-{self.partition}")
        self._express = asyncio.create_task(
            self._run_express(), name=f"partition-{self.partition}-events"
        )

    async def attach(
        self, connection: AbstractConnection, watch: ChannelWatch | None = None
    ) -> None:
        """Consume the partition queue on a (new) connection; ``watch`` the channel
        (``ConnectionSupervisor.watch``)."""
        self._channel = await consuming_channel(connection, self._prefetch, watch)
        self._queue = await self._channel.get_queue(self.queue_name, ensure=False)
        self._consumer_tag = await self._queue.consume(self._receive)

    async def _receive(self, delivery: AbstractIncomingMessage) -> None:
        express = is_raised_event(delivery) and self._runs_instance_of(delivery)
        self._inbox.put_delivery(delivery, express=express)
        if express:
            self._turns.urgent(self.partition, True)

    def _runs_instance_of(self, delivery: AbstractIncomingMessage) -> bool:
        """Whether the instance ``delivery`` is for runs here already (cached, started): only
        then may its event overtake what arrived before it; an event for an instance whose
        start may still be waiting in the queue goes in its turn (ADR 39)."""
        try:
            message = OrchestratorMessage.model_validate_json(delivery.body)
        except ValidationError:
            return False  # dead-lettered in its turn, with the reason
        return self._handler.runs(message.envelope.instance_id)

    def detach(self) -> None:
        """The connection is gone: its unprocessed deliveries are void (the broker redelivers
        them), so they are dropped rather than processed and acknowledged on a dead channel."""
        self._channel = self._queue = None
        self._consumer_tag = None
        self._inbox.clear()
        self._turns.urgent(self.partition, False)
        # Local runs in flight and results not yet recorded: their outbox rows stay, and the
        # relay's sweeper hands those tasks to the activity service.
        if self._local_runs is not None:
            self._local_runs.detach()
        # The partition may go to another process: the fires held here are left to the timer
        # sweeper (their rows are still in Postgres), so this one does not write after it.
        self._early_fires.drop()

    async def stop(self, timeout: float, *, hand_over: bool = True) -> None:
        """Stop taking deliveries, let the batch in flight finish, return the rest to the queue.

        With ``hand_over``, the timer fires held go back to the queue for the next consumer;
        without (the partition was lost: another process owns it), they are dropped and the
        timer sweeper fires them."""
        if self._queue is not None and self._consumer_tag is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_BROKER_CALL_SECONDS):
                    await self._queue.cancel(self._consumer_tag)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._inbox.wait_idle(), timeout)
        await self._lane.wait(timeout)
        if hand_over:
            await self._hand_over_fires()
        else:
            self._early_fires.drop()
        if self._local_runs is not None:
            self._local_runs.cancel()
        for worker in (self._worker, self._express):
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        self._turns.urgent(self.partition, False)
        if self._channel is not None:
            # Unacknowledged deliveries (buffered, not yet processed) go back to the queue.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_BROKER_CALL_SECONDS):
                    await self._channel.close()

    async def _hand_over_fires(self) -> None:
        """Send the fires held back to the partition queue, for whoever consumes it next to
        hold until due; those that cannot be sent are left to the timer sweeper."""
        fires = self._early_fires.hand_over()
        if not fires:
            return
        try:
            await self._publisher.publish_many(direct(self._topology, fire) for fire in fires)
        except Exception as error:
            self._log.warning("timers.hand_over_failed", count=len(fires), error=repr(error))
            return
        self._log.info("timers.handed_over", count=len(fires))

    async def _run(self) -> None:
        while True:
            batch = await self._inbox.next_batch()
            await self._in_flight_now(None)
            try:
                # While an event waits in another partition of the process, give way (ADR 39).
                await self._turns.give_way(self.partition)
                await self._process(batch)
            except Exception:
                self._log.exception("batch.unexpected_error", size=len(batch))
            finally:
                await self._in_flight_now(set())

    async def _run_express(self) -> None:
        """Process raised events as they arrive, beside the batch in flight (ADR 39)."""
        while True:
            events: list[BatchItem] = [*await self._inbox.next_events()]
            try:
                await self._process(events, express=True)
            except Exception:
                self._log.exception("batch.unexpected_error", size=len(events))
            finally:
                self._inbox.events_done()
                self._turns.urgent(self.partition, self._inbox.has_events)

    async def _in_flight_now(self, instances: set[str] | None) -> None:
        async with self._in_flight_changed:
            self._in_flight = instances
            self._in_flight_changed.notify_all()

    async def _after_instances_in_flight(self, instances: set[str]) -> None:
        """Wait until the worker's batch in flight steps none of ``instances``: two batches
        must not step one instance at once."""

        def clear() -> bool:
            return self._in_flight is not None and not instances & self._in_flight

        async with self._in_flight_changed:
            await self._in_flight_changed.wait_for(clear)

    async def _process(self, items: list[BatchItem], *, express: bool = False) -> None:
        parsed, carriers = await self._parse(items)
        parsed = [
            (d, m)
            for d, m in parsed
            # A fire in a batch is held without settling its carrier (nothing sends fires in
            # batches today; the carrier is acknowledged with the batch).
            if not await self._early_fires.held_until_due(None if d in carriers else d, m)
        ]
        deliveries = list(dict.fromkeys([*(d for d, _ in parsed if d is not None), *carriers]))
        # Express events were taken ahead of what arrived before them (ADR 39).
        in_order = not express
        if not parsed:
            self._lane.publish([], deliveries, {}, in_order=in_order)  # invalid carriers only
            return
        instances = {message.envelope.instance_id for _, message in parsed}
        if express:
            await self._after_instances_in_flight(instances)
        elif self._in_flight is None:
            await self._in_flight_now(instances)
        try:
            committed = await self._handle([message for _, message in parsed], express=express)
        except AmbiguousCommitError as error:
            self._log.warning("batch.commit_ambiguous", size=len(parsed), error=str(error))
            metrics.BATCH_FAILURES.labels("ambiguous_commit").inc()
            await self._acks.requeue(deliveries)
            return
        except LeaseLostError as error:
            # Another member owns the partition now: nothing was written, and what this
            # batch took goes back to the queue for it.
            self._log.warning("batch.lease_lost", size=len(parsed), error=str(error))
            metrics.BATCH_FAILURES.labels("lease_lost").inc()
            await self._acks.requeue(deliveries)
            if self._on_lease_lost is not None:
                self._on_lease_lost(self.partition)
            return
        except Exception:
            metrics.BATCH_FAILURES.labels("error").inc()
            if carriers:
                # Whichever message breaks the batch may be in a carrier: its messages go back
                # to the partition one by one, and the rest of the batch is tried again.
                await self._unbatch(carriers)
                rest = [m if d is None else d for d, m in parsed if d not in carriers]
                if rest:
                    await self._process(rest, express=express)
                return
            if len(parsed) == 1:
                message_id = parsed[0][1].envelope.message_id
                self._log.exception("message.failed", message_id=str(message_id))
                if self._local_runs is not None:
                    self._local_runs.not_recorded(message_id)
                await asyncio.sleep(_FAILURE_BACKOFF_SECONDS)
                # A held fire has no delivery to return: the timer sweeper fires it again.
                await self._acks.requeue([d for d, _ in parsed if d is not None])
                return
            # Isolate whichever message breaks the batch: the others go through one by one,
            # and only the culprit keeps being redelivered until the delivery limit
            # dead-letters it.
            self._log.warning("batch.failed_splitting", size=len(parsed))
            for delivery, message in parsed:
                await self._process(
                    [delivery if delivery is not None else message], express=express
                )
            return
        self._early_fires.hold(committed.held_fires)
        records = committed.records
        if self._local_runs is not None:
            self._local_runs.recorded(m for _, m in parsed)
            records = self._local_runs.start(records)
        letters = self._dead_letters.refused(committed, parsed, carriers)
        self._lane.publish(records, deliveries, letters, in_order=in_order)

    async def _parse(
        self, items: list[BatchItem]
    ) -> tuple[
        list[tuple[AbstractIncomingMessage | None, OrchestratorMessage]],
        dict[AbstractIncomingMessage, list[OrchestratorMessage]],
    ]:
        """The batch's messages, each with the delivery that brought it (None for a due fire
        or a local result), and the deliveries that carry several messages (ADR 17), with
        them: those are settled as a whole, after all of their messages are committed. What
        is not a valid message is dead-lettered."""
        parsed: list[tuple[AbstractIncomingMessage | None, OrchestratorMessage]] = []
        carriers: dict[AbstractIncomingMessage, list[OrchestratorMessage]] = {}
        turn = self._turns.turn(self.partition)
        for item in items:
            await turn.pause()  # a carrier holds up to 64 messages to validate
            if isinstance(item, OrchestratorMessage):
                parsed.append((None, item))
            elif item.type == ORCHESTRATOR_MESSAGE_BATCH:
                messages = await self._dead_letters.unpack(item)
                if messages is not None:
                    carriers[item] = messages
                    parsed += [(item, message) for message in messages]
            else:
                try:
                    parsed.append((item, OrchestratorMessage.model_validate_json(item.body)))
                except ValidationError as error:
                    await self._dead_letters.reject(item, f"invalid message: {error}")
        return parsed, carriers

    async def _handle(
        self, messages: list[OrchestratorMessage], *, express: bool = False
    ) -> Committed:
        """Commit ``messages``, waiting while the database cannot be reached.

        An unreachable database (down, failing over) is no message's fault: splitting the
        batch and requeueing its messages one by one would spend their deliveries (the
        broker dead-letters a message at the delivery limit) and log each as failed. The
        batch keeps its deliveries and is tried again until the database is back, or until
        the partition's lease lapses and the consumer is stopped (ADR 27), which returns
        them to the queue once.
        """
        conflicts = 0
        unreachable_since: float | None = None
        while True:
            try:
                committed = await self._handler.handle(
                    messages, self.partition, self.lease, express=express
                )
            except ConcurrencyError:
                # Another writer won; our cached state is gone, so the retry reloads.
                conflicts += 1
                metrics.BATCH_FAILURES.labels("conflict").inc()
                self._log.info("batch.conflict_retry", attempt=conflicts)
                if conflicts == _CONFLICT_RETRIES:
                    raise
                continue
            except Exception as error:
                if not is_unreachable(error):
                    raise
                if unreachable_since is None:
                    unreachable_since = time.monotonic()
                    metrics.STORE_UNREACHABLE.inc()
                    self._log.warning(
                        "batch.store_unreachable", size=len(messages), error=repr(error)
                    )
                await asyncio.sleep(_UNREACHABLE_RETRY_SECONDS)
                continue
            if unreachable_since is not None:
                waited = round(time.monotonic() - unreachable_since, 2)
                self._log.info("batch.store_reachable", size=len(messages), waited=waited)
            return committed

    async def _unbatch(
        self, carriers: dict[AbstractIncomingMessage, list[OrchestratorMessage]]
    ) -> None:
        """Send each message of ``carriers`` back to this partition on its own, then settle
        the carriers, so that a message that cannot be processed is retried, and in the end
        dead-lettered, alone. A carrier whose messages cannot all be sent is requeued."""
        self._log.warning("batch.unbatching", carriers=len(carriers))
        for carrier, messages in carriers.items():
            try:
                await self._publisher.publish_many(direct(self._topology, m) for m in messages)
            except PublishFailedError:
                await self._acks.requeue([carrier])
                continue
            await self._acks.ack(carrier)
