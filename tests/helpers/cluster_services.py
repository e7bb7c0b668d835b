"""The three services as processes on a test's RabbitMQ cluster, for the ha tests.

``services_on(cluster, log_dir, ...)`` makes a database of its own, starts the orchestrator,
activities and client services with ``DF_AMQP_URL`` listing the cluster's nodes, waits until
they are ready, and yields them with a client and a pool; everything is stopped and the
database dropped at the end. Outbox and timer grace periods are short, so that what a lost
node's connections did not publish is sent again soon.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from tests.conftest import (
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.helpers.rabbit_cluster import RabbitCluster


@dataclass
class ClusterServices:
    settings: CommonSettings
    group: ServiceGroup
    client: DurableClient
    pool: asyncpg.Pool


@contextlib.asynccontextmanager
async def services_on(
    cluster: RabbitCluster,
    log_dir: Path,
    *,
    partitions: int,
    name: str,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ClusterServices]:
    database_url = await create_database()
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=cluster.amqp_url,
        namespace=unique("ha"),
        partitions=partitions,
        function_modules=TEST_FUNCTION_MODULES,
    )
    group = ServiceGroup(
        service_env(settings, free_port())
        | {"DF_OUTBOX_GRACE_SECONDS": "1", "DF_TIMER_GRACE_SECONDS": "2"}
        | dict(env or {}),
        log_dir,
    )
    pool = await create_pool(database_url, min_size=1, max_size=4)
    client: DurableClient | None = None
    try:
        group.start()
        await group.wait_ready(settings.topology, activity_names_under_test(), timeout=90)
        client = await DurableClient.connect(settings, name=name)
        yield ClusterServices(settings, group, client, pool)
    finally:
        group.stop()
        if client is not None:
            await client.close()
        await pool.close()
        await drop_database(database_url)
