"""Concurrent starts are written together (``durable/client/starts.py``), and each caller still
gets its own outcome: its instance, ``InstanceExistsError``, or the database's refusal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel

from contracts import ORCHESTRATOR_MESSAGE_BATCH, OrchestrationStatus, Topology
from contracts.limits import ValueRefusedError
from durable.broker import OutgoingMessage
from durable.client import DurableClient, InstanceExistsError
from durable.client.starts import StartBatcher
from durable.store.instances import NewInstance
from durable.store.outbox import OutboxCleaner
from tests.conftest import unique
from tests.integration.messages import ids_on_one_partition
from tests.integration.queues import carried, receive

STARTS = 40


async def creating_transactions(pool: asyncpg.Pool, instance_ids: list[str]) -> int:
    """How many transactions created these rows (``xmin`` is the creating transaction)."""
    return int(
        await pool.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM instances WHERE instance_id = ANY($1::text[])",
            instance_ids,
        )
    )


async def test_concurrent_starts_share_transactions_and_each_gets_its_instance(
    private_client: DurableClient, pool: asyncpg.Pool
) -> None:
    wanted = [unique("batch-") for _ in range(STARTS)]

    started = await asyncio.gather(
        *(private_client.start_new("hello_cities", i, [i]) for i in wanted)
    )

    assert started == wanted
    for instance_id in wanted:
        status = await private_client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is OrchestrationStatus.PENDING
        assert status.input == [instance_id]
    assert await creating_transactions(pool, wanted) < STARTS


async def test_two_concurrent_starts_of_one_id_create_it_once(
    private_client: DurableClient, private_topology: Topology, channel: AbstractChannel
) -> None:
    instance_id = unique("twice-")

    outcomes = await asyncio.gather(
        private_client.start_new("hello_cities", instance_id, ["first"]),
        private_client.start_new("hello_cities", instance_id, ["second"]),
        return_exceptions=True,
    )

    assert outcomes.count(instance_id) == 1
    [refused] = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(refused, InstanceExistsError)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))
    assert len(await receive(channel, queue_name, 1)) == 1
    status = await private_client.get_status(instance_id)
    assert status is not None
    assert status.input == (["first"] if outcomes[0] == instance_id else ["second"])


async def test_a_start_whose_input_cannot_be_stored_is_refused_alone_before_any_write(
    private_client: DurableClient,
) -> None:
    good = [unique("good-") for _ in range(5)]
    bad = unique("bad-")
    # Postgres' jsonb cannot hold the NUL character (contracts.limits).
    starts = [private_client.start_new("hello_cities", i, ["fine"]) for i in good]
    starts.insert(2, private_client.start_new("hello_cities", bad, ["not \x00 storable"]))

    outcomes = await asyncio.gather(*starts, return_exceptions=True)

    assert [o for o in outcomes if isinstance(o, str)] == good
    [refused] = [o for o in outcomes if isinstance(o, BaseException)]
    assert isinstance(refused, ValueRefusedError)
    assert await private_client.get_status(bad) is None
    for instance_id in good:
        assert await private_client.get_status(instance_id) is not None


async def test_a_start_the_database_refuses_fails_alone(
    pool: asyncpg.Pool, private_client: DurableClient, private_topology: Topology
) -> None:
    # What the client's own checks let through never gets here; a batch must still not fail
    # whole for one start that the database refuses.
    batcher = StartBatcher(pool, private_client._publisher, OutboxCleaner(pool))

    def start(instance_id: str, input_: str) -> NewInstance:
        return NewInstance(instance_id, "hello_cities", uuid.uuid4().hex, instance_id, input_, now)

    def message(instance: NewInstance) -> OutgoingMessage:
        exchange, routing_key = private_topology.orchestrator_route(instance.instance_id)
        return OutgoingMessage(
            exchange, routing_key, str(uuid.uuid4()), instance.instance_id, "Unused", b"{}"
        )

    now = datetime.now(UTC)
    instances = [start(unique("good-"), "fine") for _ in range(5)]
    instances.insert(2, start(unique("bad-"), "not \x00 storable"))

    outcomes = await asyncio.gather(
        *(batcher.start(i, message(i)) for i in instances), return_exceptions=True
    )

    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1
    assert isinstance(refused[0], asyncpg.PostgresError)
    assert outcomes[2] is refused[0]
    for instance, outcome in zip(instances, outcomes, strict=True):
        status = await private_client.get_status(instance.instance_id)
        assert (status is None) == (outcome is refused[0])


@pytest.mark.parametrize("count", [1, 300])
async def test_a_start_alone_and_more_starts_than_one_batch_all_go_through(
    private_client: DurableClient, count: int
) -> None:
    wanted = [unique("many-") for _ in range(count)]

    assert await asyncio.gather(*(private_client.start_new("hello_cities", i) for i in wanted)) == (
        wanted
    )
    for instance_id in (wanted[0], wanted[-1]):
        assert await private_client.get_status(instance_id) is not None


async def test_starts_written_together_for_one_partition_share_a_message(
    private_client: DurableClient, private_topology: Topology, channel: AbstractChannel
) -> None:
    wanted = ids_on_one_partition(private_topology, 20)

    await asyncio.gather(*(private_client.start_new("hello_cities", i, [i]) for i in wanted))

    queue_name = private_topology.partition_queue(private_topology.partition_for(wanted[0]))
    deliveries = await receive(channel, queue_name, 1)
    while len(carried(deliveries)) < len(wanted):
        deliveries += await receive(channel, queue_name, 1)
    starts = carried(deliveries)
    assert sorted(m.envelope.instance_id for m in starts) == sorted(wanted)
    assert {m.envelope.type for m in starts} == {"ExecutionStarted"}
    assert len(deliveries) < len(wanted)
    assert ORCHESTRATOR_MESSAGE_BATCH in {d.type for d in deliveries}
