"""A start whose connection was lost while its statement was on its way may have committed:
``settle_start`` finds out before the caller is answered, waiting for a statement the server
may still be running (issue 14's "no instance created by a call that answered an error")."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from durable.client import starts
from durable.client.starts import settle_start
from durable.store.database import create_pool
from durable.store.instances import NewInstance, insert_instances_txn
from tests.conftest import unique
from tests.helpers.proxy import TcpProxy


def new_instance() -> NewInstance:
    instance_id = unique("settle-")
    now = datetime.now(UTC)
    return NewInstance(instance_id, "hello_cities", uuid.uuid4().hex, instance_id, None, now)


async def test_a_start_that_committed_is_found(pool: asyncpg.Pool) -> None:
    instance = new_instance()
    async with pool.acquire() as connection:
        await insert_instances_txn(connection, [instance])

    assert await settle_start(pool, instance) is True


async def test_a_start_that_never_reached_the_database_is_not_found(pool: asyncpg.Pool) -> None:
    assert await settle_start(pool, new_instance()) is False


async def test_another_execution_under_the_same_id_is_not_this_start(pool: asyncpg.Pool) -> None:
    instance = new_instance()
    async with pool.acquire() as connection:
        await insert_instances_txn(connection, [instance])
    retried = NewInstance(
        instance.instance_id,
        instance.name,
        uuid.uuid4().hex,
        instance.instance_id,
        None,
        instance.created_at,
    )

    assert await settle_start(pool, retried) is False


@pytest.mark.parametrize("commits", [True, False], ids=["commits", "rolls-back"])
async def test_a_statement_still_running_is_waited_for(pool: asyncpg.Pool, commits: bool) -> None:
    instance = new_instance()
    async with pool.acquire() as lost:
        # The lost connection's statement, still running on the server: its row is not
        # visible to anyone until it commits.
        transaction = lost.transaction()
        await transaction.start()
        await insert_instances_txn(lost, [instance])
        settling = asyncio.create_task(settle_start(pool, instance))
        done, _ = await asyncio.wait({settling}, timeout=0.5)
        assert not done, "settled before the running statement ended"
        await (transaction.commit() if commits else transaction.rollback())

    assert await settling is commits
    exists = await pool.fetchval(
        "SELECT count(*) FROM instances WHERE instance_id = $1", instance.instance_id
    )
    assert exists == (1 if commits else 0)


async def test_a_database_that_does_not_come_back_leaves_the_outcome_unknown(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(starts, "SETTLE_SECONDS", 1.0)
    proxy = await TcpProxy.to_url(database_url)
    unreachable = await create_pool(proxy.url(database_url), min_size=0, max_size=1)
    try:
        await proxy.cut()

        assert await settle_start(unreachable, new_instance()) is None
    finally:
        await proxy.close()
        await unreachable.close()
