"""The real services on a three-node RabbitMQ cluster (issue 17) complete every orchestration
of a load, once each, while the node leading the most partition queues is cut off the network
for 20 s and then joined again.

The partition is a network namespace per node (``RabbitCluster.started(namespaces=True)``,
``tests/helpers/netns.py``): the machine has no iptables nor nft, but a root test may create
namespaces, veth pairs and a bridge. Setting the node's veth down on the host loses everything
it sends and is sent, to the other nodes and to the services alike, without a reset.

The nodes' configuration:

- ``cluster_partition_handling = pause_minority``: a node that sees fewer than half of the
  cluster's nodes stops its broker (closes its listeners and its clients' connections) until
  it sees a majority again, then starts it and rejoins by itself. With three nodes the cut-off
  node is the minority and the other two go on. ``ignore`` would leave the cluster split after
  the heal until someone restarts a node; ``autoheal`` would let the cut-off node go on
  serving its clients during the partition and restart the losers only after it. The product's
  queues are quorum queues, so neither could lose a confirmed message, but pause_minority is
  the one that needs no operator and serves no client from the minority.
- ``net_ticktime = 10`` (the default is 60): the nodes notice a lost peer in 7.5 to 12.5 s,
  and the cut-off node pauses within the 20 s partition. Quorum queues do not wait for it:
  their leaders are re-elected on the majority within seconds (Ra's own failure detector).

The services connect with the product's default heartbeat (10 s); a connection to the cut-off
node is noticed by its heartbeat, and the process reconnects to another node of
``DF_AMQP_URL``.

Printed (``-s``): ``ha figure: ...`` lines with the time from the partition to the first
commit after it, the longest pause between commits while the chains ran, when the cut-off
node paused, and the time from the heal to the node being back in the cluster.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.conftest import activity_names_under_test, unique
from tests.fault.replicas import dead_lettered, seconds
from tests.helpers.cluster_services import services_on
from tests.helpers.rabbit_cluster import RabbitCluster
from tests.helpers.waiting import assert_eventually

pytestmark = [pytest.mark.ha, pytest.mark.fault]

T = TypeVar("T")

CHAINS = 600
CITIES = 5
SLEEPERS = 200
PARTITIONS = 8
PARTITION_SECONDS = 20.0
NODE_CONFIG = ("net_ticktime = 10", "cluster_partition_handling = pause_minority")


@dataclass
class Deployment:
    cluster: RabbitCluster
    group: ServiceGroup
    settings: CommonSettings
    client: DurableClient
    pool: asyncpg.Pool

    async def eventually(
        self, check: Callable[[], Awaitable[T]], timeout: float, interval: float = 0.2
    ) -> T:
        """``assert_eventually``, with the services' logs added to a failure."""
        try:
            return await assert_eventually(check, timeout=timeout, interval=interval)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.group.logs()}") from error

    async def completed(self, event_type: str = "ExecutionCompleted") -> int:
        query = "SELECT count(*) FROM events WHERE event_type = $1"
        return int(await self.pool.fetchval(query, event_type))


def cities(index: int) -> list[str]:
    return [f"City-{index}-{step}" for step in range(CITIES)]


def sleeper_seconds(index: int) -> int:
    """Timers due 15 to 44 s after their start: before, during and after the partition."""
    return 15 + index % 30


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    async with (
        RabbitCluster.started(nodes=3, namespaces=True, config=NODE_CONFIG) as cluster,
        # Two orchestrator processes share the partitions.
        services_on(
            cluster,
            tmp_path / "logs",
            partitions=PARTITIONS,
            name="ha-partition-test",
            env={"DF_ORCHESTRATOR_PROCESSES": "2"},
        ) as services,
    ):
        yield Deployment(cluster, services.group, services.settings, services.client, services.pool)


