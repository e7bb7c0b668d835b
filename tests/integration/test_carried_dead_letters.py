"""A carrier dead-letters only its invalid messages, and an answer to a call never made is
dead-lettered, not dropped (ADR 21).

Partition consumers and an activity worker run in-process against the real broker and
database; carriers are published to the real partition and activity queues, as the services
publish them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from contracts import (
    ACTIVITY_TASK_BATCH,
    ORCHESTRATOR_MESSAGE_BATCH,
    Envelope,
    OrchestrationStatus,
    OrchestratorMessage,
    TaskCompleted,
    TimerFired,
    Topology,
)
from durable import FunctionApp
from durable.broker import OutgoingMessage, Publisher, carrier
from durable.client import DurableClient
from services.activities.worker import ActivityWorker
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.relay import OutboxRelay
from tests.helpers.waiting import wait_for_status
from tests.integration import messages
from tests.integration.consumers import start_partition_consumers, stop_partition_consumers
from tests.integration.messages import ids_on_one_partition
from tests.integration.queues import carried, header_text, receive


@pytest.fixture
async def partition_consumers(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    amqp_connection: AbstractConnection,
) -> AsyncIterator[list[PartitionConsumer]]:
    handler = OrchestrationHandler(pool, functions, InstanceCache(), private_topology)
    consumers = await start_partition_consumers(
        handler, OutboxRelay(pool, publisher), publisher, private_topology, amqp_connection
    )
    yield consumers
    await stop_partition_consumers(consumers)


def with_bad_task_id(body: bytes) -> bytes:
    """Well-formed JSON whose ``task_scheduled_id`` is not a number."""
    document = json.loads(body)
    document["body"]["task_scheduled_id"] = "seven"
    return json.dumps(document).encode()


def encoded(message: OrchestratorMessage) -> bytes:
    return message.model_dump_json().encode()


async def publish_carrier(
    publisher: Publisher, exchange: str, routing_key: str, bodies: list[bytes], message_type: str
) -> OutgoingMessage:
    """One carrier of ``bodies`` (valid or not), published as the services publish them."""
    singles = [
        OutgoingMessage(exchange, routing_key, str(uuid.uuid4()), "corr", "Carried", body)
        for body in bodies
    ]
    sent = carrier(singles, message_type)
    await publisher.publish(sent)
    return sent


def reason(letter: AbstractIncomingMessage) -> str:
    return header_text(letter, "x-dead-letter-reason")


async def test_a_start_carried_with_an_invalid_message_starts_and_only_that_one_is_dead_lettered(
    partition_consumers: list[PartitionConsumer],
    private_client: DurableClient,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    instance_id, other_id = ids_on_one_partition(private_topology, 2)
    start = messages.start(instance_id, "waits_for_approval", 60)
    invalid = with_bad_task_id(encoded(messages.task_completed(other_id, "e1", 0, "x")))
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))

    sent = await publish_carrier(
        publisher, exchange, routing_key, [encoded(start), invalid], ORCHESTRATOR_MESSAGE_BATCH
    )

    await wait_for_status(private_client, instance_id, OrchestrationStatus.RUNNING, timeout=10)
    [letter] = await receive(channel, f"{queue_name}.dlq", 1)
    assert letter.body == invalid
    assert reason(letter).startswith("element 1 of the carrier: invalid message:")
    assert "task_scheduled_id" in reason(letter)
    # It goes back, if re-driven, as the single message it is, not as a carrier.
    assert letter.type == "TaskCompleted"
    assert letter.message_id == json.loads(invalid)["envelope"]["message_id"]
    assert header_text(letter, "x-original-carrier") == sent.message_id
    assert header_text(letter, "x-original-queue") == queue_name


async def test_a_carrier_that_is_not_an_array_is_dead_lettered_whole(
    partition_consumers: list[PartitionConsumer],
    private_client: DurableClient,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    instance_id = ids_on_one_partition(private_topology, 1)[0]
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))
    body = b'{"messages": ["not", "an array"]}'
    await publisher.publish(
        OutgoingMessage(exchange, routing_key, "m1", "c1", ORCHESTRATOR_MESSAGE_BATCH, body)
    )

    [letter] = await receive(channel, f"{queue_name}.dlq", 1)

    assert letter.body == body
    assert letter.type == ORCHESTRATOR_MESSAGE_BATCH
    assert reason(letter).startswith("invalid message:")


async def test_an_activity_task_carried_with_invalid_ones_runs_and_they_are_dead_lettered_alone(
    worker: ActivityWorker,
    private_topology: Topology,
    publisher: Publisher,
    amqp_connection: AbstractConnection,
    channel: AbstractChannel,
) -> None:
    ids = ids_on_one_partition(private_topology, 3)
    valid = messages.activity_task(ids[0], "square", 7).model_dump_json().encode()
    invalid = with_bad_task_id(
        messages.activity_task(ids[1], "square", 8).model_dump_json().encode()
    )
    misrouted = messages.activity_task(ids[2], "say_hello", "Lima").model_dump_json().encode()
    exchange, routing_key = private_topology.activity_route("square")
    queue_name = private_topology.activity_queue("square")
    await publish_carrier(
        publisher, exchange, routing_key, [invalid, valid, misrouted], ACTIVITY_TASK_BATCH
    )

    await worker.attach(amqp_connection)

    partition_queue = private_topology.partition_queue(private_topology.partition_for(ids[0]))
    [result] = carried(await receive(channel, partition_queue, 1))
    assert result.envelope.instance_id == ids[0]
    assert isinstance(result.body, TaskCompleted)
    assert result.body.result == 49
    dead = await receive(channel, f"{queue_name}.dlq", 2)
    assert sorted(letter.body for letter in dead) == sorted([invalid, misrouted])
    reasons = {letter.body: reason(letter) for letter in dead}
    assert reasons[invalid].startswith("element 0 of the carrier: invalid message:")
    assert reasons[misrouted] == (
        f"element 2 of the carrier: activity 'say_hello' does not belong on {queue_name}"
    )
    assert {letter.type for letter in dead} == {"ActivityTask"}


async def a_waiting_instance(client: DurableClient, topology: Topology) -> tuple[str, str]:
    """A Running instance waiting for an event for a minute: its id and execution id."""
    [instance_id] = ids_on_one_partition(topology, 1)
    await client.start_new("waits_for_approval", instance_id, 60)
    await wait_for_status(client, instance_id, OrchestrationStatus.RUNNING)
    status = await client.get_status(instance_id)
    assert status is not None
    return instance_id, status.execution_id


async def test_a_result_for_a_task_never_scheduled_is_dead_lettered_with_its_reason(
    partition_consumers: list[PartitionConsumer],
    private_client: DurableClient,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    instance_id, execution_id = await a_waiting_instance(private_client, private_topology)
    stray = messages.task_completed(instance_id, execution_id, 5, "from nowhere")
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))

    await publisher.publish(OutgoingMessage.of(stray, exchange, routing_key))

    [letter] = await receive(channel, f"{queue_name}.dlq", 1)
    assert letter.body == encoded(stray)
    assert reason(letter) == (
        f"TaskCompleted for instance {instance_id!r} (execution {execution_id}): "
        "no activity #5 was scheduled"
    )
    current = await private_client.get_status(instance_id)
    assert current is not None
    assert current.runtime_status is OrchestrationStatus.RUNNING


async def test_a_fire_for_a_timer_never_created_is_dead_lettered_alone_from_its_carrier(
    partition_consumers: list[PartitionConsumer],
    private_client: DurableClient,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> None:
    instance_id, execution_id = await a_waiting_instance(private_client, private_topology)
    now = datetime.now(UTC)
    stray_fire = OrchestratorMessage(
        envelope=Envelope(
            message_id=uuid.uuid4(),
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id="c1",
            type="TimerFired",
            sent_at=now,
        ),
        body=TimerFired(timestamp=now, timer_id=7, fire_at=now),
    )
    approval = messages.event_raised(instance_id, None, "Approval", "yes")
    exchange, routing_key = private_topology.orchestrator_route(instance_id)
    queue_name = private_topology.partition_queue(private_topology.partition_for(instance_id))

    sent = await publish_carrier(
        publisher,
        exchange,
        routing_key,
        [encoded(stray_fire), encoded(approval)],
        ORCHESTRATOR_MESSAGE_BATCH,
    )

    await wait_for_status(private_client, instance_id, OrchestrationStatus.COMPLETED)
    [letter] = await receive(channel, f"{queue_name}.dlq", 1)
    assert OrchestratorMessage.model_validate_json(letter.body) == stray_fire
    assert letter.type == "TimerFired"
    assert header_text(letter, "x-original-carrier") == sent.message_id
    assert reason(letter) == (
        f"TimerFired for instance {instance_id!r} (execution {execution_id}): "
        "no timer #7 was scheduled"
    )
