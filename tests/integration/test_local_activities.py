"""Local activities run in the orchestrator; when their result is not recorded there, the
activity service runs them from the outbox.

Partition consumers run in-process against the real broker and a database of their own
(whose outbox only these tests sweep), with no activity worker unless the test starts one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aio_pika.abc import AbstractConnection

from contracts import OrchestrationStatus, Topology
from durable import FunctionApp
from durable.broker import Publisher, connect
from durable.client import DurableClient
from durable.declarations import declare_activity_queues
from services.activities.worker import ActivityWorker
from services.orchestrator.cache import InstanceCache
from services.orchestrator.consumer import PartitionConsumer
from services.orchestrator.handler import OrchestrationHandler
from services.orchestrator.local import LocalActivities
from services.orchestrator.relay import OutboxRelay
from tests.conftest import AMQP_URL, unique
from tests.helpers.waiting import assert_eventually, wait_for_status
from tests.integration import functions as integration_functions
from tests.integration.consumers import start_partition_consumers, stop_partition_consumers


class Orchestrator:
    """The partition consumers of one in-process orchestrator, on a connection of their own
    that the test can lose."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        functions: FunctionApp,
        topology: Topology,
        publisher: Publisher,
    ) -> None:
        self._handler = OrchestrationHandler(pool, functions, InstanceCache(), topology)
        self._topology = topology
        self._publisher = publisher
        # Grace 0: the test's sweep takes every row that is left, at once.
        self.relay = OutboxRelay(pool, publisher, grace_seconds=0)
        self.local = LocalActivities(functions, topology, threads=2)
        self.consumers: list[PartitionConsumer] = []
        self.connection: AbstractConnection | None = None

    async def start(self) -> None:
        """Start the consumers, or attach them to a new connection after a lost one."""
        self.connection = await connect(AMQP_URL, "integration.local-activities")
        if not self.consumers:
            self.consumers = await start_partition_consumers(
                self._handler,
                self.relay,
                self._publisher,
                self._topology,
                self.connection,
                self.local,
            )
            return
        for consumer in self.consumers:
            await consumer.attach(self.connection)

    async def lose_connection(self) -> None:
        """What the connection supervisor does when the broker connection drops."""
        assert self.connection is not None
        await self.connection.close()
        for consumer in self.consumers:
            consumer.detach()

    async def stop(self) -> None:
        await stop_partition_consumers(self.consumers)
        if self.connection is not None:
            await self.connection.close()
        self.local.close()
        await self.relay.close()


@pytest.fixture
async def orchestrator(
    private_pool: asyncpg.Pool,
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
) -> AsyncIterator[Orchestrator]:
    orchestrator = Orchestrator(private_pool, functions, private_topology, publisher)
    await orchestrator.start()
    yield orchestrator
    await orchestrator.stop()


@pytest.fixture
async def client(
    private_pool: asyncpg.Pool, publisher: Publisher, private_topology: Topology
) -> AsyncIterator[DurableClient]:
    client = DurableClient(private_pool, publisher, private_topology)
    yield client
    await client.close()


async def outbox_rows(pool: asyncpg.Pool, topology: Topology, activity: str) -> int:
    exchange, routing_key = topology.activity_route(activity)
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE exchange = $1 AND routing_key = $2",
            exchange,
            routing_key,
        )
    )


async def test_a_chain_of_local_activities_completes_with_no_activity_service_running(
    orchestrator: Orchestrator,
    client: DurableClient,
    private_topology: Topology,
    private_pool: asyncpg.Pool,
) -> None:
    pool = private_pool
    instance_id = await client.start_new("shouts", unique("local-"), ["a", "b", "c"])

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output == ["A!", "B!", "C!"]
    events = await pool.fetch(
        "SELECT event_type FROM events WHERE instance_id = $1 ORDER BY seq", instance_id
    )
    types = [row["event_type"] for row in events]
    assert types.count("TaskScheduled") == types.count("TaskCompleted") == 3

    # Each task's outbox row was its safety net until its result was recorded; then it goes.
    async def rows_gone() -> bool:
        return await outbox_rows(pool, private_topology, "shout") == 0

    await assert_eventually(rows_gone, message="the local tasks' outbox rows stayed")


async def test_a_local_task_whose_result_was_not_recorded_is_run_by_the_activity_service(
    orchestrator: Orchestrator,
    client: DurableClient,
    private_topology: Topology,
    publisher: Publisher,
    functions: FunctionApp,
    private_pool: asyncpg.Pool,
    amqp_connection: AbstractConnection,
) -> None:
    pool = private_pool
    key = unique("held-")
    integration_functions.LOCAL_GATES[key] = asyncio.Event()
    integration_functions.LOCAL_STARTED[key] = asyncio.Event()
    instance_id = await client.start_new("calls_held_local", unique("local-"), key)
    await asyncio.wait_for(integration_functions.LOCAL_STARTED[key].wait(), timeout=30)

    # The orchestrator loses its connection (and so, possibly, the partition) while the
    # local activity runs: the result it then produces is not recorded.
    await orchestrator.lose_connection()
    integration_functions.LOCAL_GATES[key].set()
    assert await outbox_rows(pool, private_topology, "held_local") == 1

    declaring = await amqp_connection.channel()
    await declare_activity_queues(declaring, private_topology, functions.activities)
    await declaring.close()
    worker = ActivityWorker(functions, publisher, private_topology, prefetch=8, threads=2)
    await worker.attach(amqp_connection)
    try:
        # The relay's sweeper hands the task left in the outbox to the activity service
        # (and the start's row too, if the client has not deleted it yet: a duplicate).
        assert await orchestrator.relay.sweep_once() >= 1
        assert await outbox_rows(pool, private_topology, "held_local") == 0
        await orchestrator.start()
        await wait_for_status(client, instance_id, OrchestrationStatus.COMPLETED)
    finally:
        await worker.stop(timeout=5)

    status = await client.get_status(instance_id)
    assert status is not None
    assert status.output == f"done {key}"
    # Activities run at least once: here, once in the orchestrator, once in the worker.
    assert integration_functions.LOCAL_RUNS[key] == 2
