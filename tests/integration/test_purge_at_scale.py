"""Purging 10,000 ended instances by filter, in bounded batches, leaving every other instance
as it was.

The instances are written straight into a database of the test's own with the real schema (an
``instances`` row and three events each), as an orchestrator would have left them. Statement
triggers record how many rows each transaction deletes, so the batch bound is observed in the
database itself, whatever the timing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts import OrchestrationStatus, Topology
from durable.broker import Publisher
from durable.client import DurableClient
from tests.conftest import AMQP_URL, unique

ENDED = 10_000
BATCH = 500
EVENTS_PER_INSTANCE = 3
START = datetime(2026, 3, 1, tzinfo=UTC)
"""Created times of the purged instances: START + n ms, n = 0 … ENDED - 1."""
END = START + timedelta(milliseconds=ENDED - 1)


@pytest.fixture
async def client(private_pool: asyncpg.Pool) -> AsyncIterator[DurableClient]:
    # Purging publishes nothing: the broker is never connected.
    publisher = Publisher(AMQP_URL, Topology(namespace=unique("purge")), "purge-test")
    yield DurableClient(private_pool, publisher, Topology(namespace="unused"))
    await publisher.close()


async def add_instances(
    pool: asyncpg.Pool, prefix: str, count: int, status: str, first_created: datetime
) -> None:
    """``count`` instances ``{prefix}-00000…``, created a millisecond apart from
    ``first_created``, each with three events and, unless it has ended, a pending timer."""
    await pool.execute(
        """
        INSERT INTO instances (instance_id, name, execution_id, status, input, output,
                               correlation_id, created_at, updated_at, completed_at, last_seq)
        SELECT $1 || '-' || lpad(n::text, 5, '0'), 'hello_cities', 'e' || n, $3,
               '["Oslo"]', CASE WHEN $3 = 'Completed' THEN '["Hello Oslo!"]'::jsonb END,
               $1 || '-' || n, $4::timestamptz + n * interval '1 millisecond',
               $4::timestamptz + n * interval '1 millisecond',
               CASE WHEN $5 THEN $4::timestamptz + n * interval '1 millisecond' END, 3
        FROM generate_series(0, $2 - 1) AS n
        """,
        prefix,
        count,
        status,
        first_created,
        status in {s.value for s in OrchestrationStatus if s.is_terminal},
    )
    await pool.execute(
        """
        INSERT INTO events (instance_id, seq, execution_id, event_type, payload, recorded_at)
        SELECT i.instance_id, s.seq, i.execution_id, s.event_type,
               jsonb_build_object('event_type', s.event_type, 'timestamp', i.created_at),
               i.created_at
        FROM instances AS i,
             (VALUES (1, 'ExecutionStarted'), (2, 'TaskScheduled'), (3, 'TaskCompleted'))
                 AS s(seq, event_type)
        WHERE i.instance_id LIKE $1 || '-%'
        """,
        prefix,
    )
    await pool.execute(
        """
        INSERT INTO timers (instance_id, execution_id, timer_id, fire_at, correlation_id)
        SELECT instance_id, execution_id, 1, created_at + interval '1 day', correlation_id
        FROM instances WHERE instance_id LIKE $1 || '-%' AND completed_at IS NULL
        """,
        prefix,
    )


async def record_deletions(pool: asyncpg.Pool) -> None:
    """Every DELETE statement on instances and events adds (transaction, table, rows)."""
    await pool.execute(
        """
        CREATE TABLE deletions (txid bigint, table_name text, deleted bigint);
        CREATE FUNCTION record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO deletions SELECT txid_current(), TG_TABLE_NAME, count(*) FROM gone;
            RETURN NULL;
        END $$;
        CREATE TRIGGER instances_deletions AFTER DELETE ON instances
            REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION record_deletion();
        CREATE TRIGGER events_deletions AFTER DELETE ON events
            REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION record_deletion();
        """
    )


async def counts(pool: asyncpg.Pool, prefix: str) -> tuple[int, int, int]:
    """(instances, events, timers) of the instances ``{prefix}-…``."""
    pattern = f"{prefix}-%"
    return (
        await pool.fetchval("SELECT count(*) FROM instances WHERE instance_id LIKE $1", pattern),
        await pool.fetchval("SELECT count(*) FROM events WHERE instance_id LIKE $1", pattern),
        await pool.fetchval("SELECT count(*) FROM timers WHERE instance_id LIKE $1", pattern),
    )


async def test_purging_10000_ended_instances_by_filter_in_bounded_batches_keeps_the_others(
    client: DurableClient, private_pool: asyncpg.Pool
) -> None:
    await add_instances(private_pool, "purged", ENDED, "Completed", START)
    kept = {
        "running": (50, "Running", START),
        "pending": (10, "Pending", START),
        "failed": (50, "Failed", START),
        "terminated": (50, "Terminated", START),
        "earlier": (50, "Completed", START - timedelta(seconds=2)),
        "later": (50, "Completed", END + timedelta(seconds=1)),
    }
    for prefix, (count, status, first_created) in kept.items():
        await add_instances(private_pool, prefix, count, status, first_created)
    await record_deletions(private_pool)

    purged = await client.purge_instance_history_by(
        START, END, [OrchestrationStatus.COMPLETED], batch_size=BATCH
    )

    assert purged == ENDED
    assert await counts(private_pool, "purged") == (0, 0, 0)
    for prefix, (count, status, _) in kept.items():
        timers = 0 if status in {"Completed", "Failed", "Terminated"} else count
        assert await counts(private_pool, prefix) == (count, EVENTS_PER_INSTANCE * count, timers)
    per_transaction = await private_pool.fetch(
        """
        SELECT txid, sum(deleted) FILTER (WHERE table_name = 'instances') AS instances,
               sum(deleted) FILTER (WHERE table_name = 'events') AS events
        FROM deletions GROUP BY txid HAVING sum(deleted) > 0
        """
    )
    assert len(per_transaction) == ENDED // BATCH
    assert max(row["instances"] for row in per_transaction) == BATCH
    assert max(row["events"] for row in per_transaction) == BATCH * EVENTS_PER_INSTANCE
    assert sum(row["instances"] for row in per_transaction) == ENDED
