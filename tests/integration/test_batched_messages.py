"""Tasks and results travel in batches (ADR 17), and a batch never takes its messages down
with one bad one.

The handler, a partition consumer and an activity worker run in-process against the real
broker and database.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence

import asyncpg
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts import (
    ACTIVITY_TASK_BATCH,
    ORCHESTRATOR_MESSAGE_BATCH,
    ActivityTaskMessage,
    OrchestrationStatus,
    OrchestratorMessage,
    TaskCompleted,
    Topology,
)
from durable import FunctionApp
from durable.broker import OutgoingMessage, Publisher, carrier
from durable.client import DurableClient
from durable.store.leases import Lease
from services.activities.results import ResultSender
from services.activities.worker import ActivityWorker
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import Committed, OrchestrationHandler
from services.orchestrator.relay import OutboxRelay
from tests.conftest import unique
from tests.helpers.waiting import wait_for_status
from tests.integration import messages
from tests.integration.consumers import start_partition_consumers, stop_partition_consumers
from tests.integration.messages import ids_on_one_partition
from tests.integration.queues import carried, receive


async def test_the_tasks_one_batch_schedules_for_an_activity_share_messages(
    pool: asyncpg.Pool, functions: FunctionApp, private_topology: Topology
) -> None:
    handler = OrchestrationHandler(
        pool, functions, InstanceCache(), private_topology, activity_batch=4
    )
    instance_id = unique("fan-")

    committed = await handler.handle([messages.start(instance_id, "fan_out_fan_in", 10)])

    [*batches] = [r.message for r in committed.records]
    assert [m.message_type for m in batches] == [ACTIVITY_TASK_BATCH] * 3
    tasks = [ActivityTaskMessage.model_validate(t) for m in batches for t in json.loads(m.body)]
    assert [len(json.loads(m.body)) for m in batches] == [4, 4, 2]
    assert [t.body.input for t in tasks] == list(range(10))
    assert {m.routing_key for m in batches} == {private_topology.activity_route("square")[1]}


async def test_results_sent_together_for_one_partition_leave_in_one_message(
    publisher: Publisher, private_topology: Topology, channel: AbstractChannel
) -> None:
    ids = ids_on_one_partition(private_topology, 3)
    results = [messages.task_completed(i, "e1", 0, f"done {i}") for i in ids]
    queue_name = private_topology.partition_queue(private_topology.partition_for(ids[0]))

    sender = ResultSender(publisher, private_topology)
    await sender.send(results[0])
    await asyncio.gather(*(sender.send(r) for r in results[1:]))

    alone, together = await receive(channel, queue_name, 2)
    assert alone.type == "TaskCompleted"
    assert together.type == ORCHESTRATOR_MESSAGE_BATCH
    assert carried([alone, together]) == results


async def publish_task_batch(
    publisher: Publisher, topology: Topology, tasks: list[ActivityTaskMessage]
) -> None:
    exchange, routing_key = topology.activity_route(tasks[0].body.name)
    singles = [OutgoingMessage.of(task, exchange, routing_key) for task in tasks]
    await publisher.publish(carrier(singles, ACTIVITY_TASK_BATCH))


async def test_a_worker_runs_every_task_of_a_batch_and_reports_each_result(
    worker: ActivityWorker,
    publisher: Publisher,
    private_topology: Topology,
    amqp_connection: AbstractConnection,
    channel: AbstractChannel,
) -> None:
    ids = ids_on_one_partition(private_topology, 3)
    tasks = [messages.activity_task(i, "square", n) for n, i in enumerate(ids, start=2)]
    await publish_task_batch(publisher, private_topology, tasks)

    await worker.attach(amqp_connection)

    queue_name = private_topology.partition_queue(private_topology.partition_for(ids[0]))
    [delivery] = await receive(channel, queue_name, 1)
    assert delivery.type == ORCHESTRATOR_MESSAGE_BATCH  # finished together, sent together
    results = carried([delivery])
    outputs = {r.envelope.instance_id: r.body for r in results}
    assert all(isinstance(body, TaskCompleted) for body in outputs.values())
    assert {i: b.result for i, b in outputs.items()} == {  # type: ignore[union-attr]
        i: n * n for n, i in enumerate(ids, start=2)
    }


async def test_a_slow_task_does_not_hold_back_the_results_of_its_batch(
    worker: ActivityWorker,
    publisher: Publisher,
    private_topology: Topology,
    amqp_connection: AbstractConnection,
    channel: AbstractChannel,
) -> None:
    ids = ids_on_one_partition(private_topology, 3)
    delays = [0, 0, 1.0]
    tasks = [
        messages.activity_task(i, "slow_echo", {"delay": d, "step": n})
        for n, (i, d) in enumerate(zip(ids, delays, strict=True))
    ]
    await publish_task_batch(publisher, private_topology, tasks)

    await worker.attach(amqp_connection)

    queue_name = private_topology.partition_queue(private_topology.partition_for(ids[0]))
    fast, slow = await receive(channel, queue_name, 2)
    assert sorted(r.envelope.instance_id for r in carried([fast])) == sorted(ids[:2])
    assert [r.envelope.instance_id for r in carried([slow])] == ids[2:]


async def test_a_batch_that_comes_back_is_split_into_single_tasks(
    worker: ActivityWorker,
    publisher: Publisher,
    private_topology: Topology,
    amqp_connection: AbstractConnection,
    channel: AbstractChannel,
) -> None:
    ids = ids_on_one_partition(private_topology, 3)
    tasks = [messages.activity_task(i, "square", 3) for i in ids]
    await publish_task_batch(publisher, private_topology, tasks)
    # A worker took the batch and died: the broker hands it out again, marked redelivered.
    [taken] = await receive(channel, private_topology.activity_queue("square"), 1, no_ack=False)
    await taken.nack(requeue=True)

    with structlog.testing.capture_logs() as logs:
        await worker.attach(amqp_connection)
        queue_name = private_topology.partition_queue(private_topology.partition_for(ids[0]))
        results = carried(await receive(channel, queue_name, 1))
        while len(results) < 3:
            results += carried(await receive(channel, queue_name, 1))

    assert [e["tasks"] for e in logs if e["event"] == "activity.unbatching"] == [3]
    assert sorted(r.envelope.instance_id for r in results) == sorted(ids)


class PickyHandler(OrchestrationHandler):
    """The real handler, except that a batch holding ``poison`` with anything else fails."""

    poison: uuid.UUID | None = None

    async def handle(
        self,
        messages: Sequence[OrchestratorMessage],
        partition: int | None = None,
        lease: Lease | None = None,
        *,
        express: bool = False,
    ) -> Committed:
        if len(messages) > 1 and any(m.envelope.message_id == self.poison for m in messages):
            raise RuntimeError("poisoned batch")
        return await super().handle(messages, partition, lease, express=express)


async def test_a_message_that_breaks_its_batch_is_retried_alone_and_the_rest_are_recorded(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    private_client: DurableClient,
    amqp_connection: AbstractConnection,
) -> None:
    handler = PickyHandler(pool, functions, InstanceCache(), private_topology)
    consumers: list[PartitionConsumer] = await start_partition_consumers(
        handler, OutboxRelay(pool, publisher), publisher, private_topology, amqp_connection
    )
    try:
        waiting = ids_on_one_partition(private_topology, 2)
        for instance_id in waiting:
            await private_client.start_new("waits_for_approval", instance_id, 60)
            await wait_for_status(private_client, instance_id, OrchestrationStatus.RUNNING)
        events = [messages.event_raised(i, None, "Approval", f"yes {i}") for i in waiting]
        handler.poison = events[1].envelope.message_id
        exchange, routing_key = private_topology.orchestrator_route(waiting[0])
        singles = [OutgoingMessage.of(event, exchange, routing_key) for event in events]
        await publisher.publish(carrier(singles, ORCHESTRATOR_MESSAGE_BATCH))

        for instance_id in waiting:
            await wait_for_status(private_client, instance_id, OrchestrationStatus.COMPLETED)
            status = await private_client.get_status(instance_id)
            assert status is not None
            assert status.output == {"answer": f"yes {instance_id}"}
    finally:
        await stop_partition_consumers(consumers)


async def test_tasks_through_the_services_code_complete_a_fan_out_in_batches(
    pool: asyncpg.Pool,
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    private_client: DurableClient,
    amqp_connection: AbstractConnection,
    channel: AbstractChannel,
    worker: ActivityWorker,
) -> None:
    handler = OrchestrationHandler(
        pool, functions, InstanceCache(), private_topology, activity_batch=8
    )
    consumers = await start_partition_consumers(
        handler, OutboxRelay(pool, publisher), publisher, private_topology, amqp_connection
    )
    await worker.attach(amqp_connection)
    try:
        instance_id = await private_client.start_new("fan_out_fan_in", input=50)
        status = await private_client.wait_for_completion(instance_id, timeout=30)
    finally:
        await stop_partition_consumers(consumers)
    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output == sum(n * n for n in range(50))
    recorded = await pool.fetchval(
        "SELECT count(*) FROM events WHERE instance_id = $1 AND event_type = 'TaskCompleted'",
        instance_id,
    )
    assert recorded == 50
