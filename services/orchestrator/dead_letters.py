"""What a partition consumer cannot process goes to the partition's dead-letter queue.

A delivery that is not a message at all goes whole; a carrier's invalid messages go alone and
its valid ones are processed (ADR 21); so do the messages a committed batch refused (answers
to calls their instance never made, messages of an instance that cannot be written), each
alone, with the reason the handler gave. A dead letter the broker does not confirm sends the
delivery that brought it back to the queue, to be tried again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage

from contracts import OrchestratorMessage, OrchestratorMessageBatch, Topology
from durable.broker import Publisher, PublishFailedError
from durable.dead_lettering import DeadLetter, dead_letter, publish_dead_letters
from services.common.carriers import CarrierError, unpack
from services.orchestrator.handler import Committed

Settle = Callable[[Awaitable[None]], Awaitable[None]]


class PartitionDeadLetters:
    """Dead-letters for one partition queue; ``settle`` runs a delivery's settlement (the
    consumer's, which tolerates a channel that has gone)."""

    def __init__(
        self, publisher: Publisher, topology: Topology, queue_name: str, settle: Settle
    ) -> None:
        self._publisher = publisher
        self._topology = topology
        self._queue_name = queue_name
        self._settle = settle

    async def reject(self, delivery: AbstractIncomingMessage, reason: str) -> None:
        """Dead-letter ``delivery`` whole and acknowledge it (requeue it if not confirmed)."""
        try:
            await dead_letter(self._publisher, self._topology, self._queue_name, delivery, reason)
        except PublishFailedError:
            await self._settle(delivery.nack(requeue=True))

    async def unpack(self, carrier: AbstractIncomingMessage) -> list[OrchestratorMessage] | None:
        """The valid messages of ``carrier``, its invalid ones dead-lettered alone; None when
        the carrier was settled instead: dead-lettered whole (not a JSON array), or requeued
        (an invalid message's dead letter was not confirmed)."""
        try:
            unpacked = unpack(carrier.body, OrchestratorMessageBatch, OrchestratorMessage)
        except CarrierError as error:
            await self.reject(carrier, f"invalid message: {error}")
            return None
        letters = [element.dead_letter(carrier.message_id) for element in unpacked.invalid]
        if letters and await self.send({carrier: letters}):
            return None  # requeued
        return unpacked.messages

    async def send(
        self, letters: dict[AbstractIncomingMessage, list[DeadLetter]]
    ) -> list[AbstractIncomingMessage]:
        """Publish the dead ``letters`` each delivery brought, settling none of them, except
        those whose letters are not all confirmed: they are requeued, and returned."""
        requeued = []
        for delivery, dead in letters.items():
            try:
                await publish_dead_letters(
                    self._publisher, self._topology, self._queue_name, delivery, dead
                )
            except PublishFailedError:
                await self._settle(delivery.nack(requeue=True))
                requeued.append(delivery)
        return requeued

    @staticmethod
    def refused(
        committed: Committed,
        parsed: list[tuple[AbstractIncomingMessage | None, OrchestratorMessage]],
        carriers: dict[AbstractIncomingMessage, list[OrchestratorMessage]],
    ) -> dict[AbstractIncomingMessage, list[DeadLetter]]:
        """The dead letters of the messages a batch refused, by the delivery that brought
        each; one that came without a delivery (a due fire, a local result) is only logged."""
        letters: dict[AbstractIncomingMessage, list[DeadLetter]] = {}
        if not committed.refused:
            return letters
        delivery_of = {id(message): delivery for delivery, message in parsed}
        for refused in committed.refused:
            delivery = delivery_of.get(id(refused.message))
            if delivery is None:
                continue
            letters.setdefault(delivery, []).append(
                DeadLetter.of_message(refused.message, refused.reason, delivery.message_id)
                if delivery in carriers
                else DeadLetter.of(delivery, refused.reason)
            )
        return letters
