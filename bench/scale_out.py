"""W8, scale-out (issue 21): W2's batch against one orchestrator replica and against three,
and the time the others take to carry on when one of three is killed.

**One against three.** W2's batch (through the activities service) against one replica
holding every partition and against three, each one process and a member of its own as on
separate hosts (ADR 27), alternated ``w8_rounds`` times on replicas started afresh for every
round; each side's best round, and the ratio three ÷ one: what sharing the partitions out
costs. Three replicas can come out ahead here: one replica is one event loop and leaves part
of the second core idle (docs/performance.md, issue 16).

**The takeover**, on the three replicas of the last round, once they hold their fair shares
(6, 5 and 5 of 16 partitions). A batch of ``w8_takeover_instances`` Hello cities chains is
started, and while it runs the replica holding the most partitions is killed with SIGKILL, by
the pid of the process the harness started: a crash, which releases nothing. Right after the
kill one chain is started in each of its partitions (an id chosen for its partition).
Measured from the kill:

- ``takeover_s``: until every one of its partitions is held again by a live member, as the
  members read the lease table (``durable.store.leases``): the latest ``acquired_at`` among
  them. ADR 27 bounds it by a lease plus a round (4/3 of ``lease_seconds``, 6.7 s at the
  default 5 s): the killed member's leases and heartbeat lapse at most a lease after its last
  round, and the others notice at their next round, a third of a lease later at most.
- ``takeover_completed_s``: until the last of the chains started in its partitions after the
  kill completed (the time the instance recorded).

Checked: the partitions went to the two live members at a new epoch (the fence), each ends
with its fair share (8 and 8), and every instance started, the batch's and the chains',
completed exactly once (one ``ExecutionCompleted``, one ``TaskScheduled`` and one
``TaskCompleted`` per city, the five greetings as output).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter

from bench.config import Sizes
from bench.deployment import HELLO_OUTPUT, OurDeployment, Outcome, _output
from bench.hello import hello_round
from bench.measure import best_round, wait_until
from contracts import OrchestrationStatus
from deploy.processes import ServiceProcess
from durable.store.leases import LeaseRow, members_and_leases

REPLICAS = {"one_replica_": 1, "three_replicas_": 3}
# A member's lease round comes every third of a lease (services/orchestrator/leases.py).
ROUNDS_PER_LEASE = 3


async def w8_scale_out(deployment: OurDeployment, sizes: Sizes) -> Outcome:
    outcome = Outcome()
    lease_seconds = sizes.w8_lease_seconds
    rounds: dict[str, list[dict[str, float]]] = {prefix: [] for prefix in REPLICAS}
    try:
        for _ in range(sizes.w8_rounds):
            for prefix, count in REPLICAS.items():
                await deployment.run_replicas(count, lease_seconds)
                rounds[prefix].append(
                    await hello_round(deployment, sizes.w2_instances, "hello_cities", outcome)
                )
        if len(deployment.replicas) != REPLICAS["three_replicas_"]:  # no round asked for
            await deployment.run_replicas(REPLICAS["three_replicas_"], lease_seconds)
        taken_over = await takeover(deployment, sizes, outcome)
    finally:
        await deployment.run_replicas(0)
    if all(rounds.values()):
        for prefix, measured in rounds.items():
            best = best_round(measured, "orchestrations_per_s")
            outcome.metrics |= {f"{prefix}{key}": value for key, value in best.items()}
        outcome.metrics["three_over_one"] = round(
            outcome.metrics["three_replicas_orchestrations_per_s"]
            / outcome.metrics["one_replica_orchestrations_per_s"],
            3,
        )
    outcome.metrics |= taken_over
    return outcome


async def takeover(deployment: OurDeployment, sizes: Sizes, outcome: Outcome) -> dict[str, float]:
    """Kill the replica holding the most partitions under a batch in flight; the times from
    the kill until its partitions are held again and until chains started in them complete
    (the module's docstring). The replicas run, holding their fair shares."""
    assert deployment.pool is not None
    assert deployment.client is not None
    pool, client, topology = deployment.pool, deployment.client, deployment.topology
    lease_seconds = sizes.w8_lease_seconds
    replicas = len(deployment.replicas)
    await deployment.wait_fair_shares(replicas, timeout=120)
    members, before = await members_and_leases(pool, topology.namespace)
    shares = Counter(lease.owner for lease in before if lease.owner is not None)
    victim = min(shares, key=lambda owner: (-shares[owner], owner))
    partitions = sorted(lease.partition for lease in before if lease.owner == victim)
    epochs = {lease.partition: lease.epoch for lease in before}
    [pid] = [member.pid for member in members if member.member_id == victim]
    process = _replica_process(deployment, pid)

    batch = await deployment.start_many("hello_cities", [None] * sizes.w8_takeover_instances)
    process.kill()  # SIGKILL to the pid the harness started, and reaped
    killed_at = time.time()
    outcome.check(
        f"{victim} (pid {pid}) killed by SIGKILL",
        process.process is not None and process.process.returncode == -signal.SIGKILL,
        None if process.process is None else process.process.returncode,
    )
    run = uuid.uuid4().hex[:8]
    chains = list(
        await asyncio.gather(
            *(
                client.start_new("hello_cities", _id_in(deployment, partition, run))
                for partition in partitions
            )
        )
    )

    timeout = ROUNDS_PER_LEASE * lease_seconds + 60
    after = await _wait_held_by_others(deployment, victim, timeout)
    taken = [lease for lease in after if lease.partition in partitions]
    acquired_at = await pool.fetchval(
        "SELECT extract(epoch FROM max(acquired_at))::float8 FROM partition_leases "
        "WHERE namespace = $1 AND partition = ANY($2::smallint[])",
        topology.namespace,
        partitions,
    )
    outcome.check(
        f"{victim}'s {len(partitions)} partitions taken after the kill at a new epoch",
        acquired_at >= killed_at and all(lease.epoch > epochs[lease.partition] for lease in taken),
        f"{[(lease.partition, lease.owner, lease.epoch) for lease in taken]}",
    )
    await deployment.wait_ended(batch + chains, timeout=timeout + len(batch) / 5, interval=0.1)
    rows = await deployment.instances(chains)
    completed = [row["completed_at"].timestamp() for row in rows if row["completed_at"]]
    await _check_exactly_once(deployment, batch, chains, outcome)
    try:
        await deployment.wait_fair_shares(replicas - 1, timeout=timeout)
        fair = True
    except TimeoutError:
        fair = False
    outcome.check(f"the {replicas - 1} live members hold fair shares afterwards", fair)
    return {
        "takeover_s": round(acquired_at - killed_at, 3),
        "takeover_completed_s": round(max(completed) - killed_at, 3),
        "takeover_partitions_killed": len(partitions),
        "takeover_instances_in_flight": len(batch),
        "lease_seconds": lease_seconds,
        "lease_round_s": round(lease_seconds / ROUNDS_PER_LEASE, 3),
    }


def _replica_process(deployment: OurDeployment, pid: int) -> ServiceProcess:
    """The replica the harness started as ``pid``."""
    for replica in deployment.replicas:
        process = replica["orchestrator"]
        if process.process is not None and process.process.pid == pid:
            return process
    raise RuntimeError(f"no replica of this run has pid {pid}")


def _id_in(deployment: OurDeployment, partition: int, run: str) -> str:
    """An instance id that lands in ``partition``."""
    for n in range(100_000):
        instance_id = f"w8-{run}-p{partition}-{n}"
        if deployment.topology.partition_for(instance_id) == partition:
            return instance_id
    raise RuntimeError(f"no id found for partition {partition}")


async def _wait_held_by_others(
    deployment: OurDeployment, victim: str, timeout: float
) -> list[LeaseRow]:
    """Poll the lease table until every partition has an unexpired lease of a member other
    than ``victim``; the leases then."""
    assert deployment.pool is not None
    pool, namespace = deployment.pool, deployment.topology.namespace
    leases: list[LeaseRow] = []

    async def held() -> bool:
        nonlocal leases
        _, leases = await members_and_leases(pool, namespace)
        return all(
            lease.owner not in (None, victim) and (lease.expires_in_seconds or 0) > 0
            for lease in leases
        )

    await wait_until(held, timeout, 0.05, f"{victim}'s partitions held by the live members")
    return leases


async def _check_exactly_once(
    deployment: OurDeployment, batch: list[str], chains: list[str], outcome: Outcome
) -> None:
    """Every instance completed once: its events record one completion and one step per
    city, and its output is the five greetings."""
    assert deployment.pool is not None
    cities = len(HELLO_OUTPUT)
    for what, ids in (("the batch in flight", batch), ("the chains started after", chains)):
        rows = await deployment.instances(ids)
        counts = await deployment.pool.fetch(
            "SELECT instance_id, "
            "count(*) FILTER (WHERE event_type = 'ExecutionCompleted') AS completed, "
            "count(*) FILTER (WHERE event_type = 'TaskScheduled') AS scheduled, "
            "count(*) FILTER (WHERE event_type = 'TaskCompleted') AS returned "
            "FROM events WHERE instance_id = ANY($1::text[]) GROUP BY instance_id",
            ids,
        )
        wrong = [
            (row["instance_id"], row["completed"], row["scheduled"], row["returned"])
            for row in counts
            if (row["completed"], row["scheduled"], row["returned"]) != (1, cities, cities)
        ]
        ok = [
            row
            for row in rows
            if row["status"] == OrchestrationStatus.COMPLETED.value and _output(row) == HELLO_OUTPUT
        ]
        outcome.check(
            f"{what}: {len(ids)} completed with the five greetings", len(ok) == len(ids), len(ok)
        )
        outcome.check(
            f"{what}: each completed once, one step per city",
            len(counts) == len(ids) and not wrong,
            wrong[:5],
        )
