"""Running activity tasks: consume, run, report the result with a confirm, then acknowledge.

One competing-consumer queue per activity name; ``async def`` activities run on the event
loop, plain functions in a thread pool. If the process dies after the side effect and before
the acknowledgement, the task runs again: activities run at least once, which is why each
receives its idempotency key through ``ActivityContext``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from pydantic import ValidationError

from contracts import (
    ActivityTaskMessage,
    Envelope,
    FailureDetails,
    OrchestratorMessage,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    Topology,
    deterministic_message_id,
)
from contracts.typed import BoundaryError
from contracts.values import to_json_value
from durable.activity import ActivityContext
from durable.app import ActivityDefinition, FunctionApp
from services.common.acks import AckBatcher
from services.common.amqp import OutgoingMessage, Publisher, PublishFailedError, dead_letter

log = structlog.get_logger(__name__)


class ActivityTimeoutError(TimeoutError):
    """The activity ran past its start-to-close time-out (the error type orchestrators see)."""

    def __init__(self, activity: str, timeout_seconds: float) -> None:
        super().__init__(
            f"{activity} timed out: not finished {timeout_seconds:g} s after it started"
        )


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
        self._channels: list[AbstractChannel] = []
        self._consumers: list[tuple[Any, str]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._acks = AckBatcher()

    async def attach(self, connection: AbstractConnection) -> None:
        """Consume every activity queue on a (new) connection."""
        for name in self._functions.activities:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self._prefetch)
            queue = await channel.get_queue(self._topology.activity_queue(name), ensure=False)
            tag = await queue.consume(functools.partial(self._on_delivery, name))
            self._channels.append(channel)
            self._consumers.append((queue, tag))

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
        queue_name = self._topology.activity_queue(queue_activity)
        try:
            message = ActivityTaskMessage.model_validate_json(delivery.body)
        except ValidationError as error:
            await self._dead_letter(queue_name, delivery, f"invalid message: {error}")
            return
        definition = self._functions.activities.get(message.body.name)
        if definition is None or message.body.name != queue_activity:
            await self._dead_letter(
                queue_name,
                delivery,
                f"activity {message.body.name!r} does not belong on {queue_name}",
            )
            return
        with structlog.contextvars.bound_contextvars(
            instance_id=message.envelope.instance_id,
            message_id=str(message.envelope.message_id),
            correlation_id=message.envelope.correlation_id,
            activity=definition.name,
        ):
            exchange, routing_key = self._topology.orchestrator_route(message.envelope.instance_id)
            try:
                reply = await self._run(definition, message)
                await self._publisher.publish(OutgoingMessage.of(reply, exchange, routing_key))
            except PublishFailedError as error:
                # The result is not safe anywhere: put the task back; it will run again.
                log.warning("activity.result_not_published", error=str(error))
                self._acks.forget(delivery)
                with contextlib.suppress(Exception):
                    await delivery.nack(requeue=True)
                return
            self._acks.ack(delivery)

    async def _run(
        self, definition: ActivityDefinition, message: ActivityTaskMessage
    ) -> OrchestratorMessage:
        envelope, task = message.envelope, message.body
        execution_id = envelope.execution_id or ""
        context = ActivityContext(
            instance_id=envelope.instance_id,
            execution_id=execution_id,
            task_id=task.task_scheduled_id,
            name=task.name,
            attempt=task.attempt,
        )
        event: TaskCompleted | TaskFailed
        if task.timeout_seconds is not None:
            await self._report_started(message)
        try:
            arguments = definition.arguments(task.input, context)
            result = await self._call(definition, arguments, task.timeout_seconds)
            result = definition.checked_output(result)
            output = to_json_value(result, f"the output of activity {task.name!r}")
            event = TaskCompleted(
                timestamp=datetime.now(UTC), task_scheduled_id=task.task_scheduled_id, result=output
            )
            log.debug("activity.completed")
        except Exception as error:
            failure = FailureDetails.from_exception(error)
            if isinstance(error, BoundaryError):
                # A value of the wrong shape will not change on a retry.
                failure = failure.model_copy(update={"is_non_retriable": True})
            event = TaskFailed(
                timestamp=datetime.now(UTC),
                task_scheduled_id=task.task_scheduled_id,
                failure=failure,
            )
            log.info("activity.failed", error=f"{type(error).__name__}: {error}")
        return OrchestratorMessage(
            envelope=Envelope(
                message_id=deterministic_message_id(
                    envelope.instance_id, execution_id, "result", task.task_scheduled_id
                ),
                instance_id=envelope.instance_id,
                execution_id=envelope.execution_id,
                correlation_id=envelope.correlation_id,
                type=event.event_type,
                sent_at=datetime.now(UTC),
            ),
            body=event,
        )

    async def _call(
        self, definition: ActivityDefinition, arguments: dict[str, Any], timeout: float | None
    ) -> Any:
        """Run the function; past ``timeout`` seconds, give up with ``ActivityTimeoutError``.

        An ``async def`` activity is cancelled at the time-out; a plain function cannot be
        stopped, so its thread runs on and its result is discarded.
        """
        running: asyncio.Future[Any]
        if definition.is_async:
            running = asyncio.ensure_future(definition.function(**arguments))
        else:
            call = functools.partial(
                contextvars.copy_context().run, definition.function, **arguments
            )
            running = asyncio.get_running_loop().run_in_executor(self._threads, call)
        if timeout is None:
            return await running
        done, _ = await asyncio.wait({running}, timeout=timeout)
        if not done:
            running.cancel()
            raise ActivityTimeoutError(f"activity {definition.name!r}", timeout)
        return running.result()

    async def _report_started(self, message: ActivityTaskMessage) -> None:
        """Tell the orchestrator the activity's start-to-close clock has started."""
        envelope, task = message.envelope, message.body
        started = OrchestratorMessage(
            envelope=Envelope(
                message_id=deterministic_message_id(
                    envelope.instance_id,
                    envelope.execution_id or "",
                    "started",
                    task.task_scheduled_id,
                ),
                instance_id=envelope.instance_id,
                execution_id=envelope.execution_id,
                correlation_id=envelope.correlation_id,
                type="TaskStarted",
                sent_at=datetime.now(UTC),
            ),
            body=TaskStarted(timestamp=datetime.now(UTC), task_scheduled_id=task.task_scheduled_id),
        )
        exchange, routing_key = self._topology.orchestrator_route(envelope.instance_id)
        await self._publisher.publish(OutgoingMessage.of(started, exchange, routing_key))

    async def _dead_letter(
        self, queue_name: str, delivery: AbstractIncomingMessage, reason: str
    ) -> None:
        self._acks.forget(delivery)
        try:
            await dead_letter(self._publisher, self._topology, queue_name, delivery, reason)
        except PublishFailedError:
            with contextlib.suppress(Exception):
                await delivery.nack(requeue=True)
