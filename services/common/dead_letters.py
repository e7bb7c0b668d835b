"""The system's dead-letter queues: finding them, reading them, re-driving and discarding.

Every work queue ``Q`` of a deployment dead-letters into ``Q.dlq``: the orchestrator's partition
queues, one queue per registered activity, and the queues of the broker entry points its
settings name (``contracts.topology``, ``durable.entry_points``). Nothing else is touched: a
queue name that is not one of these is refused.

Quorum queues do not serve ``basic.get``, so messages are taken with a short-lived consumer
whose prefetch is exactly the number of messages wanted; every delivery is settled explicitly,
and only after the consumer is cancelled, so the broker never hands over one message more
than asked. Re-driving publishes a copy straight to the original queue (default exchange,
confirmed, mandatory) and then acknowledges the dead letter; discarding acknowledges it.

A quorum queue puts a returned (requeued) message at its back. Showing therefore takes every
message present and returns them all in the order taken, which leaves the queue's order as it
was; re-driving and discarding settle every message they take and return none, except after
an error (a publish that is not confirmed), when the rest of that round goes to the back.

Shared by ``durable-ops dlq`` (``services.operations.cli_dlq``) and the client service's
dashboard, which each turn a ``DeadLetterError`` into their own answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from contracts import Topology

IDLE_SECONDS = 2.0
ROUND_SIZE = 200
SHOW_ROTATION_LIMIT = 50_000
# Headers describing a death; a re-driven copy starts without them (the broker adds x-death
# again, and the services x-dead-letter-reason, should it die again).
_DEATH_HEADERS = {
    "x-death",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
    "x-delivery-count",
    "x-dead-letter-reason",
    "x-original-queue",
    "x-original-exchange",
    "x-original-routing-key",
    "x-original-carrier",
}

Action = Literal["show", "redrive", "discard"]


class DeadLetterError(Exception):
    """A dead-letter operation refused or cut short; ``kind`` says why (callers choose their
    own answer: an exit code, an HTTP status).

    ``unknown_queue``: not a dead-letter queue of the deployment; ``absent``: the queue does
    not exist on the broker; ``foreign``: a message says it came from another queue, and was
    left in place; ``unconfirmed``: re-driving a message was not confirmed, it stays.
    """

    def __init__(
        self, kind: Literal["unknown_queue", "absent", "foreign", "unconfirmed"], message: str
    ) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    source: str
    kind: Literal["partition", "activity", "entry"]


def dead_letter_queues(
    topology: Topology, activities: Iterable[str], entry_queues: Iterable[str] = ()
) -> list[DeadLetterQueue]:
    """Every dead-letter queue of the deployment, sources first by kind, then by name
    (``entry_queues``: the entry points' queues, full names, in their declared order)."""
    queues = [
        DeadLetterQueue(topology.dead_letter_queue(source), source, "partition")
        for source in (topology.partition_queue(p) for p in range(topology.partitions))
    ]
    queues += [
        DeadLetterQueue(topology.dead_letter_queue(source), source, "activity")
        for source in sorted(topology.activity_queue(name) for name in set(activities))
    ]
    queues += [
        DeadLetterQueue(topology.dead_letter_queue(source), source, "entry")
        for source in entry_queues
    ]
    return queues


def find_queue(queues: list[DeadLetterQueue], name: str) -> DeadLetterQueue:
    """The dead-letter queue called ``name``, or whose source is ``name``."""
    for queue in queues:
        if name in (queue.name, queue.source):
            return queue
    raise DeadLetterError(
        "unknown_queue",
        f"{name!r} is not a dead-letter queue of this deployment (see `durable-ops dlq list`)",
    )


async def depth(connection: AbstractConnection, queue: str) -> int | None:
    """Messages ready in ``queue``, or None when it does not exist."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return None
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    result = declared.declaration_result
    return int(result.message_count or 0)


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message as operators read it."""

    position: int
    message_id: str | None
    type: str | None
    reason: str | None
    original_queue: str | None
    original_exchange: str | None
    original_routing_key: str | None
    deaths: list[dict[str, Any]]
    body: bytes

    @classmethod
    def of(cls, position: int, delivery: AbstractIncomingMessage) -> DeadLetter:
        headers = plain(delivery.headers or {})
        deaths = headers.get("x-death") or []
        first = deaths[0] if deaths else {}
        keys = first.get("routing-keys") or []
        return cls(
            position=position,
            message_id=delivery.message_id,
            type=delivery.type,
            reason=headers.get("x-dead-letter-reason") or first.get("reason"),
            original_queue=headers.get("x-original-queue") or first.get("queue"),
            original_exchange=headers.get("x-original-exchange", first.get("exchange")),
            original_routing_key=(
                headers.get("x-original-routing-key") or (keys[0] if keys else None)
            ),
            deaths=deaths,
            body=delivery.body,
        )

    def to_json(self) -> dict[str, Any]:
        try:
            body: Any = self.body.decode()
        except UnicodeDecodeError:
            body = {"base64": base64.b64encode(self.body).decode()}
        return {
            "position": self.position,
            "message_id": self.message_id,
            "type": self.type,
            "reason": self.reason,
            "original_queue": self.original_queue,
            "original_exchange": self.original_exchange,
            "original_routing_key": self.original_routing_key,
            "deaths": self.deaths,
            "body": body,
        }


def plain(value: Any) -> Any:
    """AMQP header values as JSON-friendly Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class DeadLetterHandler:
    """Shows, re-drives or discards the first messages of one dead-letter queue."""

    def __init__(self, connection: AbstractConnection, queue: DeadLetterQueue) -> None:
        self._connection = connection
        self._queue = queue
        self.reordered = False
        """Set when ``show`` returned its messages behind the others (a very long queue)."""

    async def run(
        self,
        action: Action,
        limit: int | None,
        on_message: Callable[[DeadLetter], None],
        stopping: asyncio.Event,
    ) -> int:
        """Handle up to ``limit`` messages (all present at the start when None); return how
        many were handled."""
        present = await depth(self._connection, self._queue.name)
        if present is None:
            raise DeadLetterError("absent", f"queue {self._queue.name!r} does not exist")
        if action == "show":
            return await self._show(present, limit or present, on_message)
        budget = present if limit is None else min(present, limit)
        handled = 0
        while handled < budget and not stopping.is_set():
            taken = await self._round(
                action, min(ROUND_SIZE, budget - handled), handled, on_message
            )
            if taken == 0:
                break
            handled += taken
        return handled

    async def _show(
        self, present: int, limit: int, on_message: Callable[[DeadLetter], None]
    ) -> int:
        # A quorum queue puts a returned message at its back, so returning only the first
        # ``limit`` would move them behind the others. Taking every message present and
        # returning all of them in the order taken leaves the queue as it was.
        take = present if present <= SHOW_ROTATION_LIMIT else min(present, limit)
        self.reordered = take < present
        channel = await self._connection.channel()
        try:
            deliveries = await self._take(channel, take)
            try:
                for number, delivery in enumerate(deliveries[:limit], start=1):
                    on_message(DeadLetter.of(number, delivery))
            finally:
                for delivery in deliveries:
                    await delivery.nack(requeue=True)
            return min(len(deliveries), limit)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def _round(
        self, action: Action, size: int, offset: int, on_message: Callable[[DeadLetter], None]
    ) -> int:
        if size <= 0:
            return 0
        channel = await self._connection.channel()
        publisher = (
            await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            if action == "redrive"
            else None
        )
        try:
            deliveries = await self._take(channel, size)
            settle = self._settler(action, publisher)
            handled = 0
            try:
                for number, delivery in enumerate(deliveries, start=offset + 1):
                    letter = DeadLetter.of(number, delivery)
                    await settle(letter, delivery)
                    on_message(letter)
                    handled += 1
            finally:
                for delivery in deliveries[handled:]:
                    await delivery.nack(requeue=True)
            return handled
        finally:
            for opened in (channel, publisher):
                if opened is not None:
                    with contextlib.suppress(Exception):
                        await opened.close()

    async def _take(self, channel: AbstractChannel, size: int) -> list[AbstractIncomingMessage]:
        """Exactly ``size`` deliveries (fewer if the queue runs dry), none settled yet."""
        await channel.set_qos(prefetch_count=size)
        queue = await channel.get_queue(self._queue.name, ensure=False)
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(inbox.put)
        deliveries: list[AbstractIncomingMessage] = []
        try:
            while len(deliveries) < size:
                try:
                    deliveries.append(await asyncio.wait_for(inbox.get(), IDLE_SECONDS))
                except TimeoutError:
                    break
        finally:
            # With the prefetch at ``size`` and nothing settled, the broker cannot send more.
            await queue.cancel(tag)
        while not inbox.empty():
            deliveries.append(inbox.get_nowait())
        return deliveries

    def _settler(
        self, action: Action, publisher: AbstractChannel | None
    ) -> Callable[[DeadLetter, AbstractIncomingMessage], Awaitable[None]]:
        async def discard(letter: DeadLetter, delivery: AbstractIncomingMessage) -> None:
            await delivery.ack()

        async def redrive(letter: DeadLetter, delivery: AbstractIncomingMessage) -> None:
            assert publisher is not None
            source = self._queue.source
            if letter.original_queue not in (None, source):
                raise DeadLetterError(
                    "foreign",
                    f"message {letter.position} ({letter.message_id}) says it came from "
                    f"{letter.original_queue!r}, not {source!r}; left in place",
                )
            try:
                await publisher.default_exchange.publish(
                    _copy(delivery, self._queue.name), source, mandatory=True
                )
            except aiormq.exceptions.AMQPError as error:
                raise DeadLetterError(
                    "unconfirmed",
                    f"re-driving message {letter.position} ({letter.message_id}) to {source!r} "
                    f"was not confirmed: {error!r}; it stays in {self._queue.name!r}",
                ) from None
            await delivery.ack()

        return redrive if action == "redrive" else discard


def _copy(delivery: AbstractIncomingMessage, dead_letter_queue: str) -> aio_pika.Message:
    headers = {k: v for k, v in (delivery.headers or {}).items() if k not in _DEATH_HEADERS}
    previous = headers.get("x-redrive-count")
    headers["x-redrive-count"] = (previous if isinstance(previous, int) else 0) + 1
    headers["x-redriven-from"] = dead_letter_queue
    return aio_pika.Message(
        delivery.body,
        headers=headers,
        content_type=delivery.content_type,
        content_encoding=delivery.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=delivery.priority,
        correlation_id=delivery.correlation_id,
        message_id=delivery.message_id,
        timestamp=delivery.timestamp,
        type=delivery.type,
        app_id=delivery.app_id,
    )