async def test_every_orchestration_completes_once_across_a_partition_of_the_busiest_node(
    deployment: Deployment,
) -> None:
    cluster, topology = deployment.cluster, deployment.settings.topology
    chains = [f"hap-chain-{index:04d}-{unique('')}" for index in range(CHAINS)]
    sleepers = [f"hap-sleep-{index:04d}-{unique('')}" for index in range(SLEEPERS)]
    # Leaders stay where they are until a node fails: asked before the load, not during it.
    partition_queues = [topology.partition_queue(p) for p in range(PARTITIONS)]
    leaders = await cluster.leaders(partition_queues)
    busiest = await cluster.node_leading_most(partition_queues)
    led_queues = sum(1 for name in leaders.values() if name == busiest.name)
    led = [
        i
        for i in chains + sleepers
        if leaders[partition_queues[topology.partition_for(i)]] == busiest.name
    ]
    started = time.monotonic()
    starts: list[tuple[str, str, object]] = [
        ("sleeper", i, sleeper_seconds(n)) for n, i in enumerate(sleepers)
    ]
    starts += [("hello_cities", i, cities(n)) for n, i in enumerate(chains)]
    for first in range(0, len(starts), 50):
        await asyncio.gather(
            *(deployment.client.start_new(*start) for start in starts[first : first + 50])
        )

    async def under_way() -> int:
        done = await deployment.completed()
        assert done >= CHAINS // 10, f"{done} completed so far"
        return done

    completed_before = await deployment.eventually(under_way, timeout=60, interval=0.1)
    partitioned_at = datetime.now(UTC)
    cluster.partition(busiest)
    cut = time.monotonic()

    async def paused() -> bool:
        assert not await cluster.app_running(busiest), f"{busiest.name} still runs its broker"
        return True

    await deployment.eventually(paused, timeout=PARTITION_SECONDS, interval=0.5)
    paused_seconds = time.monotonic() - cut
    # The partition lasts a set time: the services work on the majority meanwhile.
    await asyncio.sleep(max(0.0, PARTITION_SECONDS - (time.monotonic() - cut)))
    completed_during = await deployment.completed()
    cluster.heal(busiest)
    healed = time.monotonic()

    paused_after_heal: set[str] = set()

    async def back_in_cluster() -> bool:
        # A node of the majority may pause too for a moment after the heal: pause_minority
        # pauses a node that hears of a partial partition until every node is up again.
        stopped = [node.name for node in cluster.nodes if not await cluster.app_running(node)]
        paused_after_heal.update(name for name in stopped if name != busiest.name)
        assert not stopped, f"brokers not running: {stopped}"
        try:
            running = await cluster.cluster_nodes()
        except RuntimeError as error:  # it paused between the two questions
            raise AssertionError(str(error)) from error
        assert running == sorted(node.name for node in cluster.nodes), f"running: {running}"
        return True

    await deployment.eventually(back_in_cluster, timeout=60, interval=0.2)
    back_seconds = time.monotonic() - healed

    async def all_completed() -> bool:
        ended = await deployment.pool.fetchval(
            "SELECT count(*) FROM instances WHERE instance_id = ANY($1::text[]) "
            "AND status = 'Completed'",
            chains + sleepers,
        )
        assert ended == CHAINS + SLEEPERS, f"{ended} of {CHAINS + SLEEPERS} completed"
        return True

    await deployment.eventually(all_completed, timeout=120)
    total_seconds = time.monotonic() - started

    await assert_outputs(deployment.pool, chains, sleepers)
    await assert_histories(deployment.pool, chains, sleepers)
    dead = await dead_lettered(topology, activity_names_under_test(), cluster.observer().url)
    assert dead == {}, dead

    figures = await commit_figures(deployment.pool, partitioned_at, chains, led)
    print(
        f"ha figure: node {busiest.name} (leading {led_queues} of {PARTITIONS} partition "
        f"queues) cut off for {PARTITION_SECONDS:.0f} s with {completed_before} of "
        f"{CHAINS + SLEEPERS} orchestrations completed ({completed_during} at the heal); "
        f"it paused its broker {paused_seconds:.1f} s after the cut"
    )
    print(
        f"ha figure: first commit {figures['first']} after the partition, first of an instance "
        f"of a partition it led {figures['first_led']}; longest pause between commits while "
        f"the chains ran {figures['longest_pause']}"
    )
    print(
        f"ha figure: back in the cluster {back_seconds:.1f} s after the heal (nodes of the "
        f"majority that paused meanwhile: {sorted(paused_after_heal) or 'none'}); all "
        f"{CHAINS + SLEEPERS} completed once, {total_seconds:.1f} s from the first start"
    )


