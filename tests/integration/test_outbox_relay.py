"""The outbox relay: rows committed but never published reach their queue, then disappear.

A writer that dies between its commit and its publish leaves its outbox rows behind; here
that crash is a transaction that inserts rows and commits without publishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

import asyncpg
from aio_pika import DeliveryMode
from aio_pika.abc import AbstractChannel

from contracts import OrchestratorMessage, Topology
from durable.broker import OutgoingMessage, Publisher
from durable.declarations import declare_orchestrator_queues
from durable.store.outbox import (
    OutboxRecord,
    claim_stale_outbox_txn,
    insert_outbox_txn,
)
from services.orchestrator.relay import OutboxRelay
from tests.conftest import AMQP_URL, unique
from tests.integration import messages
from tests.integration.queues import message_count, receive

STARTS = 6


def starts(topology: Topology) -> dict[int, list[OrchestratorMessage]]:
    """Start messages for new instances, by the partition each belongs to."""
    by_partition: dict[int, list[OrchestratorMessage]] = {}
    for _ in range(STARTS):
        message = messages.start(unique("outbox-"), "hello_cities")
        partition = topology.partition_for(message.envelope.instance_id)
        by_partition.setdefault(partition, []).append(message)
    return by_partition


async def commit_without_publishing(
    pool: asyncpg.Pool,
    topology: Topology,
    by_partition: dict[int, list[OrchestratorMessage]],
    written_by: int | None = None,
) -> list[OutboxRecord]:
    """The rows of a batch (of partition ``written_by``, or of none), committed."""
    outgoing = [
        OutgoingMessage.of(message, *topology.orchestrator_route(message.envelope.instance_id))
        for group in by_partition.values()
        for message in group
    ]
    async with pool.acquire() as connection, connection.transaction():
        return await insert_outbox_txn(connection, outgoing, written_by)


async def outbox_size(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox"))


async def assert_arrived(
    channel: AbstractChannel,
    topology: Topology,
    by_partition: dict[int, list[OrchestratorMessage]],
) -> None:
    """Every message is in its partition's queue, intact, and nothing else is."""
    for partition, sent in by_partition.items():
        queue_name = topology.partition_queue(partition)
        received = await receive(channel, queue_name, len(sent))
        assert len(received) == len(sent)
        arrived = [OrchestratorMessage.model_validate_json(m.body) for m in received]
        assert {m.envelope.message_id: m for m in arrived} == {
            m.envelope.message_id: m for m in sent
        }
        for delivery in received:
            assert delivery.delivery_mode == DeliveryMode.PERSISTENT
            assert delivery.type == "ExecutionStarted"
            body = OrchestratorMessage.model_validate_json(delivery.body)
            assert delivery.message_id == str(body.envelope.message_id)
            assert delivery.correlation_id == body.envelope.correlation_id
    for partition in range(topology.partitions):
        assert await message_count(channel, topology.partition_queue(partition)) == 0


