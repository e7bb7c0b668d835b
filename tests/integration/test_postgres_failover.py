"""The event store on a Postgres primary with a synchronous standby (issue 17, first part): a
commit is acknowledged only once the standby has it, and after the primary is killed and the
standby promoted, the store's pool finds the new primary through the multi-host DSN with
every acknowledged write there.

The pair is built by the test itself (``tests/helpers/pg_cluster.py``); the machine's own
Postgres is not involved.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from durable.store.database import Connection, create_pool, in_transaction
from durable.store.errors import is_unreachable
from durable.store.events import load_history
from durable.store.hosts import HOST_CONNECT_SECONDS
from durable.store.queries import fetch_instance
from services.common.migrate import apply_migrations
from tests.helpers.pg_cluster import PostgresPair
from tests.helpers.waiting import assert_eventually
from tests.store.factories import running_instance

pytestmark = pytest.mark.ha


async def test_a_commit_waits_for_the_standby() -> None:
    async with PostgresPair.started() as pair:
        primary = await asyncpg.connect(pair.node_dsn(pair.primary))
        try:
            await primary.execute("CREATE TABLE acknowledged (n int)")
            await assert_commit_waits_for_the_standby(pair, primary, 1)
        finally:
            await primary.close()


async def assert_commit_waits_for_the_standby(
    pair: PostgresPair, primary: asyncpg.Connection, n: int
) -> None:
    """With the standby stopped, inserting ``n`` is not acknowledged; once it is back, it is."""
    pair.standby.stop()
    commit = asyncio.ensure_future(primary.execute("INSERT INTO acknowledged VALUES ($1)", n))
    # Not acknowledged while no standby has it (a second is plenty for a local commit).
    done, _ = await asyncio.wait({commit}, timeout=1.0)
    assert not done
    pair.standby.start()
    await asyncio.wait_for(commit, 30)


async def test_the_store_follows_a_promoted_standby_and_keeps_every_acknowledged_write() -> None:
    async with PostgresPair.started() as pair:
        pool = await create_pool(pair.dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as connection:
                await apply_migrations(connection)
            instance_id, last_seq = await running_instance(pool)

            pair.kill_primary()
            pair.promote_standby()

            async def history_on_the_new_primary() -> int:
                try:
                    events = await load_history(pool, instance_id)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as error:
                    raise AssertionError(f"not yet: {error!r}") from error
                return len(events)

            assert await assert_eventually(history_on_the_new_primary, timeout=30) == last_seq
            row = await fetch_instance(pool, instance_id)
            assert row is not None
            assert row.runtime_status.value == "Running"
            assert await pool.fetchval("SELECT pg_is_in_recovery()") is False
            # The pool writes to the new primary.
            assert (await running_instance(pool))[1] == last_seq
        finally:
            await pool.close()


async def test_while_no_host_takes_writes_the_store_is_unreachable_until_one_is_promoted() -> None:
    async with PostgresPair.started() as pair:
        # Only standbys among the hosts, all of them up: a switchover between the old
        # primary's demotion and the promotion. asyncpg says so with a client error of its
        # own, which must read as an outage (wait, answer 503), not as the work's fault.
        standbys_only = (
            f"postgresql://postgres@127.0.0.1:{pair.standby.port}/postgres"
            "?target_session_attrs=read-write"
        )
        with pytest.raises(asyncpg.InternalClientError) as refused:
            await asyncpg.connect(standbys_only)
        assert is_unreachable(refused.value)

        pair.promote_standby()
        connection = await asyncpg.connect(standbys_only)
        try:
            assert await connection.fetchval("SELECT pg_is_in_recovery()") is False
        finally:
            await connection.close()


async def test_a_new_connection_skips_a_primary_that_stopped_answering() -> None:
    # A frozen primary (its kernel still accepts TCP connections, no server process answers)
    # must not take the whole connect time: the next host, promoted meanwhile, is tried.
    async with PostgresPair.started() as pair:
        pair.primary.freeze()
        pair.promote_standby()
        started = time.monotonic()
        pool = await asyncio.wait_for(create_pool(pair.dsn, min_size=1, max_size=1), 30)
        try:
            assert not await pool.fetchval("SELECT pg_is_in_recovery()")
            assert await pool.fetchval("SELECT current_setting('port')::int") == pair.standby.port
        finally:
            await pool.close()
        assert time.monotonic() - started < HOST_CONNECT_SECONDS + 5


async def test_a_standby_listed_first_is_passed_over_for_the_primary() -> None:
    # After a failover the first host of DF_DATABASE_URL is often the old primary, now a
    # standby: the pool must go on to the next host rather than stop at the first answer.
    async with PostgresPair.started() as pair:
        hosts = f"127.0.0.1:{pair.standby.port},127.0.0.1:{pair.primary.port}"
        dsn = f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            assert await pool.fetchval("SELECT current_setting('port')::int") == pair.primary.port
        finally:
            await pool.close()


async def test_a_rebuilt_standby_makes_the_pair_synchronous_again_and_able_to_fail_over() -> None:
    async with PostgresPair.started() as pair:
        first = pair.primary
        connection = await asyncpg.connect(pair.node_dsn(pair.primary))
        await connection.execute("CREATE TABLE acknowledged (n int)")
        await connection.close()
        pair.kill_primary()
        pair.promote_standby()
        pair.rebuild_standby()
        assert (pair.standby.port, pair.standby.directory) == (first.port, first.directory)

        primary = await asyncpg.connect(pair.node_dsn(pair.primary))
        try:
            assert await primary.fetchval("SHOW synchronous_standby_names") == "standby"
            await asyncio.wait_for(primary.execute("INSERT INTO acknowledged VALUES (1)"), 30)
            await assert_commit_waits_for_the_standby(pair, primary, 2)
        finally:
            await primary.close()

        # And it fails over again, with every acknowledged row.
        pair.kill_primary()
        pair.promote_standby()
        promoted = await asyncpg.connect(pair.dsn)
        try:
            assert await promoted.fetchval("SELECT pg_is_in_recovery()") is False
            assert await promoted.fetchval("SELECT array_agg(n ORDER BY n) FROM acknowledged") == [
                1,
                2,
            ]
        finally:
            await promoted.close()


async def test_a_transaction_cancelled_on_a_frozen_server_ends_at_once() -> None:
    # A lost partition's consumer is cancelled in the middle of its batch: waiting for a
    # rollback on a server that does not answer would hold its stop for a command time-out.
    async with PostgresPair.started() as pair:
        pool = await create_pool(pair.dsn, min_size=1, max_size=1, command_timeout=30)
        began, frozen = asyncio.Event(), asyncio.Event()

        async def work(connection: Connection) -> None:
            began.set()
            await frozen.wait()
            await connection.execute("SELECT 1")

        try:
            batch = asyncio.create_task(in_transaction(pool, work))
            await began.wait()
            pair.primary.freeze()
            frozen.set()
            batch.cancel()
            started = time.monotonic()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(batch, 5)
            assert time.monotonic() - started < 5
        finally:
            pool.terminate()
