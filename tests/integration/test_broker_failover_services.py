"""The real services on a three-node RabbitMQ cluster (issue 17): the orchestrator, activities
and client processes, given the list of the nodes in ``DF_AMQP_URL``, complete every
orchestration of a load while the node leading the most partition queues is killed -9.

The time from the kill to the first event committed after it is printed (``-s``):
``ha figure: ...``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.conftest import unique
from tests.helpers.cluster_services import services_on
from tests.helpers.rabbit_cluster import RabbitCluster
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.ha

INSTANCES = 400
CITIES = 5
PARTITIONS = 8


def cities(index: int) -> list[str]:
    return [f"City-{index}-{step}" for step in range(CITIES)]


@pytest.fixture
async def deployment(
    tmp_path: Path,
) -> AsyncIterator[tuple[RabbitCluster, ServiceGroup, DurableClient, asyncpg.Pool]]:
    async with (
        RabbitCluster.started(nodes=3) as cluster,
        services_on(
            cluster, tmp_path / "logs", partitions=PARTITIONS, name="ha-services-test"
        ) as services,
    ):
        yield cluster, services.group, services.client, services.pool


async def test_every_orchestration_completes_once_while_the_busiest_node_is_killed(
    deployment: tuple[RabbitCluster, ServiceGroup, DurableClient, asyncpg.Pool],
) -> None:
    cluster, group, client, pool = deployment
    topology = CommonSettings(partitions=PARTITIONS).topology
    ids = [f"ha-{index:04d}-{unique('')}" for index in range(INSTANCES)]
    # Leaders stay where they are until a node fails: asked before the load, not during it.
    partition_queues = [
        f"{group.env['DF_NAMESPACE']}.orchestrator.{topology.partition_routing_key(p)}"
        for p in range(PARTITIONS)
    ]
    leaders = await cluster.leaders(partition_queues)
    busiest = await cluster.node_leading_most(partition_queues)
    led = [i for i in ids if leaders[partition_queues[topology.partition_for(i)]] == busiest.name]
    started = time.monotonic()
    for first in range(0, INSTANCES, 50):
        await asyncio.gather(
            *(
                client.start_new("hello_cities", instance_id, cities(index))
                for index, instance_id in enumerate(ids[first : first + 50], start=first)
            )
        )

    async def under_way() -> bool:
        done = await pool.fetchval(
            "SELECT count(*) FROM events WHERE event_type = 'ExecutionCompleted'"
        )
        assert done >= INSTANCES // 10, f"{done} completed so far"
        return True

    await assert_eventually(under_way, timeout=60, interval=0.1)
    completed_before = await pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'ExecutionCompleted'"
    )
    killed_at = datetime.now(UTC)
    cluster.kill(busiest)
    assert completed_before < INSTANCES, "the load ended before the kill"

    async def all_completed() -> bool:
        ended = await pool.fetchval(
            "SELECT count(*) FROM instances WHERE instance_id = ANY($1::text[]) "
            "AND status = 'Completed'",
            ids,
        )
        assert ended == INSTANCES, f"{ended} of {INSTANCES} completed"
        return True

    await assert_eventually(all_completed, timeout=120, interval=0.2)
    total_seconds = time.monotonic() - started

    rows = await pool.fetch(
        "SELECT instance_id, output FROM instances WHERE instance_id = ANY($1::text[])", ids
    )
    outputs = {row["instance_id"]: json.loads(row["output"]) for row in rows}
    for index, instance_id in enumerate(ids):
        assert outputs[instance_id] == [f"Hello {city}!" for city in cities(index)]
    counts = await pool.fetch(
        "SELECT instance_id, count(*) FILTER (WHERE event_type = 'ExecutionCompleted') AS ends, "
        "count(*) FILTER (WHERE event_type = 'TaskCompleted') AS results "
        "FROM events WHERE instance_id = ANY($1::text[]) GROUP BY instance_id",
        ids,
    )
    assert len(counts) == INSTANCES
    assert all((row["ends"], row["results"]) == (1, CITIES) for row in counts), [
        dict(row) for row in counts if (row["ends"], row["results"]) != (1, CITIES)
    ]
    first_commit = await pool.fetchval(
        "SELECT min(recorded_at) FROM events WHERE recorded_at > $1", killed_at
    )
    # The instances of the partitions whose queues the killed node led wait for a new leader.
    first_led_commit = await pool.fetchval(
        "SELECT min(recorded_at) FROM events WHERE recorded_at > $1 "
        "AND instance_id = ANY($2::text[])",
        killed_at,
        led,
    )
    longest_pause = await pool.fetchval(
        "SELECT max(gap) FROM (SELECT recorded_at - lag(recorded_at) OVER (ORDER BY "
        "recorded_at) AS gap FROM events "
        "WHERE recorded_at > $1::timestamptz - interval '1 second') gaps",
        killed_at,
    )
    led_queues = sum(1 for name in leaders.values() if name == busiest.name)
    print(
        f"ha figure: node {busiest.name} (leading {led_queues} "
        f"of {PARTITIONS} partition queues) killed -9 with {completed_before} of {INSTANCES} "
        f"orchestrations completed; first commit {seconds(first_commit, killed_at)} after the "
        f"kill, first of an instance of a partition it led {seconds(first_led_commit, killed_at)}, "
        f"longest pause between commits {longest_pause.total_seconds():.2f} s; all completed "
        f"once, {total_seconds:.1f} s from the first start"
    )


def seconds(later: datetime | None, earlier: datetime) -> str:
    return "none" if later is None else f"{(later - earlier).total_seconds():.2f} s"
