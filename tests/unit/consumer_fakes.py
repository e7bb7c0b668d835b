"""Small stand-ins for what the partition consumer's pieces use of the broker: a channel's
deliveries and their settlements, and a publisher. The integration tests use the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiormq.exceptions import ChannelInvalidStateError

from contracts import Envelope, EventRaised, OrchestratorMessage, TaskCompleted, Topology
from durable.broker import OutgoingMessage, PublishFailedError
from durable.store.outbox import OutboxRecord
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.dispatch import timer_fired_message

TOPOLOGY = Topology(namespace="unit", partitions=2)


@dataclass(eq=False)
class Channel:
    """Records the settlements of its deliveries, in order; once ``closed``, settling one
    fails as it does on a channel that has gone."""

    settled: list[tuple[str, int, bool]] = field(default_factory=list)
    closed: bool = False


@dataclass(eq=False)
class Delivery:
    """What the consumer's pieces use of an aio-pika delivery (compared by identity, as they
    are)."""

    channel: Channel
    delivery_tag: int
    body: bytes = b""
    type: str | None = None
    message_id: str | None = None

    async def ack(self, multiple: bool = False) -> None:
        self._settle("ack", multiple)

    async def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        self._settle("requeue" if requeue else "nack", multiple)

    def _settle(self, how: str, multiple: bool) -> None:
        if self.channel.closed:
            raise ChannelInvalidStateError("channel closed")
        self.channel.settled.append((how, self.delivery_tag, multiple))


def deliveries(channel: Channel, count: int) -> list[Delivery]:
    return [Delivery(channel, tag) for tag in range(1, count + 1)]


@dataclass
class Publisher:
    """Records what it is asked to publish; ``fail`` makes every publish unconfirmed."""

    published: list[OutgoingMessage] = field(default_factory=list)
    fail: bool = False

    async def publish(self, message: OutgoingMessage) -> None:
        if self.fail:
            raise PublishFailedError(f"{message.message_id} not confirmed")
        self.published.append(message)


def timer_fire(due_in_seconds: float, timer_id: int = 1) -> OrchestratorMessage:
    now = datetime.now(UTC)
    return timer_fired_message(
        f"i-{uuid.uuid4().hex[:8]}",
        "e1",
        "c1",
        timer_id,
        now + timedelta(seconds=due_in_seconds),
        now,
    )


def _envelope(instance_id: str, kind: str, now: datetime, execution_id: str | None) -> Envelope:
    return Envelope(
        message_id=uuid.uuid4(),
        instance_id=instance_id,
        execution_id=execution_id,
        correlation_id="c1",
        type=kind,
        sent_at=now,
    )


def task_completed(instance_id: str = "i1", task_scheduled_id: int = 1) -> OrchestratorMessage:
    now = datetime.now(UTC)
    return OrchestratorMessage(
        envelope=_envelope(instance_id, "TaskCompleted", now, "e1"),
        body=TaskCompleted(timestamp=now, task_scheduled_id=task_scheduled_id, result=1),
    )


def event_raised(instance_id: str) -> OrchestratorMessage:
    now = datetime.now(UTC)
    return OrchestratorMessage(
        envelope=_envelope(instance_id, "EventRaised", now, None),
        body=EventRaised(timestamp=now, name="Ping", input=1),
    )


class Relay:
    """Publishes every committed batch's rows at once."""

    async def publish_committed(self, records: Sequence[OutboxRecord]) -> bool:
        return True


def started_consumer(handler: object) -> PartitionConsumer:
    """A consumer of partition 0 around ``handler`` (a stand-in), its workers started."""
    consumer = PartitionConsumer(
        0,
        handler,  # type: ignore[arg-type]
        Relay(),  # type: ignore[arg-type]
        Publisher(),  # type: ignore[arg-type]
        TOPOLOGY,
        batch_size=16,
        prefetch=32,
    )
    consumer.start_worker()
    return consumer


def outbox_record(row_id: int) -> OutboxRecord:
    return OutboxRecord(
        row_id,
        OutgoingMessage(
            exchange="unit.activities",
            routing_key="work",
            message_id=str(uuid.uuid4()),
            correlation_id="c1",
            message_type="ActivityTask",
            body=b"{}",
        ),
    )
