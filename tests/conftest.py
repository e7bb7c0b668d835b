"""Shared fixtures: a fresh database and a unique broker namespace per test session.

Integration and end-to-end tests use the real Postgres and RabbitMQ (``DF_TEST_DATABASE_ADMIN_URL``
and ``DF_AMQP_URL``, defaulting to the local ones). Each session creates its own database and
namespaces its queues, and removes both at the end. On a machine without local services but
with Docker, the session starts both in containers (testcontainers) instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import asyncpg
import pytest

from contracts import Topology
from deploy.processes import ServiceGroup, free_port
from durable.client import DurableClient
from durable.entry_points import EntryPoints
from durable.settings import CommonSettings
from durable.store.database import create_pool
from services.common.migrate import apply_migrations
from tests.helpers import broker_users
from tests.helpers.approval import APPROVER_USERS, approval_env

ADMIN_URL = os.environ.get(
    "DF_TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AMQP_URL = os.environ.get("DF_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TEST_FUNCTION_MODULES = (
    "workflows.samples,workflows.patterns,workflows.approval,tests.apps.functions,tests.apps.orders,"
    "tests.apps.entities"
)
# The client service's access keys for the session: two management keys (as during a
# rotation) and a start key that may only start orchestrations and raise events.
MANAGEMENT_KEY = f"test-management-{uuid.uuid4().hex}"
ROTATED_MANAGEMENT_KEY = f"test-rotated-{uuid.uuid4().hex}"
START_KEY = f"test-start-{uuid.uuid4().hex}"


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def _start_containers() -> list[Any]:
    """Postgres 15 and RabbitMQ 3.10 in Docker, when the local ones are not there."""
    global ADMIN_URL, AMQP_URL
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError:
        return []
    try:
        postgres = (
            DockerContainer("postgres:15")
            .with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_exposed_ports(5432)
            .start()
        )
        rabbitmq = DockerContainer("rabbitmq:3.10").with_exposed_ports(5672).start()
    except Exception as error:  # no Docker daemon: the tests then report the real problem
        print(f"local services are down and containers could not start: {error}")
        return []
    host = postgres.get_container_host_ip()
    ADMIN_URL = f"postgresql://postgres@{host}:{postgres.get_exposed_port(5432)}/postgres"
    AMQP_URL = f"amqp://guest:guest@{host}:{rabbitmq.get_exposed_port(5672)}/"
    os.environ["DF_AMQP_URL"] = AMQP_URL
    deadline = time.monotonic() + 120
    while not (_reachable(ADMIN_URL) and _reachable(AMQP_URL)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return [postgres, rabbitmq]


_containers: list[Any] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    if not (_reachable(ADMIN_URL) and _reachable(AMQP_URL)):
        _containers.extend(_start_containers())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for container in _containers:
        container.stop()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def database_url_for(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def create_database() -> str:
    """A new, migrated database; returns its URL."""
    name = unique("df_test_")
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url_for(name)
    connection = await asyncpg.connect(url)
    try:
        await apply_migrations(connection)
    finally:
        await connection.close()
    return url


async def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def delete_broker_objects(topology: Topology, activity_names: list[str]) -> None:
    """Delete the namespace's queues and exchanges (names are known from the topology), the
    namespace's own delay cascade included (ADR 35)."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queues, _ = topology.orchestrator_declarations()
        declared = entry_points_under_test()
        entry_names = [topology.workflow_name(entry.queue) for entry in declared.entry_points]
        entry_queues, _ = topology.entry_queue_declarations(entry_names)
        delay_exchanges, delay_queues, _, _ = topology.delay_declarations()
        names = [q.name for q in queues + entry_queues + delay_queues]
        for activity in activity_names:
            names += [q.name for q in topology.activity_declarations(activity)[0]]
        for name in names:
            await channel.queue_delete(name)
        exchanges = [e.name for e in topology.exchanges() + delay_exchanges]
        exchanges += [topology.workflow_name(e.name) for e in declared.exchanges]
        exchanges += [e.name for e in topology.entry_exchange_declarations(entry_names)]
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


