"""A deployment of its own for each fault test: database, broker namespace, service processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import pytest

from contracts import OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from tests.conftest import (
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.helpers.waiting import assert_eventually

T = TypeVar("T")


@dataclass
class Deployment:
    group: ServiceGroup
    topology: Topology
    client: DurableClient
    pool: asyncpg.Pool

    async def wait_ready(self) -> None:
        await self.group.wait_ready(self.topology, activity_names_under_test())

    async def eventually(
        self, check: Callable[[], Awaitable[T]], timeout: float, interval: float = 0.02
    ) -> T:
        """``assert_eventually``, with the services' logs added to a failure."""
        try:
            return await assert_eventually(check, timeout=timeout, interval=interval)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.group.logs()}") from error

    async def count_events(self, event_type: str) -> int:
        query = "SELECT count(*) FROM events WHERE event_type = $1"
        return int(await self.pool.fetchval(query, event_type))

    async def wait_for_events(self, event_type: str, at_least: int) -> int:
        async def reached() -> int:
            count = await self.count_events(event_type)
            assert count >= at_least, f"{count} {event_type} events, waiting for {at_least}"
            return count

        return await self.eventually(reached, timeout=60)

    async def count_ended_instances(self) -> int:
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM instances WHERE status = ANY($1::text[])",
                [s.value for s in OrchestrationStatus if s.is_terminal],
            )
        )


@pytest.fixture
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    database_url = await create_database()
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=unique("fault"),
        partitions=4,
        function_modules=TEST_FUNCTION_MODULES,
    )
    # A killed orchestrator can leave committed outbox rows unpublished; a short grace period
    # lets the restarted one's sweeper send them without slowing the test down.
    # Likewise a short timer grace period, so a timer fire the broker lost is re-fired quickly.
    # Two orchestrator processes, whatever the machine's cores: a crash of the service is a
    # crash of both (ADR 15).
    env = service_env(settings, free_port()) | {
        "DF_OUTBOX_GRACE_SECONDS": "1",
        "DF_TIMER_GRACE_SECONDS": "2",
        "DF_ORCHESTRATOR_PROCESSES": "2",
    }
    group = ServiceGroup(
        env, tmp_path_factory.mktemp("crash-logs"), names=("orchestrator", "activities")
    )
    pool = await create_pool(database_url, min_size=1, max_size=4)
    client = await DurableClient.connect(settings, name="crash-test")
    deployment = Deployment(group, settings.topology, client, pool)
    try:
        group.start()
        await deployment.wait_ready()
        yield deployment
    finally:
        group.stop()
        await client.close()
        await pool.close()
        await delete_broker_objects(settings.topology, activity_names_under_test())
        await drop_database(database_url)
