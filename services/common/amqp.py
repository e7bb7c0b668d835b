"""RabbitMQ adapters (aio-pika): connecting, declaring the topology, publishing with confirms.

Conventions, all services alike: robust connections, separate connections for publishing and
consuming, one channel per consumer, every publish persistent, mandatory and confirmed, and
every delivery settled explicitly (ack after the work is durable, reject/requeue otherwise).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from pydantic import BaseModel

from contracts.topology import BindingSpec, QueueSpec, Topology

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_SECONDS = 15.0


class PublishFailedError(Exception):
    """The broker did not confirm a publish (nack, unroutable, timeout or lost connection)."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to publish: where it goes and its JSON body."""

    exchange: str
    routing_key: str
    message_id: str
    correlation_id: str
    message_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, model: BaseModel, exchange: str, routing_key: str) -> OutgoingMessage:
        """Encode a contracts message (anything with an ``envelope``)."""
        envelope = model.envelope  # type: ignore[attr-defined]
        return cls(
            exchange=exchange,
            routing_key=routing_key,
            message_id=str(envelope.message_id),
            correlation_id=envelope.correlation_id,
            message_type=envelope.type,
            body=model.model_dump_json().encode(),
        )


async def connect(amqp_url: str, connection_name: str) -> AbstractRobustConnection:
    """A robust connection that re-establishes itself and its channels after a failure."""
    return await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": connection_name}
    )


async def declare(
    channel: AbstractChannel,
    topology: Topology,
    queues: Iterable[QueueSpec] = (),
    bindings: Iterable[BindingSpec] = (),
) -> None:
    """Declare the exchanges, then ``queues`` and ``bindings`` (all idempotent)."""
    for spec in topology.exchanges():
        await channel.declare_exchange(spec.name, spec.type, durable=True)
    for queue in queues:
        await channel.declare_queue(queue.name, durable=True, arguments=dict(queue.arguments))
    for binding in bindings:
        queue_ = await channel.get_queue(binding.queue, ensure=False)
        await queue_.bind(binding.exchange, binding.routing_key)


async def declare_orchestrator_queues(channel: AbstractChannel, topology: Topology) -> None:
    queues, bindings = topology.orchestrator_declarations()
    await declare(channel, topology, queues, bindings)


async def declare_delay_queues(channel: AbstractChannel, topology: Topology) -> None:
    """The durable-timer cascade: 28 level exchanges and queues, and the delivery exchange."""
    exchanges, queues, bindings, exchange_bindings = topology.delay_declarations()
    for spec in exchanges:
        await channel.declare_exchange(spec.name, spec.type, durable=True)
    await declare(channel, topology, queues, bindings)
    for link in exchange_bindings:
        destination = await channel.get_exchange(link.destination, ensure=False)
        await destination.bind(link.source, link.routing_key)


async def declare_activity_queues(
    channel: AbstractChannel, topology: Topology, activity_names: Iterable[str]
) -> None:
    for name in activity_names:
        queues, bindings = topology.activity_declarations(name)
        await declare(channel, topology, queues, bindings)


class Publisher:
    """Publishes with confirms on its own connection.

    Activity queues are declared on first use, so a task for an activity whose workers have not
    started yet waits in its queue instead of being returned as unroutable.
    """

    def __init__(self, connection: AbstractRobustConnection, topology: Topology) -> None:
        self._connection = connection
        self._topology = topology
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared_activities: set[str] = set()
        self._declare_lock = asyncio.Lock()

    @classmethod
    async def open(cls, amqp_url: str, topology: Topology, connection_name: str) -> Publisher:
        publisher = cls(await connect(amqp_url, connection_name), topology)
        await publisher.start()
        return publisher

    async def start(self) -> None:
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_orchestrator_queues(self._channel, self._topology)
        await declare_delay_queues(self._channel, self._topology)
        for spec in self._topology.exchanges():
            self._exchanges[spec.name] = await self._channel.get_exchange(spec.name, ensure=False)
        entry = self._topology.delay_entry_exchange
        self._exchanges[entry] = await self._channel.get_exchange(entry, ensure=False)

    async def close(self) -> None:
        await self._connection.close()

    async def publish(
        self, message: OutgoingMessage, *, timeout: float = PUBLISH_TIMEOUT_SECONDS
    ) -> None:
        """Publish and wait for the broker's confirm; raise ``PublishFailedError`` otherwise."""
        if message.exchange == self._topology.activities_exchange:
            await self._ensure_activity_queue(message.routing_key)
        exchange = self._exchanges.get(message.exchange)
        if exchange is None:
            raise PublishFailedError(f"unknown exchange {message.exchange!r}")
        amqp_message = aio_pika.Message(
            message.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.message_type,
            headers=dict(message.headers) or None,
        )
        try:
            await exchange.publish(
                amqp_message, message.routing_key, mandatory=True, timeout=timeout
            )
        except Exception as error:
            raise PublishFailedError(
                f"publish of {message.message_type} {message.message_id} to "
                f"{message.exchange}/{message.routing_key} was not confirmed: {error!r}"
            ) from error

    async def publish_many(self, messages: Iterable[OutgoingMessage]) -> None:
        """Publish concurrently (many confirms in flight); raise if any is not confirmed."""
        results = await asyncio.gather(
            *(self.publish(message) for message in messages), return_exceptions=True
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    async def _ensure_activity_queue(self, activity_name: str) -> None:
        if activity_name in self._declared_activities:
            return
        async with self._declare_lock:
            if activity_name in self._declared_activities:
                return
            assert self._channel is not None
            await declare_activity_queues(self._channel, self._topology, [activity_name])
            self._declared_activities.add(activity_name)


async def dead_letter(
    publisher: Publisher,
    topology: Topology,
    source_queue: str,
    delivery: AbstractIncomingMessage,
    reason: str,
) -> None:
    """Move an unprocessable delivery to ``<source_queue>.dlq`` with the reason, then ack it.

    Used for messages that can never succeed (bad JSON, schema violations): retrying them
    would only block the queue.
    """
    dlq = topology.dead_letter_queue(source_queue)
    headers = {
        "x-dead-letter-reason": reason[:4000],
        "x-original-queue": source_queue,
        "x-original-routing-key": delivery.routing_key or "",
        "x-original-exchange": delivery.exchange or "",
    }
    await publisher.publish(
        OutgoingMessage(
            exchange=topology.dead_letter_exchange,
            routing_key=dlq,
            message_id=delivery.message_id or "",
            correlation_id=delivery.correlation_id or "",
            message_type=delivery.type or "",
            body=delivery.body,
            headers=headers,
        )
    )
    await delivery.ack()
    log.warning("message.dead_lettered", queue=source_queue, reason=reason[:300])