def entry_points_under_test() -> EntryPoints:
    """The broker entry points the test function modules declare (``DF_ENTRY_POINTS`` unset)."""
    from services.common.loader import load_entry_points

    settings = CommonSettings(function_modules=TEST_FUNCTION_MODULES, entry_points=None)
    return load_entry_points(settings)


def activity_names_under_test(function_modules: str = TEST_FUNCTION_MODULES) -> list[str]:
    """The activities services loading ``function_modules`` (``DF_FUNCTION_MODULES``) serve:
    the modules' and the built-in HTTP activity the activities service adds. A deployment
    that loads other modules than the session's must pass its own: ``wait_ready`` waits for
    a consumer on each of these queues."""
    from contracts.http import HTTP_ACTIVITY
    from services.common.loader import load_function_apps

    activities = load_function_apps(function_modules.split(",")).activities
    return sorted([*activities, HTTP_ACTIVITY])


def rabbitmqctl() -> list[str]:
    """How to run ``rabbitmqctl`` against the session's broker."""
    if len(_containers) == 2:
        return ["docker", "exec", "-i", _containers[1].get_wrapped_container().id, "rabbitmqctl"]
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.fail("the approval tests need rabbitmqctl to create the approvers' broker users")
    return [command]


@pytest.fixture(scope="session")
async def approver_broker_users() -> AsyncIterator[None]:
    """The approvers' broker users (``tests.helpers.approval.APPROVER_USERS``), for every
    deployment of the session; removed at its end."""
    command = rabbitmqctl()
    users = list(APPROVER_USERS.values())
    await broker_users.create(users, AMQP_URL, command)
    yield
    await broker_users.delete(users, command)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
def topology() -> Topology:
    return Topology(namespace=unique("t"), partitions=4)


@pytest.fixture(scope="session")
def settings(database_url: str, topology: Topology) -> CommonSettings:
    return CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=topology.namespace,
        partitions=topology.partitions,
        function_modules=TEST_FUNCTION_MODULES,
    )


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def broker_cleanup(topology: Topology) -> AsyncIterator[None]:
    yield
    await delete_broker_objects(topology, activity_names_under_test())


def service_env(settings: CommonSettings, http_port: int) -> dict[str, str]:
    return {
        "DF_DATABASE_URL": settings.database_url,
        "DF_AMQP_URL": settings.amqp_url,
        "DF_NAMESPACE": settings.namespace,
        "DF_PARTITIONS": str(settings.partitions),
        "DF_FUNCTION_MODULES": settings.function_modules,
        "DF_HTTP_PORT": str(http_port),
        "DF_MANAGEMENT_KEYS": f"{MANAGEMENT_KEY},{ROTATED_MANAGEMENT_KEY}",
        "DF_START_KEYS": START_KEY,
        # The client service's own default; its HTTP API and its submissions consumer each
        # choose a policy explicitly, which the tests then show it does not override.
        "DF_START_EXISTING": "replace_ended",
        "DF_LOG_LEVEL": "info",
        "DF_LOG_FORMAT": "console",
        **approval_env(),
    }


@pytest.fixture(scope="session")
async def services(
    settings: CommonSettings,
    broker_cleanup: None,
    approver_broker_users: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServiceGroup]:
    """The three services as real processes, shared by the end-to-end tests of a session."""
    log_dir = tmp_path_factory.mktemp("service-logs")
    group = ServiceGroup(service_env(settings, free_port()), log_dir)
    group.start()
    try:
        await group.wait_ready(settings.topology, activity_names_under_test())
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="session")
async def client(settings: CommonSettings, broker_cleanup: None) -> AsyncIterator[DurableClient]:
    durable = await DurableClient.connect(settings, name="tests")
    yield durable
    await durable.close()