async def test_rows_left_behind_by_a_crash_are_swept_to_their_partition_queues_and_deleted(
    private_pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    await declare_orchestrator_queues(channel, private_topology)
    by_partition = starts(private_topology)
    await commit_without_publishing(private_pool, private_topology, by_partition)
    relay = OutboxRelay(private_pool, publisher, grace_seconds=0)

    assert await relay.sweep_once() == STARTS

    assert await outbox_size(private_pool) == 0
    await assert_arrived(channel, private_topology, by_partition)
    assert await relay.sweep_once() == 0


async def test_fresh_rows_within_the_grace_period_are_not_swept(
    private_pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    await declare_orchestrator_queues(channel, private_topology)
    by_partition = starts(private_topology)
    await commit_without_publishing(private_pool, private_topology, by_partition)

    assert await OutboxRelay(private_pool, publisher, grace_seconds=60).sweep_once() == 0

    assert await outbox_size(private_pool) == STARTS
    for partition in range(private_topology.partitions):
        assert await message_count(channel, private_topology.partition_queue(partition)) == 0


async def test_rows_another_sweeper_holds_are_skipped_until_it_lets_go(
    private_pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    await declare_orchestrator_queues(channel, private_topology)
    by_partition = starts(private_topology)
    await commit_without_publishing(private_pool, private_topology, by_partition)
    relay = OutboxRelay(private_pool, publisher, grace_seconds=0)

    async with private_pool.acquire() as other, other.transaction():
        assert len(await claim_stale_outbox_txn(other, 0, 100)) == STARTS
        assert await relay.sweep_once() == 0
        # Leaving the block without an error commits; the other sweeper published nothing.

    assert await relay.sweep_once() == STARTS
    await assert_arrived(channel, private_topology, by_partition)


async def test_the_writer_publishes_its_own_rows_after_commit_and_deletes_them(
    private_pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    await declare_orchestrator_queues(channel, private_topology)
    by_partition = starts(private_topology)
    records = await commit_without_publishing(private_pool, private_topology, by_partition)
    relay = OutboxRelay(private_pool, publisher, grace_seconds=60)

    assert await relay.publish_committed(records) is True
    # The rows are deleted in the background; closing the relay waits for that.
    await relay.close()

    assert await outbox_size(private_pool) == 0
    await assert_arrived(channel, private_topology, by_partition)


async def test_a_sweeper_takes_only_the_rows_of_its_own_partitions(
    private_pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    # Two processes of one service: partitions 0 and 2 in one, 1 and 3 in the other; rows
    # written by no partition (the client's) go to the one with partition 0.
    await declare_orchestrator_queues(channel, private_topology)
    batches = {written_by: starts(private_topology) for written_by in (None, 0, 1)}
    for written_by, by_partition in batches.items():
        await commit_without_publishing(private_pool, private_topology, by_partition, written_by)
    odd = OutboxRelay(private_pool, publisher, grace_seconds=0, partitions=[1, 3])
    even = OutboxRelay(private_pool, publisher, grace_seconds=0, partitions=[0, 2])

    assert await odd.sweep_once() == STARTS
    await assert_arrived(channel, private_topology, batches[1])
    assert await odd.sweep_once() == 0
    assert await even.sweep_once() == 2 * STARTS
    await assert_arrived(channel, private_topology, merged(batches[None], batches[0]))
    assert await outbox_size(private_pool) == 0


def merged(
    *batches: dict[int, list[OrchestratorMessage]],
) -> dict[int, list[OrchestratorMessage]]:
    out: dict[int, list[OrchestratorMessage]] = {}
    for batch in batches:
        for partition, sent in batch.items():
            out.setdefault(partition, []).extend(sent)
    return out


class HeldPublisher(Publisher):
    """The real publisher, whose batches wait for ``gate`` (a publish slower than the grace
    period, as a fan-out of thousands can be)."""

    gate: asyncio.Event

    async def publish_many(self, messages: Iterable[OutgoingMessage]) -> None:
        await self.gate.wait()
        await super().publish_many(messages)


async def test_rows_being_published_are_not_swept_however_old(
    private_pool: asyncpg.Pool, private_topology: Topology, channel: AbstractChannel
) -> None:
    held = await HeldPublisher.open(AMQP_URL, private_topology, "integration.held")
    held.gate = asyncio.Event()
    try:
        await declare_orchestrator_queues(channel, private_topology)
        by_partition = starts(private_topology)
        records = await commit_without_publishing(private_pool, private_topology, by_partition)
        relay = OutboxRelay(private_pool, held, grace_seconds=0)
        publishing = asyncio.create_task(relay.publish_committed(records))
        await asyncio.sleep(0)  # the publish has started and waits at the gate

        assert await relay.sweep_once() == 0

        held.gate.set()
        assert await publishing is True
        await relay.close()
        assert await outbox_size(private_pool) == 0
        await assert_arrived(channel, private_topology, by_partition)
    finally:
        held.gate.set()
        await held.close()


async def test_a_row_stored_with_a_correlation_id_too_long_for_amqp_is_published_once(
    private_pool: asyncpg.Pool,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    # Written before ids were checked where they enter: such a row could never be published,
    # and the sweeper retried it every second for good.
    await declare_orchestrator_queues(channel, private_topology)
    instance_id = unique("outbox-")
    message = messages.start(instance_id, "hello_cities")
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    outgoing = replace(OutgoingMessage.of(message, exchange, routing_key), correlation_id="c" * 300)
    async with private_pool.acquire() as connection, connection.transaction():
        await insert_outbox_txn(connection, [outgoing])
    relay = OutboxRelay(private_pool, publisher, grace_seconds=0)

    assert await relay.sweep_once() == 1

    assert await outbox_size(private_pool) == 0
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))
    [delivery] = await receive(channel, queue_name, 1)
    assert delivery.correlation_id == "c" * 255
    assert await relay.sweep_once() == 0
