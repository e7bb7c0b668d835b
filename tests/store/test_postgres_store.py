"""The event store's contract suite, run against the Postgres store on the real server.

Another implementation (another server version, or a store with its own schema) runs the
same suite by subclassing the contracts with its own ``store`` and ``empty_store``
fixtures: a pool on a migrated store shared by the class's tests (each test uses ids of its
own), and a pool on one that is migrated and empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from durable.store.database import create_pool
from tests.conftest import create_database, drop_database
from tests.store.contract_events import EventsContract
from tests.store.contract_instances import InstancesContract
from tests.store.contract_leases import LeasesContract
from tests.store.contract_operations import OperationsContract
from tests.store.contract_outbox import OutboxContract


async def _migrated_pool() -> AsyncIterator[asyncpg.Pool]:
    url = await create_database()
    pool = await create_pool(url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
        await drop_database(url)


class TestPostgresEventStore(
    EventsContract, InstancesContract, OutboxContract, OperationsContract, LeasesContract
):
    @pytest.fixture(scope="class")
    @classmethod
    async def store(cls) -> AsyncIterator[asyncpg.Pool]:
        async for pool in _migrated_pool():
            yield pool

    @pytest.fixture
    async def empty_store(self) -> AsyncIterator[asyncpg.Pool]:
        async for pool in _migrated_pool():
            yield pool
