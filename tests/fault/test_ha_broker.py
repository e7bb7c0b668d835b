"""The loss of RabbitMQ nodes under load, with the real services (issue 17).

A three-node cluster built by the test (``tests.helpers.rabbit_cluster``), and the services as
processes, each given every node in ``DF_AMQP_URL``: two orchestrator replicas, two activity
workers and the client service (``tests.fault.ha_load``). Under a mixed load of 2,250
instances (chains, fan-outs, durable timers due before, during and after the faults, some
through the delay cascade, waits for events raised before each fault and at the end) and
starts through the HTTP API all along, the test kills -9 the node that leads the most
partition queues; once every partition commits again it starts that node again, waits until
it is back in the cluster, and kills -9 the node that leads the most partition queues then.
Quorum queues keep a majority through each loss, so nothing confirmed may be lost, and the
test ends with the checks of ``LoadUnderFault.finish``. An outage ends when every quorum queue
the lost node led has a new leader and every partition has committed since the kill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fault.ha_load import (
    LoadUnderFault,
    OnACluster,
    busiest_node,
    ha_on_a_cluster,
    led_elsewhere,
)
from tests.fault.workload import Shape

pytestmark = [pytest.mark.ha, pytest.mark.fault]

BACK_SECONDS = 90


def sleeper_seconds(index: int) -> int:
    """20 to 119 s: due from just before the first kill (about 22 s after the load starts) to
    well after the second (about a minute later); those of 31 s or more pass through the
    delay cascade."""
    return 20 + index % 100


SHAPES = (
    Shape("slow_chain", 300),
    Shape("slow_fan_out", 150),
    Shape("sleeper", 600, sleeper_seconds),
    Shape("waits_for_approval", 1_200),
)
EVENTS_BEFORE_EACH_KILL = 200
"""Of the 1,200 waits, the events raised just before each kill (in flight across it); the
rest are raised at the end."""


@pytest.fixture
async def faults(tmp_path: Path) -> AsyncIterator[OnACluster]:
    async with ha_on_a_cluster(tmp_path / "logs") as deployment:
        yield deployment


async def test_two_nodes_killed_one_after_the_other_under_load_lose_nothing_and_double_nothing(
    faults: OnACluster,
) -> None:
    cluster = faults.cluster
    load = LoadUnderFault(faults.ha, SHAPES)
    await load.start()

    first = await busiest_node(cluster, faults.ha)
    await load.assert_in_flight()
    await load.raise_events(EVENTS_BEFORE_EACH_KILL)
    killed_at = await load.clock()
    cluster.kill(first)
    led = await led_elsewhere(cluster, first, faults.ha)
    outage = await load.recovered(f"kill -9 of {first.name}, the busiest node", killed_at, led)

    await cluster.start(first)

    async def back_in_cluster() -> bool:
        running = await cluster.cluster_nodes(seen_by=first)
        assert running == sorted(node.name for node in cluster.nodes), f"running: {running}"
        return True

    await load.deployment.eventually(back_in_cluster, timeout=BACK_SECONDS, interval=0.5)
    await load.a_window_since(outage.ended)

    second = await busiest_node(cluster, faults.ha)
    assert second is not first, "the restarted node leads the most partition queues again"
    await load.assert_in_flight()
    await load.raise_events(EVENTS_BEFORE_EACH_KILL)
    killed_at = await load.clock()
    cluster.kill(second)
    led = await led_elsewhere(cluster, second, faults.ha)
    await load.recovered(
        f"kill -9 of {second.name}, the busiest node once the first was back", killed_at, led
    )
    await load.finish()