async def assert_outputs(pool: asyncpg.Pool, chains: list[str], sleepers: list[str]) -> None:
    rows = await pool.fetch(
        "SELECT instance_id, output FROM instances WHERE instance_id = ANY($1::text[])",
        chains + sleepers,
    )
    outputs = {row["instance_id"]: json.loads(row["output"]) for row in rows}
    for index, instance_id in enumerate(chains):
        assert outputs[instance_id] == [f"Hello {city}!" for city in cities(index)]
    for instance_id in sleepers:
        output = outputs[instance_id]
        assert datetime.fromisoformat(output["resumed"]) >= datetime.fromisoformat(output["due"])


async def assert_histories(pool: asyncpg.Pool, chains: list[str], sleepers: list[str]) -> None:
    """Each instance ended once, with one result per step: nothing lost, nothing doubled."""
    counts = await pool.fetch(
        "SELECT instance_id, count(*) FILTER (WHERE event_type = 'ExecutionCompleted') AS ends, "
        "count(*) FILTER (WHERE event_type = 'TaskCompleted') AS results, "
        "count(*) FILTER (WHERE event_type = 'TimerFired') AS fired "
        "FROM events WHERE instance_id = ANY($1::text[]) GROUP BY instance_id",
        chains + sleepers,
    )
    expected = {i: (1, CITIES, 0) for i in chains} | {i: (1, 0, 1) for i in sleepers}
    found = {row["instance_id"]: (row["ends"], row["results"], row["fired"]) for row in counts}
    wrong = {i: found.get(i) for i, want in expected.items() if found.get(i) != want}
    assert not wrong, f"{len(wrong)} instances with other counts: {list(wrong.items())[:10]}"


async def commit_figures(
    pool: asyncpg.Pool, partitioned_at: datetime, chains: list[str], led: list[str]
) -> dict[str, str]:
    first = await pool.fetchval(
        "SELECT min(recorded_at) FROM events WHERE recorded_at > $1", partitioned_at
    )
    # The instances of the partitions whose queues the cut-off node led wait for new leaders.
    first_led = await pool.fetchval(
        "SELECT min(recorded_at) FROM events WHERE recorded_at > $1 "
        "AND instance_id = ANY($2::text[])",
        partitioned_at,
        led,
    )
    # Up to the last chain's end: after it only timers remain, whose gaps are their due times.
    chains_ended = await pool.fetchval(
        "SELECT max(recorded_at) FROM events WHERE instance_id = ANY($1::text[])", chains
    )
    longest = await pool.fetchrow(
        "SELECT gap, at FROM (SELECT recorded_at - lag(recorded_at) OVER (ORDER BY "
        "recorded_at) AS gap, recorded_at AS at FROM events WHERE recorded_at BETWEEN $1 AND $2"
        ") gaps WHERE gap IS NOT NULL ORDER BY gap DESC LIMIT 1",
        partitioned_at - timedelta(seconds=1),
        chains_ended,
    )
    if longest is None:
        pause = "none (the chains ended before the partition)"
    else:
        resumed, gap = seconds(longest["at"], partitioned_at), longest["gap"].total_seconds()
        pause = (
            f"{gap:.2f} s, from {resumed - gap:.2f} "
            f"to {resumed:.2f} s after the partition (the chains ended "
            f"{seconds(chains_ended, partitioned_at):.1f} s after it)"
        )
    return {
        "first": after(first, partitioned_at),
        "first_led": after(first_led, partitioned_at),
        "longest_pause": pause,
    }


def after(later: datetime | None, earlier: datetime) -> str:
    return "none" if later is None else f"{seconds(later, earlier):.2f} s"
