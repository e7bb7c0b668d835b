"""Running activity tasks: consume, run, report the result with a confirm, then acknowledge.

One competing-consumer queue per activity name; a delivery carries one task or a batch of
them (ADR 17), acknowledged once the result of every one is confirmed (a batch's invalid
tasks, and those for another activity, are dead-lettered alone: ADR 21). ``async def``
activities run on the event loop, plain functions in a thread pool
(``services.common.activity_runner``). If the process dies after the side effect and before
the acknowledgement, the task runs again: activities run at least once, which is why each
receives its idempotency key through ``ActivityContext``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from contracts import (
    ACTIVITY_TASK_BATCH,
    ActivityTaskBatch,
    ActivityTaskMessage,
    OrchestratorMessage,
    Topology,
)
from durable.app import ActivityDefinition, FunctionApp
from durable.broker import OutgoingMessage, Publisher, PublishFailedError
from durable.dead_lettering import dead_letter, publish_dead_letters
from services.activities.results import RESULT_PATIENCE_SECONDS, ResultSender
from services.common.acks import AckBatcher
from services.common.activity_runner import ActivityRunner, log_context, runs_in_batches
from services.common.carriers import CarrierError, InvalidElement, Unpacked, unpack
from services.common.consuming import ChannelWatch, consuming_channel

log = structlog.get_logger(__name__)

# How long a batch's first result waits for the results of the rest of its batch.
_RESULTS_LINGER_SECONDS = 0.002


class ActivityWorker:
    def __init__(
        self,
        functions: FunctionApp,
        publisher: Publisher,
        topology: Topology,
        *,
        prefetch: int,
        threads: int,
    ) -> None:
        self._functions = functions
        self._publisher = publisher
        self._topology = topology
        self._prefetch = prefetch
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="activity")
        self._runner = ActivityRunner(self._threads, self._report_started)
        self._channels: list[AbstractChannel] = []
        self._consumers: list[tuple[Any, str]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._acks = AckBatcher()
        self._results = ResultSender(publisher, topology)
        # Tasks running per activity: a batch counts as one delivery against the prefetch,
        # so its tasks take their turns here.
        self._slots = {name: asyncio.Semaphore(prefetch) for name in functions.activities}

    async def attach(
        self, connection: AbstractConnection, watch: ChannelWatch | None = None
    ) -> None:
        """Consume every activity queue on a (new) connection; ``watch`` each channel
        (``ConnectionSupervisor.watch``)."""
        for name in self._functions.activities:
            channel = await consuming_channel(connection, self._prefetch, watch)
            queue = await channel.get_queue(self._topology.activity_queue(name), ensure=False)
            tag = await queue.consume(functools.partial(self._on_delivery, name))
            self._channels.append(channel)
            self._consumers.append((queue, tag))

    def unconsumed(self) -> list[str]:
        """The activities whose queue this worker takes no tasks from now."""
        consumed = {queue.name for queue, _ in self._consumers}
        return [
            name
            for name in self._functions.activities
            if self._topology.activity_queue(name) not in consumed
        ]

    def detach(self) -> None:
        """The connection is gone; tasks running now finish, but their acks are void and the
        broker redelivers them (activities run at least once)."""
        self._channels.clear()
        self._consumers.clear()
        self._acks.clear()

    async def stop(self, timeout: float) -> None:
        """Stop taking tasks, give running ones ``timeout`` to finish, requeue the rest."""
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)
        await self._acks.drain()
        for channel in self._channels:
            with contextlib.suppress(Exception):
                await channel.close()
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def _on_delivery(self, queue_activity: str, delivery: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        self._acks.received(delivery)
        messages = await self._tasks(queue_activity, delivery)
        if messages is None:
            return
        if not messages:
            self._acks.ack(delivery)  # a carrier of invalid tasks only, dead-lettered
            return
        definition = self._functions.activities[queue_activity]
        if len(messages) > 1 and delivery.redelivered:
            # A batch that comes back may hold a task that brought a worker down: its tasks
            # go back to the queue one by one, so such a task fails alone.
            await self._unbatch(delivery, messages)
            return
        if await self._run_all(definition, messages):
            self._acks.ack(delivery)
        else:
            # A result is not safe anywhere: put the task (the batch) back; it runs again.
            await self._acks.settle_alone(delivery, _requeue(delivery))

    async def _tasks(
        self, queue_activity: str, delivery: AbstractIncomingMessage
    ) -> list[ActivityTaskMessage] | None:
        """The tasks ``delivery`` carries for the queue's activity; in a carrier, each
        invalid task and each for another activity is dead-lettered alone (ADR 21). None
        when the delivery was settled instead: dead-lettered whole, or requeued because a
        dead letter was not confirmed."""
        queue_name = self._topology.activity_queue(queue_activity)
        carried = delivery.type == ACTIVITY_TASK_BATCH
        try:
            if carried:
                unpacked = unpack(delivery.body, ActivityTaskBatch, ActivityTaskMessage)
            else:
                unpacked = Unpacked(
                    [ActivityTaskMessage.model_validate_json(delivery.body)], [0], []
                )
        except (CarrierError, ValidationError) as error:
            await self._dead_letter(queue_name, delivery, f"invalid message: {error}")
            return None
        strays = [
            InvalidElement.of(index, task, _misplaced(task.body.name, queue_name))
            for index, task in zip(unpacked.indices, unpacked.messages, strict=True)
            if task.body.name != queue_activity
        ]
        if strays and not carried:
            await self._dead_letter(queue_name, delivery, strays[0].problem)
            return None
        if unpacked.invalid or strays:
            invalid = sorted(unpacked.invalid + strays, key=lambda element: element.index)
            letters = [element.dead_letter(delivery.message_id) for element in invalid]
            try:
                await publish_dead_letters(
                    self._publisher, self._topology, queue_name, delivery, letters
                )
            except PublishFailedError:
                await self._acks.settle_alone(delivery, _requeue(delivery))
                return None
        return [task for task in unpacked.messages if task.body.name == queue_activity]

    async def _run_all(
        self, definition: ActivityDefinition, messages: list[ActivityTaskMessage]
    ) -> bool:
        """Run a delivery's tasks and report their results; whether all are confirmed.

        A batch's results go back together: those finished when the first is, and those
        that finish within ``_RESULTS_LINGER_SECONDS`` after it, in one message; each later
        one as soon as it is done (with whatever else finishes in that turn of the loop).
        """
        if len(messages) == 1:
            return await self._report([await self._run(definition, messages[0])])
        runs: list[asyncio.Future[OrchestratorMessage]]
        if all(runs_in_batches(definition, m) for m in messages):
            runs = self._runner.start_batch(definition, messages, self._slots[definition.name])
        else:
            runs = [asyncio.ensure_future(self._run(definition, m)) for m in messages]
        done, pending = await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            more, pending = await asyncio.wait(pending, timeout=_RESULTS_LINGER_SECONDS)
            done |= more

        async def report_when_done(run: asyncio.Future[OrchestratorMessage]) -> bool:
            return await self._report([await run])

        reported = await asyncio.gather(
            self._report([run.result() for run in done]),
            *(report_when_done(run) for run in pending),
        )
        return all(reported)

    async def _run(
        self, definition: ActivityDefinition, message: ActivityTaskMessage
    ) -> OrchestratorMessage:
        """Run one task; its result."""
        with structlog.contextvars.bound_contextvars(**log_context(definition, message)):
            async with self._slots[definition.name]:
                return await self._runner.run(definition, message)

    async def _report(self, replies: list[OrchestratorMessage]) -> bool:
        """Send results (together, when they are for one partition); whether all are safe."""
        try:
            await asyncio.gather(*(self._results.send(reply) for reply in replies))
        except PublishFailedError as error:
            log.warning("activity.result_not_published", error=str(error), count=len(replies))
            return False
        return True

    async def _unbatch(
        self, delivery: AbstractIncomingMessage, messages: list[ActivityTaskMessage]
    ) -> None:
        exchange, routing_key = self._topology.activity_route(messages[0].body.name)
        log.warning("activity.unbatching", tasks=len(messages), routing_key=routing_key)
        try:
            await self._publisher.publish_many(
                (OutgoingMessage.of(m, exchange, routing_key) for m in messages),
                within=RESULT_PATIENCE_SECONDS,
            )
        except PublishFailedError:
            await self._acks.settle_alone(delivery, _requeue(delivery))
            return
        self._acks.ack(delivery)

    async def _report_started(self, started: OrchestratorMessage) -> None:
        """Tell the orchestrator the activity's start-to-close clock has started."""
        exchange, routing_key = self._topology.orchestrator_route(started.envelope.instance_id)
        await self._publisher.publish(OutgoingMessage.of(started, exchange, routing_key))

    async def _dead_letter(
        self, queue_name: str, delivery: AbstractIncomingMessage, reason: str
    ) -> None:
        async def settle() -> None:
            try:
                await dead_letter(self._publisher, self._topology, queue_name, delivery, reason)
            except PublishFailedError:
                await _requeue(delivery)

        await self._acks.settle_alone(delivery, settle())


async def _requeue(delivery: AbstractIncomingMessage) -> None:
    """Put a delivery back in its queue (a closed channel needs nothing: the broker redelivers)."""
    with contextlib.suppress(Exception):
        await delivery.nack(requeue=True)


def _misplaced(activity: str, queue_name: str) -> str:
    return f"activity {activity!r} does not belong on {queue_name}"
