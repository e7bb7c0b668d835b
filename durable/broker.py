"""RabbitMQ adapters (aio-pika): connecting, declaring the topology, publishing with confirms.

Conventions, all services alike: separate connections for publishing and consuming, each
re-established by our own code when it drops (the publisher on its next publish, consumers by
``services.common.consuming.ConnectionSupervisor``; aio-pika's robust connections were seen to
reconnect without restoring consumers after a broker restart); one channel per consumer; every
publish persistent, mandatory and confirmed; every delivery settled explicitly (ack after the
work is durable, reject/requeue otherwise).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
)
from pydantic import BaseModel

from contracts.limits import MAX_SHORT_STRING_BYTES
from contracts.messages import batch_body
from contracts.topology import Topology
from durable.broker_events import broker_observer
from durable.broker_nodes import connect as connect  # re-exported: where services connect
from durable.broker_nodes import jittered
from durable.declarations import (
    declare_activity_queues,
    declare_delay_queues,
    declare_orchestrator_queues,
)

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_SECONDS = 15.0
RECONNECT_PAUSE_SECONDS = 0.5
_FIRST_RETRY_PAUSE_SECONDS = 0.2
_MOST_RETRY_PAUSE_SECONDS = 2.0
"""The mean pause (jittered) before a publisher whose connection was lost connects again."""
RENEW_AFTER_NACK_SECONDS = 2.0
"""A publisher whose channel the broker nacks opens a new connection, at most this often.

