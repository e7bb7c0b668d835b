"""The soak (issues 16 and 17): the real services on a three-node RabbitMQ cluster and a
Postgres primary with a synchronous standby, under continuous load, while a random fault
strikes every 20 to 60 s; at the end nothing is lost, nothing doubled, nothing stuck.

Run by ``make soak`` (``DF_SOAK_SECONDS``, 600 by default; ``DF_SOAK_SEED`` replays a run's
faults), never by CI or ``make test``. The deployment and the load are the ha fault tests'
(``tests.fault.ha_load``): two orchestrator replicas, two activity workers and the client
service; a first wave of instances (sleepers, waits for events, chains, fan-outs), and
chains, fan-outs and sleepers started through the HTTP API all along. The events of the
waits are raised a share after each fault, the rest at the end. The faults, each a kill -9:

- a RabbitMQ node, started again after a few seconds (one node down at a time: the cluster
  keeps its majority);
- the Postgres primary: the standby is promoted after ``DETECTION_SECONDS`` (as a failover
  manager would), and the old primary's place rebuilt as the new synchronous standby;
- an orchestrator replica, an activity worker or the client service, started again.

Each fault is recorded as an outage (from the kill until every partition commits again and
what failed is back), and the run ends with ``LoadUnderFault.finish``: every instance ended
once with its own output and history, ``durable-ops check-invariants``, the outbox drained,
no dead letters, every accepted start there and refusals only during outages, timers due
during an outage late by at most its recovery and the sweeper's grace. The figures are
printed (``ha figure: ...``), with a summary by kind of fault (``soak: ...``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.migrate import apply_migrations
from tests.fault.ha_figures import Outage
from tests.fault.ha_load import (
    CHAINS,
    HaDeployment,
    LoadUnderFault,
    Stream,
    ha_deployment,
    led_elsewhere,
)
from tests.fault.workload import Shape
from tests.helpers.pg_cluster import PostgresPair
from tests.helpers.rabbit_cluster import RabbitCluster
from tests.helpers.waiting import assert_eventually

SOAK_SECONDS = float(os.environ.get("DF_SOAK_SECONDS", "600"))
SEED = int(os.environ.get("DF_SOAK_SEED") or random.randrange(1_000_000))
FAULT_EVERY = (20.0, 60.0)
DETECTION_SECONDS = 5.0
"""How long the primary stays dead before the standby is promoted (see the Postgres fault
test)."""
DOWN_SECONDS = (2.0, 10.0)
"""How long a killed broker node or service process stays down."""
BACK_SECONDS = 120

pytestmark = [pytest.mark.soak, pytest.mark.timeout(SOAK_SECONDS + 900)]


def sleeper_seconds(index: int) -> int:
    return 5 + index % 40


FIRST_WAVE = (
    Shape("slow_chain", 200),
    Shape("slow_fan_out", 100),
    Shape("sleeper", 300, lambda i: 20 + i % 100),
    Shape("waits_for_approval", 1_000),
)
STREAMS = (
    CHAINS,
    Stream("slow_fan_out", 2.0),
    Stream("sleeper", 2.0, sleeper_seconds),
)


@dataclass
class Soak:
    cluster: RabbitCluster
    pair: PostgresPair
    ha: HaDeployment
    rng: random.Random

    async def broker_node(self) -> datetime | None:
        """Killed, its queues led elsewhere, started again; back once in the cluster."""
        node = self.rng.choice(self.cluster.nodes)
        self.cluster.kill(node)
        await led_elsewhere(self.cluster, node, self.ha)
        await asyncio.sleep(self.rng.uniform(*DOWN_SECONDS))  # the outage's length: a fault
        await self.cluster.start(node)

        async def back_in_cluster() -> bool:
            running = await self.cluster.cluster_nodes(seen_by=node)
            assert running == sorted(n.name for n in self.cluster.nodes), f"running: {running}"
            return True

        await assert_eventually(back_in_cluster, timeout=BACK_SECONDS, interval=0.5)
        return await self.ha.clock()

    async def postgres_primary(self) -> datetime | None:
        self.pair.kill_primary()
        await asyncio.sleep(DETECTION_SECONDS)  # as long as a failover manager takes: a fault
        await asyncio.to_thread(self.pair.promote_standby)
        await asyncio.to_thread(self.pair.rebuild_standby)
        return None

    async def orchestrator_replica(self) -> datetime | None:
        replica = self.rng.choice(self.ha.deployment.replicas)
        replica.kill()
        await asyncio.sleep(self.rng.uniform(*DOWN_SECONDS))
        replica.start()
        return await self.ha.clock()

    async def activity_worker(self) -> datetime | None:
        worker = self.rng.choice([self.ha.deployment.activities, self.ha.deployment.others[0]])
        worker.kill()
        await asyncio.sleep(self.rng.uniform(*DOWN_SECONDS))
        worker.start()
        return await self.ha.clock()

    async def client_service(self) -> datetime | None:
        """Started again; back once its HTTP API answers (refused starts till then)."""
        service = self.ha.deployment.others[1]
        service.kill()
        await asyncio.sleep(self.rng.uniform(*DOWN_SECONDS))
        service.start()
        url = f"http://127.0.0.1:{self.ha.http_port}/healthz"

        async def answers() -> bool:
            async with httpx.AsyncClient(timeout=2) as http:
                try:
                    assert (await http.get(url)).status_code == 200
                except httpx.HTTPError as error:
                    raise AssertionError(f"not yet: {error!r}") from error
            return True

        await assert_eventually(answers, timeout=BACK_SECONDS, interval=0.2)
        return await self.ha.clock()


FAULTS: dict[str, Callable[[Soak], Awaitable[datetime | None]]] = {
    "kill -9 of a RabbitMQ node": Soak.broker_node,
    "kill -9 of the Postgres primary": Soak.postgres_primary,
    "kill -9 of an orchestrator replica": Soak.orchestrator_replica,
    "kill -9 of an activity worker": Soak.activity_worker,
    "kill -9 of the client service": Soak.client_service,
}


@pytest.fixture
async def soak(tmp_path: Path) -> AsyncIterator[Soak]:
    async with PostgresPair.started() as pair, RabbitCluster.started(nodes=3) as cluster:
        migrating = await asyncpg.connect(pair.dsn)
        try:
            await apply_migrations(migrating)
        finally:
            await migrating.close()
        async with ha_deployment(
            pair.dsn, cluster.amqp_url, tmp_path / "logs", own_broker=True
        ) as ha:
            yield Soak(cluster, pair, ha, random.Random(SEED))


async def test_a_random_fault_every_20_to_60_s_loses_nothing_doubles_nothing_leaves_nothing_stuck(
    soak: Soak,
) -> None:
    print(f"soak: {SOAK_SECONDS:.0f} s, seed {SEED} (DF_SOAK_SEED={SEED} replays the faults)")
    load = LoadUnderFault(soak.ha, FIRST_WAVE, STREAMS)
    await load.start()
    waits = len(load.workload.waiting)
    ends = time.monotonic() + SOAK_SECONDS
    faults = 0
    while time.monotonic() < ends:
        # The schedule of the faults: the soak's own clock, not a wait for anything.
        await asyncio.sleep(soak.rng.uniform(*FAULT_EVERY))
        what = soak.rng.choice(sorted(FAULTS))
        await load.assert_in_flight(at_least=1)  # the load goes on: some always are
        began = await load.clock()
        print(f"soak: {what} at {began:%H:%M:%S}")
        restored = await FAULTS[what](soak)
        await load.recovered(what, began, restored)
        faults += 1
        await load.raise_events(waits // 20)
    await load.finish()
    report(load.outages)
    assert faults >= SOAK_SECONDS // FAULT_EVERY[1]


def report(outages: list[Outage]) -> None:
    kinds: dict[str, list[Outage]] = {}
    for outage in outages:
        kinds.setdefault(outage.what, []).append(outage)
    for what, seen in sorted(kinds.items()):
        worst = max(o.recovery for o in seen)
        print(f"soak: {what}: {len(seen)} times, each over within {worst:.2f} s")
