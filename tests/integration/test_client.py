"""The Python DurableClient against the real database and broker (no orchestrator running)."""

from __future__ import annotations

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel

from contracts import ExecutionStarted, OrchestrationStatus, OrchestratorMessage, Topology
from durable.client import DurableClient, InstanceExistsError
from tests.conftest import unique
from tests.integration.queues import message_count, receive


def partition_queue_of(topology: Topology, instance_id: str) -> str:
    return topology.partition_queue(topology.partition_for(instance_id))


async def outbox_rows_for(pool: asyncpg.Pool, instance_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM outbox WHERE correlation_id = $1", instance_id)
    )


async def test_start_new_creates_a_pending_instance_and_publishes_its_start_to_its_partition(
    private_client: DurableClient,
    private_topology: Topology,
    pool: asyncpg.Pool,
    channel: AbstractChannel,
) -> None:
    instance_id = unique("client-")
    cities = ["Tokyo", "Lima"]

    assert await private_client.start_new("hello_cities", instance_id, cities) == instance_id

    status = await private_client.get_status(instance_id)
    assert status is not None
    assert status.runtime_status is OrchestrationStatus.PENDING
    assert (status.name, status.input, status.output) == ("hello_cities", cities, None)
    assert status.correlation_id == instance_id
    assert status.completed_at is None

    queue_name = partition_queue_of(private_topology, instance_id)
    [delivery] = await receive(channel, queue_name, 1)
    message = OrchestratorMessage.model_validate_json(delivery.body)
    assert isinstance(message.body, ExecutionStarted)
    assert (message.body.name, message.body.input) == ("hello_cities", cities)
    assert message.envelope.instance_id == instance_id
    assert message.envelope.execution_id == message.body.execution_id == status.execution_id
    assert delivery.message_id == str(message.envelope.message_id)
    assert delivery.correlation_id == message.envelope.correlation_id == instance_id
    # Published and confirmed before start_new returned, so its outbox row is already gone.
    assert await outbox_rows_for(pool, instance_id) == 0
    for partition in range(private_topology.partitions):
        assert await message_count(channel, private_topology.partition_queue(partition)) == 0


async def test_start_new_generates_an_instance_id_when_none_is_given(
    private_client: DurableClient,
) -> None:
    first = await private_client.start_new("hello_cities")
    second = await private_client.start_new("hello_cities")

    assert first != second
    assert {len(first), len(second)} == {32}
    assert (await private_client.get_status(first)) is not None


async def test_start_new_with_an_existing_instance_id_raises_and_publishes_nothing(
    private_client: DurableClient,
    private_topology: Topology,
    pool: asyncpg.Pool,
    channel: AbstractChannel,
) -> None:
    instance_id = unique("client-")
    queue_name = partition_queue_of(private_topology, instance_id)
    await private_client.start_new("hello_cities", instance_id, ["Tokyo"])
    await receive(channel, queue_name, 1)
    before = await private_client.get_status(instance_id)

    with pytest.raises(InstanceExistsError) as raised:
        await private_client.start_new("fan_out_fan_in", instance_id, 3)

    assert (raised.value.instance_id, raised.value.status) == (
        instance_id,
        OrchestrationStatus.PENDING,
    )
    assert await private_client.get_status(instance_id) == before
    assert await outbox_rows_for(pool, instance_id) == 0
    # start_new waits for its publish confirm, so a start it had sent would be queued ahead
    # of this marker.
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    marker = await channel.get_exchange(exchange, ensure=False)
    await marker.publish(aio_pika.Message(b"marker"), routing_key)
    [next_message] = await receive(channel, queue_name, 1)
    assert next_message.body == b"marker"


async def test_get_status_of_an_unknown_instance_is_none(private_client: DurableClient) -> None:
    assert await private_client.get_status(unique("nobody-")) is None


async def test_waiting_for_a_pending_instance_times_out(private_client: DurableClient) -> None:
    instance_id = await private_client.start_new("hello_cities")

    with pytest.raises(TimeoutError, match="still Pending"):
        await private_client.wait_for_completion(instance_id, timeout=0.2)


async def test_waiting_for_an_unknown_instance_raises_key_error(
    private_client: DurableClient,
) -> None:
    with pytest.raises(KeyError):
        await private_client.wait_for_completion(unique("nobody-"), timeout=0.2)
