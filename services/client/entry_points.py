"""The broker entry points' consumers: client functions triggered by queue messages.

The deployment's settings name the entry points (``durable.entry_points``, ADR 26); this runs
them, one channel per queue:

- A message is validated against its entry point's model; bad JSON and schema violations go to
  the queue's dead-letter queue with the reason in the ``x-dead-letter-reason`` header,
  without stopping the consumer. So does a message whose publisher (RabbitMQ's validated
  ``user_id``) may not speak for the party it names, when the entry point checks senders.
- ``StartOrchestration``: the orchestration starts with the instance id and input derived
  from the message. A re-sent message finds the instance already there
  (``InstanceExistsError``): it is a duplicate, acknowledged and logged, and starts nothing.
- ``RaiseEvent``: the instance's external event, raised with a message id derived from the
  carrying message's, so a redelivery is recorded once. A message for an instance that has
  ended is acknowledged and logged: there is nothing left to do with it. A message for an
  unknown instance, or for an instance of another orchestrator than the entry point names,
  goes to the dead-letter queue: a wrong id needs a person to look at it.

A delivery is acknowledged only once its effect is durable (the instance row and start message
committed; the event's publish confirmed); after a database or broker failure it is returned
to the queue, and the queue's delivery limit dead-letters a message that keeps failing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pydantic import BaseModel, ValidationError

from contracts import Topology, deterministic_message_id
from contracts.limits import ValueRefusedError
from durable.broker import Publisher, PublishFailedError
from durable.client import (
    DurableClient,
    ExistingInstancePolicy,
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFoundError,
)
from durable.dead_lettering import dead_letter
from durable.declarations import declare
from durable.entry_points import (
    EntryPoint,
    EntryPoints,
    RaiseEvent,
    StartOrchestration,
    correlation_id_of,
    message_key,
)
from services.client.traces import submission_span
from services.common import metrics
from services.common.consuming import ChannelWatch, consuming_channel
from services.common.tracing import traceparent_of

log = structlog.get_logger(__name__)

_RETRY_BACKOFF_SECONDS = 0.5

Handler = Callable[[AbstractIncomingMessage], Awaitable[None]]


class EntryPointConsumers:
    """Consumes every entry point's queue, one channel each.

    Run it under a ``ConnectionSupervisor`` (``attach`` on every new connection, ``detach`` when
    it is lost), as the other services run their consumers (ADR 7).
    """

    def __init__(
        self,
        client: DurableClient,
        publisher: Publisher,
        topology: Topology,
        declared: EntryPoints,
        *,
        prefetch: int = 32,
    ) -> None:
        self._client = client
        self._publisher = publisher
        self._topology = topology
        self._declared = declared
        self._prefetch = prefetch
        self._channels: list[AbstractChannel] = []
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def attach(
        self, connection: AbstractConnection, watch: ChannelWatch | None = None
    ) -> None:
        """Declare the entry points' queues and exchanges (idempotent) and consume on a (new)
        connection; ``watch`` each consuming channel (``ConnectionSupervisor.watch``)."""
        channel = await connection.channel()
        for exchange in self._declared.exchanges:
            name = self._topology.workflow_name(exchange.name)
            await channel.declare_exchange(name, exchange.type, durable=True)
        queue_names = [self._queue_name(entry) for entry in self._declared.entry_points]
        exchanges = self._topology.entry_exchange_declarations(queue_names)
        queues, bindings = self._topology.entry_queue_declarations(queue_names)
        await declare(channel, self._topology, queues, bindings, exchanges)
        await channel.close()
        for entry in self._declared.entry_points:
            channel = await consuming_channel(connection, self._prefetch, watch)
            queue = await channel.get_queue(self._queue_name(entry), ensure=False)
            tag = await queue.consume(self._tracked(self._handler(entry)))
            self._channels.append(channel)
            self._consumers.append((queue, tag))
        log.info("entry_points.attached", queues=queue_names)

    def readiness(self) -> str:
        """``ok`` while every entry point's queue has this service's consumer on an open
        channel, else which queues have none (the client's ``/readyz``)."""
        consumed = {
            queue.name
            for (queue, _), channel in zip(self._consumers, self._channels, strict=True)
            if not channel.is_closed
        }
        missing = [
            name
            for name in (self._queue_name(entry) for entry in self._declared.entry_points)
            if name not in consumed
        ]
        return "ok" if not missing else f"no consumer on the entry points' queues: {missing}"

    def detach(self) -> None:
        """The connection is gone: deliveries in progress can no longer be settled, and the
        broker redelivers them (a duplicate start is refused, a duplicate event dropped)."""
        self._channels.clear()
        self._consumers.clear()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking messages, let those in progress finish; the rest stay in the queues."""
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)
        for channel in self._channels:
            with contextlib.suppress(Exception):
                await channel.close()

    def _queue_name(self, entry: EntryPoint[Any]) -> str:
        return self._topology.workflow_name(entry.queue)

    def _tracked(self, handler: Handler) -> Handler:
        async def run(delivery: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            try:
                await handler(delivery)
            except Exception as error:  # never let one message stop the consumer
                await self._retry_later(delivery, error)

        return run

    def _handler(self, entry: EntryPoint[Any]) -> Handler:
        async def handle(delivery: AbstractIncomingMessage) -> None:
            await self._on_delivery(entry, delivery)

        return handle

    async def _on_delivery(self, entry: EntryPoint[Any], delivery: AbstractIncomingMessage) -> None:
        queue_name = self._queue_name(entry)
        try:
            message = entry.message.model_validate_json(delivery.body)
        except ValidationError as error:
            await self._dead_letter(queue_name, delivery, f"invalid {entry.title}: {error}")
            return
        key = message_key(message, delivery.message_id, delivery.body)
        fields = dict(entry.log_fields(message)) if entry.log_fields is not None else {}
        with structlog.contextvars.bound_contextvars(**{"message_id": key, **fields}):
            if entry.senders is not None:
                refusal = entry.senders.refusal(message, delivery.user_id)
                if refusal is not None:
                    log.warning(entry.logs.sender_refused, user_id=delivery.user_id)
                    await self._dead_letter(queue_name, delivery, refusal)
                    return
            try:
                if isinstance(entry.action, StartOrchestration):
                    await self._start(entry, entry.action, message, delivery)
                else:
                    reason = await self._raise(entry, entry.action, message, key)
                    if reason is not None:
                        await self._dead_letter(queue_name, delivery, reason)
                        return
            except ValueRefusedError as error:  # an id or value that can never be sent
                await self._dead_letter(queue_name, delivery, str(error))
                return
            await _settle(delivery.ack())

    async def _start(
        self,
        entry: EntryPoint[Any],
        action: StartOrchestration[Any],
        message: BaseModel,
        delivery: AbstractIncomingMessage,
    ) -> None:
        instance_id = action.instance_id(message)
        queue = self._queue_name(entry)
        try:
            with submission_span(queue, action.orchestrator, instance_id, delivery) as span:
                await self._client.start(
                    action.orchestrator,
                    instance_id,
                    action.input(message),
                    correlation_id=correlation_id_of(message),
                    # Whatever DF_START_EXISTING says: a re-sent message starts nothing.
                    if_exists=ExistingInstancePolicy.ERROR,
                    traceparent=traceparent_of(span),
                )
        except InstanceExistsError as error:
            log.info(entry.logs.duplicate, instance_id=instance_id, status=error.status.value)
        else:
            log.info(entry.logs.started, instance_id=instance_id, orchestrator=action.orchestrator)
            metrics.CLIENT_STARTS.labels(action.orchestrator, "broker").inc()

    async def _raise(
        self, entry: EntryPoint[Any], action: RaiseEvent[Any], message: BaseModel, key: str
    ) -> str | None:
        """Raise the event; the reason to dead-letter the message instead, if any."""
        instance_id = action.instance_id(message)
        missing = f"no {action.instance_noun} {instance_id!r}: no instance has this id"
        status = await self._client.get_status(instance_id)
        if status is None:
            return missing
        if action.orchestrator is not None and status.name != action.orchestrator:
            return f"instance {instance_id!r} runs {status.name!r}, not {action.orchestrator!r}"
        event_id = deterministic_message_id(instance_id, action.event, key)
        try:
            await self._client.raise_event(
                instance_id, action.event, action.data(message), message_id=event_id
            )
        except InstanceNotFoundError:  # purged since the status read
            return missing
        except InstanceEndedError as error:
            log.info(entry.logs.after_end, instance_id=instance_id, status=error.status.value)
        else:
            log.info(entry.logs.raised, instance_id=instance_id, event_name=action.event)
            metrics.CLIENT_EVENTS_RAISED.labels("broker").inc()
        return None

    # --- settling ----------------------------------------------------------------------------

    async def _dead_letter(
        self, queue_name: str, delivery: AbstractIncomingMessage, reason: str
    ) -> None:
        try:
            await dead_letter(self._publisher, self._topology, queue_name, delivery, reason)
        except PublishFailedError as error:
            await self._retry_later(delivery, error)

    async def _retry_later(self, delivery: AbstractIncomingMessage, error: BaseException) -> None:
        """Return the message to its queue after a pause (the delivery limit bounds retries)."""
        log.warning(
            "entry_point.delivery_failed", error=repr(error), redelivered=delivery.redelivered
        )
        await asyncio.sleep(_RETRY_BACKOFF_SECONDS)
        await _settle(delivery.nack(requeue=True))


async def _settle(settlement: Awaitable[None]) -> None:
    # After a reconnect the delivery tag is void and the broker redelivers the message anyway;
    # a duplicate start is refused and a duplicate event dropped, so nothing else is needed.
    try:
        await settlement
    except Exception as error:
        log.debug("delivery.settle_failed", error=repr(error))
