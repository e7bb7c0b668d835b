"""The real services on a three-node RabbitMQ cluster (issue 17) complete every orchestration
of a load, once each, while the node leading the most partition queues is cut off the network
for 20 s and then joined again: two orchestrator replicas, two activity workers and the client
service under a mixed load of 1,750 instances and starts through the HTTP API, checked as the
other ha fault tests are (``tests.fault.ha_load``).

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
commit after it and to every partition committing again, when the cut-off node paused, and
the time from the heal to the node being back in the cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fault.ha_load import LoadUnderFault, OnACluster, busiest_node, ha_on_a_cluster
from tests.fault.workload import Shape

pytestmark = [pytest.mark.ha, pytest.mark.fault]

PARTITION_SECONDS = 20.0
NODE_CONFIG = ("net_ticktime = 10", "cluster_partition_handling = pause_minority")


def sleeper_seconds(index: int) -> int:
    """20 to 79 s: due from just before the partition (about 22 s after the load starts) to
    well after the heal; those of 31 s or more pass through the delay cascade."""
    return 20 + index % 60


SHAPES = (
    Shape("slow_chain", 300),
    Shape("slow_fan_out", 150),
    Shape("sleeper", 500, sleeper_seconds),
    Shape("waits_for_approval", 800),
)
EVENTS_BEFORE_THE_PARTITION = 200
"""Of the 800 waits, the events raised just before the partition; the rest at the end."""


@pytest.fixture
async def partitioned(tmp_path: Path) -> AsyncIterator[OnACluster]:
    async with ha_on_a_cluster(
        tmp_path / "logs", namespaces=True, config=NODE_CONFIG
    ) as deployment:
        yield deployment


async def test_every_orchestration_completes_once_across_a_partition_of_the_busiest_node(
    partitioned: OnACluster,
) -> None:
    cluster = partitioned.cluster
    load = LoadUnderFault(partitioned.ha, SHAPES)
    await load.start()
    busiest = await busiest_node(cluster, partitioned.ha)
    await load.assert_in_flight()
    await load.raise_events(EVENTS_BEFORE_THE_PARTITION)
    began = await load.clock()
    cluster.partition(busiest)
    cut = time.monotonic()

    async def paused() -> bool:
        assert not await cluster.app_running(busiest), f"{busiest.name} still runs its broker"
        return True

    await load.deployment.eventually(paused, timeout=PARTITION_SECONDS, interval=0.5)
    paused_seconds = time.monotonic() - cut
    # The partition lasts a set time: the services work on the majority meanwhile.
    await asyncio.sleep(max(0.0, PARTITION_SECONDS - (time.monotonic() - cut)))
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

    await load.deployment.eventually(back_in_cluster, timeout=60, interval=0.2)
    back_seconds = time.monotonic() - healed
    restored = await load.clock()
    await load.recovered(f"{busiest.name} cut off for {PARTITION_SECONDS:.0f} s", began, restored)
    await load.finish()
    print(
        f"ha figure: the cut-off node paused its broker {paused_seconds:.1f} s after the cut, "
        f"and was back in the cluster {back_seconds:.1f} s after the heal (nodes of the "
        f"majority that paused meanwhile: {sorted(paused_after_heal) or 'none'})"
    )
