"""Invalid messages go to ``<queue>.dlq`` with the reason, and the consumer carries on.

A partition consumer and an activity worker run in-process against the real broker and
database; bad bytes and schema violations are published straight to their queues, followed
by a real orchestration that must still complete.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts import OrchestrationStatus, Topology
from durable import FunctionApp
from durable.broker import Publisher
from durable.client import DurableClient
from durable.declarations import declare_activity_queues
from services.activities.worker import ActivityWorker
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.relay import OutboxRelay
from tests.conftest import unique
from tests.integration import messages
from tests.integration.consumers import start_partition_consumers, stop_partition_consumers
from tests.integration.queues import header_text, receive

GARBAGE = b"\x00\xff this is not JSON"
CITIES = ["Tokyo", "Cairo"]


@pytest.fixture
async def partition_consumers(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    amqp_connection: AbstractConnection,
) -> AsyncIterator[list[PartitionConsumer]]:
    handler = OrchestrationHandler(pool, functions, InstanceCache(), private_topology)
    relay = OutboxRelay(pool, publisher)
    consumers = await start_partition_consumers(
        handler, relay, publisher, private_topology, amqp_connection
    )
    yield consumers
    await stop_partition_consumers(consumers)


@pytest.fixture
async def activity_worker(
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    amqp_connection: AbstractConnection,
) -> AsyncIterator[ActivityWorker]:
    declaring = await amqp_connection.channel()
    await declare_activity_queues(declaring, private_topology, functions.activities)
    await declaring.close()
    worker = ActivityWorker(functions, publisher, private_topology, prefetch=8, threads=2)
    await worker.attach(amqp_connection)
    yield worker
    await worker.stop(timeout=5)


async def publish_raw(
    channel: AbstractChannel, exchange: str, routing_key: str, body: bytes
) -> None:
    target = await channel.get_exchange(exchange, ensure=False)
    await target.publish(aio_pika.Message(body), routing_key)


def with_bad_task_id(body: bytes) -> bytes:
    """Well-formed JSON whose ``task_scheduled_id`` is not a number."""
    document = json.loads(body)
    document["body"]["task_scheduled_id"] = "seven"
    return json.dumps(document).encode()


async def assert_dead_lettered(
    channel: AbstractChannel, queue_name: str, expected: dict[bytes, list[str]]
) -> None:
    """``queue_name.dlq`` holds exactly these bodies, each with a reason naming its problem."""
    dead = await receive(channel, f"{queue_name}.dlq", len(expected))
    # Deliveries may be settled concurrently, so the order of the dead letters is not fixed.
    assert sorted(message.body for message in dead) == sorted(expected)
    for message in dead:
        reason = header_text(message, "x-dead-letter-reason")
        for words in expected[message.body]:
            assert words in reason, f"{words!r} not in {reason!r}"
        assert header_text(message, "x-original-queue") == queue_name


async def test_invalid_orchestrator_messages_are_dead_lettered_and_the_partition_keeps_going(
    partition_consumers: list[PartitionConsumer],
    activity_worker: ActivityWorker,
    private_client: DurableClient,
    private_topology: Topology,
    channel: AbstractChannel,
) -> None:
    instance_id = unique("hello-")
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))
    violating = with_bad_task_id(
        messages.task_completed(instance_id, "e1", 0, "x").model_dump_json().encode()
    )
    await publish_raw(channel, exchange, routing_key, GARBAGE)
    await publish_raw(channel, exchange, routing_key, violating)

    await private_client.start_new("hello_cities", instance_id, CITIES)

    status = await private_client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output == [f"Hello {city}!" for city in CITIES]
    await assert_dead_lettered(
        channel,
        queue_name,
        {
            GARBAGE: ["invalid message", "Invalid JSON"],
            violating: ["invalid message", "task_scheduled_id"],
        },
    )


async def test_invalid_activity_tasks_are_dead_lettered_and_the_worker_keeps_going(
    partition_consumers: list[PartitionConsumer],
    activity_worker: ActivityWorker,
    private_client: DurableClient,
    private_topology: Topology,
    channel: AbstractChannel,
) -> None:
    exchange, routing_key = private_topology.activity_route("say_hello")
    queue_name = private_topology.activity_queue("say_hello")
    valid_task = (
        messages.activity_task(unique("task-"), "say_hello", "Lima").model_dump_json().encode()
    )
    violating = with_bad_task_id(valid_task)
    misrouted = messages.activity_task(unique("task-"), "square", 3).model_dump_json().encode()
    for body in (GARBAGE, violating, misrouted):
        await publish_raw(channel, exchange, routing_key, body)

    instance_id = await private_client.start_new("hello_cities", input=CITIES)

    status = await private_client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output == [f"Hello {city}!" for city in CITIES]
    await assert_dead_lettered(
        channel,
        queue_name,
        {
            GARBAGE: ["invalid message", "Invalid JSON"],
            violating: ["invalid message", "task_scheduled_id"],
            misrouted: ["'square'", "does not belong", queue_name],
        },
    )
