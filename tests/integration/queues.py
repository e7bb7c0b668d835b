"""Reading what arrived in a real queue, without fixed sleeps.

Partition queues have a single active consumer, and quorum queues with one refuse
``basic.get``, so messages are taken by a short-lived consumer.
"""

from __future__ import annotations

from collections.abc import Sequence

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts import ORCHESTRATOR_MESSAGE_BATCH, OrchestratorMessage, OrchestratorMessageBatch
from tests.helpers.waiting import assert_eventually


async def receive(
    channel: AbstractChannel,
    queue_name: str,
    count: int,
    timeout: float = 10.0,
    *,
    no_ack: bool = True,
) -> list[AbstractIncomingMessage]:
    """Consume ``queue_name`` until ``count`` messages came; return all that came, oldest first
    (with ``no_ack=False``, unsettled: the caller acks or nacks them on ``channel``)."""
    queue = await channel.get_queue(queue_name, ensure=False)
    received: list[AbstractIncomingMessage] = []

    async def collect(message: AbstractIncomingMessage) -> None:
        received.append(message)

    def all_arrived() -> bool:
        assert len(received) >= count, f"{len(received)} of {count} messages in {queue_name}"
        return True

    consumer_tag = await queue.consume(collect, no_ack=no_ack)
    try:
        await assert_eventually(all_arrived, timeout=timeout)
    finally:
        await queue.cancel(consumer_tag)
    return received


async def message_count(channel: AbstractChannel, queue_name: str) -> int:
    """Messages ready in ``queue_name`` (a passive declare)."""
    queue = await channel.declare_queue(queue_name, passive=True)
    count = queue.declaration_result.message_count
    assert count is not None
    return count


def header_text(message: AbstractIncomingMessage, name: str) -> str:
    value = (message.headers or {}).get(name)
    assert value is not None, f"no {name} header in {message.headers}"
    return value.decode() if isinstance(value, bytes) else str(value)


def carried(deliveries: Sequence[AbstractIncomingMessage]) -> list[OrchestratorMessage]:
    """The orchestrator messages in ``deliveries``, batches unpacked."""
    found: list[OrchestratorMessage] = []
    for delivery in deliveries:
        if delivery.type == ORCHESTRATOR_MESSAGE_BATCH:
            found += OrchestratorMessageBatch.validate_json(delivery.body)
        else:
            found.append(OrchestratorMessage.model_validate_json(delivery.body))
    return found