On a three-node RabbitMQ 3.10 cluster, a channel that publishes to a quorum queue while the
queue elects a new leader (its leader's node was killed) can go on being nacked for minutes
after the election, while a new connection to the same node is confirmed at once. Measured in
a node-kill test (now ``tests/fault/test_ha_broker.py``): workers' results were refused for
over two minutes, and 48 to 274 of 400 orchestrations stalled.
"""


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
        """Encode a contracts message (anything with an ``envelope``); its trace context, if
        it has one, is in the AMQP ``traceparent`` header too, for tools (ADR 32)."""
        envelope = model.envelope  # type: ignore[attr-defined]
        traceparent = envelope.traceparent
        return cls(
            exchange=exchange,
            routing_key=routing_key,
            message_id=str(envelope.message_id),
            correlation_id=envelope.correlation_id,
            message_type=envelope.type,
            body=model.model_dump_json().encode(),
            headers={"traceparent": traceparent} if traceparent is not None else {},
        )


def short_string(text: str) -> str:
    """``text`` cut to fit an AMQP short string (255 bytes), on a character boundary.

    For message properties, which are only hints here (consumers read the envelope in the
    body). Everything checked where it enters fits already; this is for what was stored
    before the checks: an outbox row whose correlation id was too long could never be
    published, and its relay retried it every second for good. Published, its message is
    refused by its consumer with the reason, where an operator sees it.
    """
    if text.isascii() and len(text) <= MAX_SHORT_STRING_BYTES:
        return text  # nearly always: decided without encoding it
    encoded = text.encode("utf-8", "replace")  # a lone surrogate becomes "?"
    return encoded[:MAX_SHORT_STRING_BYTES].decode("utf-8", "ignore")


def carrier(messages: Sequence[OutgoingMessage], message_type: str) -> OutgoingMessage:
    """One message carrying ``messages`` (all to one exchange and routing key) as a JSON array
    of their bodies, of type ``message_type`` (ADR 17); its id is derived from the first's, so
    a carrier built again from the same messages has the same id."""
    first = messages[0]
    return OutgoingMessage(
        exchange=first.exchange,
        routing_key=first.routing_key,
        message_id=str(uuid.uuid5(uuid.UUID(first.message_id), f"batch/{len(messages)}")),
        correlation_id=first.correlation_id,
        message_type=message_type,
        body=batch_body([message.body for message in messages]),
    )


def together(
    messages: Sequence[OutgoingMessage], message_type: str, most: int = 64
) -> list[OutgoingMessage]:
    """``messages`` with those for one exchange and routing key carried together, at most
    ``most`` to a carrier, in their order; a message alone is left as it is."""
    size = max(1, most)
    by_route: dict[tuple[str, str], list[OutgoingMessage]] = {}
    for message in messages:
        by_route.setdefault((message.exchange, message.routing_key), []).append(message)
    sent: list[OutgoingMessage] = []
    for group in by_route.values():
        for start in range(0, len(group), size):
            chunk = group[start : start + size]
            sent.append(chunk[0] if len(chunk) == 1 else carrier(chunk, message_type))
    return sent


class Publisher:
    """Publishes with confirms on its own connection, re-connecting when it has dropped.

    A publish that fails because the connection or channel is gone is retried once on a fresh
    one (to another node of the cluster, if its node failed), after a short jittered pause; a
    nack, an unroutable message or a timeout raises ``PublishFailedError`` (the caller
    decides: not acknowledging, leaving the outbox row, ...).

    Activity queues are declared on first use, so a task for an activity whose workers have not
    started yet waits in its queue instead of being returned as unroutable. Only a publisher
    of timers (the orchestrator) declares the delay cascade (``delays=True``): its few hundred
    bindings take a noticeable fraction of a second to declare.
    """

    def __init__(
        self, amqp_url: str, topology: Topology, connection_name: str, *, delays: bool = False
    ) -> None:
        self._amqp_url = amqp_url
        self._topology = topology
        self._connection_name = connection_name
        self._delays = delays
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared_activities: set[str] = set()
        self._lock = asyncio.Lock()
        self._declaring = asyncio.Lock()
        self._closed = False
        self._renewed_at = time.monotonic()

    @classmethod
    async def open(
        cls, amqp_url: str, topology: Topology, connection_name: str, *, delays: bool = False
    ) -> Publisher:
        """A publisher whose connection is up and whose topology is declared."""
        publisher = cls(amqp_url, topology, connection_name, delays=delays)
        await publisher._ready()
        return publisher

    async def close(self) -> None:
        self._closed = True
        if self._connection is not None and not self._connection.is_closed:
            await self._connection.close()

    async def check(self, timeout: float) -> None:
        """Raise unless the broker gives this publisher an open channel (connecting again if
        it must) within ``timeout`` seconds: a readiness check."""
        await asyncio.wait_for(self._ready(), timeout)

    async def _ready(self) -> AbstractChannel:
        """The open confirm channel, after (re-)connecting and declaring if needed."""
        channel = self._channel
        if channel is not None and not channel.is_closed:
            return channel
        async with self._lock:
            if self._channel is not None and not self._channel.is_closed:
                return self._channel
            if self._closed:
                raise PublishFailedError("the publisher is closed")
            if self._connection is not None and not self._connection.is_closed:
                await self._connection.close()
            self._connection = await connect(self._amqp_url, self._connection_name)
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            await declare_orchestrator_queues(channel, self._topology)
            names = [spec.name for spec in self._topology.exchanges()]
            if self._delays:
                await declare_delay_queues(channel, self._topology)
                names.append(self._topology.delay_entry_exchange)
            self._exchanges = {n: await channel.get_exchange(n, ensure=False) for n in names}
            self._declared_activities = set()
            self._channel = channel
            return channel

    async def publish(
        self, message: OutgoingMessage, *, timeout: float = PUBLISH_TIMEOUT_SECONDS
    ) -> None:
        """Publish and wait for the broker's confirm; raise ``PublishFailedError`` otherwise."""
        amqp_message = aio_pika.Message(
            message.body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=short_string(message.correlation_id),
            type=short_string(message.message_type),
            headers=dict(message.headers) or None,
        )
        for attempt in (1, 2):
            channel = None
            try:
                channel = await self._ready()
                if message.exchange == self._topology.activities_exchange:
                    await self._ensure_activity_queue(message.routing_key)
                exchange = self._exchanges.get(message.exchange)
                if exchange is None:
                    raise PublishFailedError(f"unknown exchange {message.exchange!r}")
                await exchange.publish(
                    amqp_message, message.routing_key, mandatory=True, timeout=timeout
                )
                return
            except PublishFailedError:
                raise
            except aiormq.exceptions.DeliveryError as error:
                if error.frame.name == "Basic.Nack":
                    self._renew_after_nack(channel)
                raise _publish_failed(message, error) from error
            except _CONNECTION_LOST as error:
                if attempt == 2:
                    raise _publish_failed(message, error) from error
                await _pause_to_reconnect(repr(error))
            except asyncio.CancelledError as error:
                if _cancelled_here():
                    raise
                # Not this task's cancellation: aiormq rejects the confirms still awaited on a
                # connection it found stuck (no frame for a heartbeat's grace, as when its
                # node is cut off) with CancelledError. The connection is lost.
                if attempt == 2:
                    raise _publish_failed(message, ConnectionError("connection stuck")) from error
                await _pause_to_reconnect("connection stuck")
            except Exception as error:
                raise _publish_failed(message, error) from error

    def _renew_after_nack(self, channel: AbstractChannel | None) -> None:
        """Have the next publish open a new connection and channel, when ``channel`` is still
        the current one and the last renewal is older than ``RENEW_AFTER_NACK_SECONDS``.

        Publishes in flight on the old channel then fail as on a lost connection and are
        tried again on the new one.
        """
        now = time.monotonic()
        if channel is self._channel and now - self._renewed_at >= RENEW_AFTER_NACK_SECONDS:
            self._renewed_at = now
            self._channel = None
            log.info("publisher.renewing", reason="nack")

    async def publish_patiently(self, message: OutgoingMessage, *, within: float) -> None:
        """``publish``, tried again with jittered, growing pauses while it fails, for up to
        ``within`` seconds.

        For a sender whose alternative is to have its own delivery redelivered: a quorum
        queue whose leader's node was lost refuses publishes (nacks) until the others have
        elected a new one, a few seconds; each redelivery counts towards the queue's
        delivery limit, and a few seconds of immediate retries spend it (ADR 28).
        """
        deadline = time.monotonic() + within
        pause = _FIRST_RETRY_PAUSE_SECONDS
        while True:
            try:
                await self.publish(message)
                return
            except PublishFailedError as error:
                if self._closed or time.monotonic() + pause >= deadline:
                    raise
                log.info("publisher.retrying", error=str(error), pause=round(pause, 2))
                await asyncio.sleep(jittered(pause))
                pause = min(pause * 2, _MOST_RETRY_PAUSE_SECONDS)

    async def publish_many(self, messages: Iterable[OutgoingMessage], *, within: float = 0) -> None:
        """Publish concurrently (many confirms in flight); raise if any is not confirmed.
        ``within``: keep trying each for that long (``publish_patiently``)."""
        results = await asyncio.gather(
            *(
                self.publish_patiently(message, within=within) if within else self.publish(message)
                for message in messages
            ),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    async def _ensure_activity_queue(self, activity_name: str) -> None:
        if activity_name in self._declared_activities:
            return
        # One declaration, however many publishes are waiting for it (a fan-out's first
        # thousands would otherwise each declare the queue, and wait on each other's RPCs).
        async with self._declaring:
            if activity_name not in self._declared_activities:
                # On a channel of its own: a refused declaration closes its channel, and
                # other publishes are in flight on the confirm channel.
                connection = self._connection
                if connection is None:
                    raise PublishFailedError("the publisher is not connected")
                declaring = await connection.channel()
                try:
                    await declare_activity_queues(declaring, self._topology, [activity_name])
                finally:
                    await declaring.close()
                self._declared_activities.add(activity_name)


async def _pause_to_reconnect(error: str) -> None:
    """Say a publish lost its connection, then wait before the retry opens a new one; the
    publishers of every process a failed node held get here together, hence the jitter."""
    log.info("publisher.reconnecting", error=error)
    broker_observer().publisher_reconnecting()
    await asyncio.sleep(jittered(RECONNECT_PAUSE_SECONDS))


def _cancelled_here() -> bool:
    """Whether the running task is being cancelled (rather than a future it awaited)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


_CONNECTION_LOST = (
    ConnectionError,
    OSError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ConnectionClosed,
    aiormq.exceptions.ChannelClosed,
    RuntimeError,  # aio-pika: "connection closed" on a dead channel
)


def _publish_failed(message: OutgoingMessage, error: BaseException) -> PublishFailedError:
    return PublishFailedError(
        f"publish of {message.message_type} {message.message_id} to "
        f"{message.exchange}/{message.routing_key} was not confirmed: {error!r}"
    )
