"""A partition consumer whose database cannot be reached (down, failing over): its batch keeps
its deliveries and is committed whole once the database is back. It is not split, and its
messages are neither requeued nor logged as failed, as they are when a message breaks the
batch: each requeue spends one of a message's deliveries, and the broker dead-letters it at
the delivery limit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import pytest
from structlog.testing import capture_logs

from contracts import OrchestratorMessage
from durable.store.leases import Lease
from services.orchestrator.handler import Committed
from tests.helpers.waiting import assert_eventually
from tests.unit.consumer_fakes import Channel, Delivery, started_consumer, task_completed


class Handler:
    """Fails its first ``failures`` batches with ``error``, then commits each (writing
    nothing); records the message ids of every batch it is given."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.batches: list[list[uuid.UUID]] = []
        self._failures = failures
        self._error = error

    async def handle(
        self,
        messages: Sequence[OrchestratorMessage],
        partition: int | None = None,
        lease: Lease | None = None,
        *,
        express: bool = False,
    ) -> Committed:
        self.batches.append([message.envelope.message_id for message in messages])
        if len(self.batches) <= self._failures:
            raise self._error
        return Committed([], [], [])


async def consume(handler: Handler, count: int) -> tuple[list[uuid.UUID], Channel, list[str]]:
    """Deliver ``count`` messages to a consumer of partition 0 and let it work until every
    delivery is settled; the message ids, the channel and the events logged."""
    channel = Channel()
    messages = [task_completed(f"i{n}") for n in range(count)]
    consumer = started_consumer(handler)
    with capture_logs() as logs:
        for tag, message in enumerate(messages, start=1):
            delivery = Delivery(channel, tag, body=message.model_dump_json().encode())
            await consumer._receive(delivery)  # type: ignore[arg-type]

        async def all_settled() -> bool:
            # Acknowledged with ``multiple``: the last one settles every delivery before it.
            assert ("ack", count, True) in channel.settled, channel.settled
            return True

        await assert_eventually(all_settled, timeout=10)
        await consumer.stop(timeout=1)
    return [m.envelope.message_id for m in messages], channel, [e["event"] for e in logs]


async def test_a_batch_waits_while_the_database_cannot_be_reached_and_is_committed_whole() -> None:
    handler = Handler(3, ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"))

    ids, channel, events = await consume(handler, 3)

    assert handler.batches == [ids] * 4  # the whole batch, each time, until it commits
    assert channel.settled == [("ack", 3, True)]  # acknowledged once, never requeued
    assert "message.failed" not in events
    assert "batch.failed_splitting" not in events
    assert events.count("batch.store_unreachable") == 1
    assert "batch.store_reachable" in events


@pytest.mark.parametrize(
    "error",
    [asyncpg.QueryCanceledError("canceling statement due to statement timeout"), ValueError()],
    ids=["statement cancelled", "a message's own error"],
)
async def test_a_batch_that_fails_otherwise_is_still_split_to_find_the_message_at_fault(
    error: Exception,
) -> None:
    handler = Handler(1, error)

    ids, channel, events = await consume(handler, 2)

    # Then each message alone; neither breaks on its own, and each is acknowledged.
    assert handler.batches == [ids, ids[:1], ids[1:]]
    assert "batch.failed_splitting" in events
    assert "batch.store_unreachable" not in events
    assert not [s for s in channel.settled if s[0] == "requeue"]
