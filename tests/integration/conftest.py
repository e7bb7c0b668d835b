"""Fixtures for the integration tests: the real Postgres and RabbitMQ, everything in-process.

Tests that read from queues declare a broker namespace of their own (``private_topology``):
the session namespace is shared with the end-to-end services, and when a whole-suite run has
started them, their orchestrator is the single active consumer of the session's partition
queues and their sweeper publishes the session database's outbox. For the same reason the
relay tests sweep an outbox in a database of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

from contracts import Topology
from durable import FunctionApp
from durable.broker import Publisher, connect
from durable.client import DurableClient
from durable.declarations import declare_activity_queues
from durable.store.database import create_pool
from services.activities.worker import ActivityWorker
from services.common.loader import load_function_apps
from services.orchestrator.cache import InstanceCache
from services.orchestrator.handler import OrchestrationHandler
from tests.conftest import (
    ADMIN_URL,
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    database_url_for,
    delete_broker_objects,
    drop_database,
    unique,
)
from tests.integration import functions as integration_functions


@pytest.fixture(scope="session")
def functions() -> FunctionApp:
    """The deployed test functions plus the few only these tests use."""
    app = load_function_apps(TEST_FUNCTION_MODULES.split(","))
    app.merge(integration_functions.app)
    return app


@pytest.fixture
def new_handler(
    pool: asyncpg.Pool, functions: FunctionApp, topology: Topology
) -> Callable[..., OrchestrationHandler]:
    """Build handlers on the session database, each with a cache of its own."""

    def build(cache_instances: int = 10_000) -> OrchestrationHandler:
        return OrchestrationHandler(
            pool, functions, InstanceCache(max_instances=cache_instances), topology
        )

    return build


@pytest.fixture
async def private_topology() -> AsyncIterator[Topology]:
    """A broker namespace for one test, deleted afterwards."""
    topology = Topology(namespace=unique("ti"), partitions=4)
    yield topology
    # The queues of the activities only these tests define too (tests declare them for
    # ``functions``).
    activities = activity_names_under_test() + sorted(integration_functions.app.activities)
    await delete_broker_objects(topology, activities)


@pytest.fixture
async def publisher(private_topology: Topology) -> AsyncIterator[Publisher]:
    """A confirming publisher; opening it declares the namespace's orchestrator queues."""
    publisher = await Publisher.open(AMQP_URL, private_topology, "integration.publish")
    yield publisher
    await publisher.close()


@pytest.fixture
def private_client(
    pool: asyncpg.Pool, publisher: Publisher, private_topology: Topology
) -> DurableClient:
    """A client on the session database that publishes into the private namespace."""
    return DurableClient(pool, publisher, private_topology)


@pytest.fixture
async def amqp_connection() -> AsyncIterator[AbstractConnection]:
    """A connection for consuming, separate from the publisher's."""
    connection = await connect(AMQP_URL, "integration.consume")
    yield connection
    await connection.close()


@pytest.fixture
async def channel(amqp_connection: AbstractConnection) -> AbstractChannel:
    return await amqp_connection.channel()


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A database with no tables at all (not migrated)."""
    name = unique("df_empty_")
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url_for(name)
    yield url
    await drop_database(url)


@pytest.fixture
async def private_pool() -> AsyncIterator[asyncpg.Pool]:
    """A pool on a migrated database of its own, whose outbox no other process sweeps."""
    url = await create_database()
    pool = await create_pool(url, min_size=1, max_size=5)
    yield pool
    await pool.close()
    await drop_database(url)


@pytest.fixture
async def worker(
    functions: FunctionApp,
    private_topology: Topology,
    publisher: Publisher,
    channel: AbstractChannel,
) -> AsyncIterator[ActivityWorker]:
    """An activity worker on the private namespace, not consuming yet; every activity's queue
    is declared."""
    await declare_activity_queues(channel, private_topology, functions.activities)
    worker = ActivityWorker(functions, publisher, private_topology, prefetch=8, threads=2)
    yield worker
    await worker.stop(timeout=5)
