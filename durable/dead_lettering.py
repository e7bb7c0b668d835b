"""Dead-lettering a message that can never be processed: it goes to its queue's ``.dlq`` with
the reason in its headers, through a ``Publisher`` (its confirm awaited), where an operator
sees it (``durable-ops dlq``) and can re-drive it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel

from contracts.topology import Topology
from durable.broker import OutgoingMessage, Publisher
from durable.broker_events import broker_observer

log = structlog.get_logger("durable.broker")


@dataclass(frozen=True)
class DeadLetter:
    """A message that can never be processed, on its way to its queue's ``.dlq``.

    Attributes:
        body: the message's own bytes.
        reason: why, for the ``x-dead-letter-reason`` header.
        message_id: the message's id ("" when it cannot be read), and likewise its
            ``message_type`` and ``correlation_id``; a re-drive delivers it with that type.
        carrier_id: the id of the carrier it was taken from, when it came in one (ADR 21).
    """

    body: bytes
    reason: str
    message_id: str = ""
    message_type: str = ""
    correlation_id: str = ""
    carrier_id: str | None = None

    @classmethod
    def of(cls, delivery: AbstractIncomingMessage, reason: str) -> DeadLetter:
        """The delivery itself, whole."""
        return cls(
            body=delivery.body,
            reason=reason,
            message_id=delivery.message_id or "",
            message_type=delivery.type or "",
            correlation_id=delivery.correlation_id or "",
        )

    @classmethod
    def of_message(cls, model: BaseModel, reason: str, carrier_id: str | None) -> DeadLetter:
        """A contracts message (anything with an ``envelope``) that a carrier held."""
        envelope = model.envelope  # type: ignore[attr-defined]
        return cls(
            body=model.model_dump_json().encode(),
            reason=reason,
            message_id=str(envelope.message_id),
            message_type=envelope.type,
            correlation_id=envelope.correlation_id,
            carrier_id=carrier_id,
        )


async def publish_dead_letters(
    publisher: Publisher,
    topology: Topology,
    source_queue: str,
    delivery: AbstractIncomingMessage,
    letters: Sequence[DeadLetter],
) -> None:
    """Publish ``letters``, which ``delivery`` brought, to ``<source_queue>.dlq`` with their
    reasons and the delivery's provenance, confirmed; settle nothing.

    Raises ``PublishFailedError`` unless every one is confirmed (then the caller requeues the
    delivery, and whichever were confirmed are dead-lettered again when it comes back).
    """
    dlq = topology.dead_letter_queue(source_queue)
    provenance = {
        "x-original-queue": source_queue,
        "x-original-routing-key": delivery.routing_key or "",
        "x-original-exchange": delivery.exchange or "",
    }
    await publisher.publish_many(
        OutgoingMessage(
            exchange=topology.dead_letter_exchange,
            routing_key=dlq,
            message_id=letter.message_id,
            correlation_id=letter.correlation_id,
            message_type=letter.message_type,
            body=letter.body,
            headers={
                "x-dead-letter-reason": letter.reason[:4000],
                **provenance,
                **({"x-original-carrier": letter.carrier_id} if letter.carrier_id else {}),
            },
        )
        for letter in letters
    )
    for letter in letters:
        log.warning("message.dead_lettered", queue=source_queue, reason=letter.reason[:300])
    broker_observer().dead_lettered(source_queue, len(letters))


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
    await publish_dead_letters(
        publisher, topology, source_queue, delivery, [DeadLetter.of(delivery, reason)]
    )
    await delivery.ack()
