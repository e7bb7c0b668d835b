"""Scale-out (issue 16, ADR 27): orchestrator replicas, each its own process as if on its own
host, share the partitions by leases, under a load of 2,000 instances of mixed shapes.

Each test starts replicas on a deployment of its own, runs the load, does something to one
replica (kill -9, SIGTERM, SIGSTOP past its lease, a join), and then checks that every
instance completed once with its own output, that no history holds anything twice, that
``durable-ops check-invariants`` finds nothing, and that nothing was dead-lettered. The
takeover times are printed (``-s``/``-rP``): ``scale-out figure: ...`` lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from deploy.processes import ServiceProcess
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from services.orchestrator.leases import fair_share
from tests.conftest import (
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.fault.replicas import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    PARTITIONS,
    Holding,
    ScaleOut,
    dead_lettered,
    make_replica,
    seconds,
    with_heartbeat,
)
from tests.fault.workload import MixedWorkload

pytestmark = pytest.mark.fault

MEMBERS = ["replica-0", "replica-1", "replica-2"]
# Generous: the machine is shared, and 2,000 instances take a while on two cores.
READY_SECONDS = 90
LOAD_SECONDS = 240
# A crashed replica's partitions: free when its lease expires, taken at the next round of the
# others (a third of a lease), with a few seconds for a busy machine.
TAKEOVER_SECONDS = LEASE_SECONDS + LEASE_SECONDS / 3 + 3


@pytest.fixture
async def scale_out(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ScaleOut]:
    database_url = await create_database()
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=unique("scale"),
        partitions=PARTITIONS,
        function_modules=TEST_FUNCTION_MODULES,
    )
    # A short AMQP heartbeat: the broker gives up on a paused replica's connection in about
    # three heartbeats, and only then passes its partition queues on (see the SIGSTOP test).
    # Short grace periods: a killed replica's unpublished outbox rows and unfired timers are
    # swept soon by the next owner.
    env = service_env(settings, free_port()) | {
        "DF_AMQP_URL": with_heartbeat(AMQP_URL, HEARTBEAT_SECONDS),
        "DF_LEASE_SECONDS": str(LEASE_SECONDS),
        "DF_OUTBOX_GRACE_SECONDS": "1",
        "DF_TIMER_GRACE_SECONDS": "2",
        "DF_LOG_FORMAT": "json",
    }
    log_dir = tmp_path_factory.mktemp("scale-out-logs")
    activities = ServiceProcess("activities", env, log_dir / "activities.log")
    pool = await create_pool(database_url, min_size=1, max_size=4)
    client = await DurableClient.connect(settings, name="scale-out-test")
    replicas = [make_replica(env, log_dir, index) for index in range(len(MEMBERS))]
    deployment = ScaleOut(settings.topology, env, client, pool, activities, replicas)
    try:
        activities.start()
        yield deployment
    finally:
        for replica in replicas:
            replica.stop()  # a paused one is resumed first
        activities.stop()
        await client.close()
        await pool.close()
        await delete_broker_objects(settings.topology, activity_names_under_test())
        await drop_database(database_url)


async def start_replicas(deployment: ScaleOut, members: list[str]) -> dict[int, Holding]:
    for member in members:
        deployment.replica(member).start()
    return await deployment.wait_balanced(members, timeout=READY_SECONDS)


async def start_load(deployment: ScaleOut) -> MixedWorkload:
    """Start the 2,000 instances and wait until a tenth of their activity results are in."""
    workload = MixedWorkload(deployment.client, deployment.pool)
    await workload.start()

    async def under_way() -> bool:
        done = await workload.progress()
        assert done >= 400, f"{done} activity results so far"
        return True

    await deployment.eventually(under_way, timeout=LOAD_SECONDS, interval=0.2)
    ended = await workload.ended()
    assert ended < workload.size / 2, f"{ended} instances ended before the fault"
    return workload


async def assert_every_instance_completed_once(
    deployment: ScaleOut, workload: MixedWorkload
) -> None:
    await deployment.eventually(workload.all_ended, timeout=LOAD_SECONDS, interval=0.5)
    problems = await workload.problems()
    assert not problems, (
        f"{len(problems)} instances ended wrongly, e.g. {next(iter(problems.items()))}\n"
        + deployment.logs()
    )
    checked = deployment.check_invariants()
    assert checked.returncode == 0, checked.stdout + checked.stderr

    async def outbox_empty() -> bool:
        left = await deployment.pool.fetchval("SELECT count(*) FROM outbox")
        assert left == 0, f"{left} outbox rows not yet published"
        return True

    await deployment.eventually(outbox_empty, timeout=30, interval=0.2)
    assert await dead_lettered(deployment.topology, activity_names_under_test()) == {}


def report(name: str, figures: dict[int, float]) -> None:
    values = sorted(figures.values())
    print(
        f"scale-out figure: {name}: max {values[-1]:.2f} s, median "
        f"{values[len(values) // 2]:.2f} s over partitions "
        + " ".join(f"p{p}={s:.2f}" for p, s in sorted(figures.items()))
    )


async def taken_from(
    deployment: ScaleOut, member: str, held: dict[int, Holding], timeout: float
) -> dict[int, Holding]:
    """Wait until every partition ``member`` held is held by another member, at a higher
    epoch; return those leases."""

    async def taken() -> dict[int, Holding]:
        now = await deployment.holdings()
        left = {p: now[p].owner for p in held if now[p].owner in (None, member)}
        assert not left, f"not yet taken over: {left}"
        assert all(now[p].epoch > held[p].epoch for p in held)
        return {p: now[p] for p in held}

    return await deployment.eventually(taken, timeout=timeout, interval=0.05)


async def test_three_replicas_balance_within_a_lease_and_complete_every_instance_once(
    scale_out: ScaleOut,
) -> None:
    holdings = await start_replicas(scale_out, MEMBERS)
    last_joined = await scale_out.pool.fetchval(
        "SELECT max(started_at) FROM orchestrator_members WHERE namespace = $1",
        scale_out.topology.namespace,
    )
    balanced_at = max(h.acquired_at for h in holdings.values() if h.acquired_at)
    balance_seconds = max(0.0, seconds(balanced_at, last_joined))
    print(f"scale-out figure: balanced {balance_seconds:.2f} s after the last replica joined")
    assert balance_seconds <= LEASE_SECONDS

    workload = await start_load(scale_out)
    await workload.raise_events()

    await assert_every_instance_completed_once(scale_out, workload)
    # No partition changed hands under the load: balanced once, they stay put.
    assert await scale_out.holdings() == holdings


async def test_a_killed_replicas_partitions_are_taken_over_within_a_lease_and_come_back(
    scale_out: ScaleOut,
) -> None:
    await start_replicas(scale_out, MEMBERS)
    workload = await start_load(scale_out)
    victim = scale_out.replica("replica-1")
    held = await scale_out.held_by(victim.member)

    killed_at = await scale_out.now()
    victim.kill()
    # Events for every waiting instance, those of the dead replica's partitions included:
    # each of its partitions has work queued for whoever takes it.
    await workload.raise_events()
    taken = await taken_from(scale_out, victim.member, held, timeout=TAKEOVER_SECONDS + 10)

    await scale_out.eventually(workload.all_ended, timeout=LOAD_SECONDS, interval=0.5)
    firsts = await scale_out.first_commits_after(killed_at, set(held))
    assert set(firsts) == set(held), f"no commit after the kill on {set(held) - set(firsts)}"
    acquired = {p: seconds(h.acquired_at, killed_at) for p, h in taken.items() if h.acquired_at}
    first_commit = {p: seconds(at, killed_at) for p, at in firsts.items()}
    report("kill -9 to lease taken", acquired)
    report("kill -9 to first commit", first_commit)
    assert max(first_commit.values()) <= TAKEOVER_SECONDS, first_commit

    victim.start()
    await scale_out.wait_balanced(MEMBERS, timeout=READY_SECONDS)
    await assert_every_instance_completed_once(scale_out, workload)


async def test_a_replica_stopped_by_sigterm_hands_its_partitions_over_at_once(
    scale_out: ScaleOut,
) -> None:
    await start_replicas(scale_out, MEMBERS)
    workload = await start_load(scale_out)
    leaving = scale_out.replica("replica-1")
    held = await scale_out.held_by(leaving.member)

    terminated_at = await scale_out.now()
    leaving.terminate()
    taken = await taken_from(scale_out, leaving.member, held, timeout=LEASE_SECONDS * 4)

    handed_over = {
        p: seconds(h.acquired_at, terminated_at) for p, h in taken.items() if h.acquired_at
    }
    report("SIGTERM to hand-over", handed_over)
    # Released, not expired: taken before a lease could have run out, as free partitions.
    assert max(handed_over.values()) < LEASE_SECONDS
    others = [
        e for r in scale_out.replicas if r is not leaving for e in r.log_events("lease.stolen")
    ]
    assert not others, others

    async def exited() -> int:
        status = leaving.exit_status()
        assert status is not None, "still running"
        return status + 1

    assert await scale_out.eventually(exited, timeout=30) == 1
    assert leaving.log_events("member.left")
    await workload.raise_events()
    await scale_out.wait_balanced(["replica-0", "replica-2"], timeout=READY_SECONDS)
    await assert_every_instance_completed_once(scale_out, workload)


async def test_a_stale_owner_is_fenced_off_after_a_pause_past_its_lease(
    scale_out: ScaleOut,
) -> None:
    await start_replicas(scale_out, MEMBERS)
    workload = await start_load(scale_out)
    stale = scale_out.replica("replica-0")
    held = await scale_out.held_by(stale.member)

    paused_at = await scale_out.now()
    stale.pause()
    taken = await taken_from(scale_out, stale.member, held, timeout=TAKEOVER_SECONDS + 10)
    taken_at = max(h.acquired_at for h in taken.values() if h.acquired_at)
    await workload.raise_events()

    # The new owners commit on the partitions while the stale owner still sleeps: once the
    # broker has given up on its connection (about three heartbeats of silence), single
    # active consumer passes the queues on; until then their deliveries wait in its buffers.
    async def committed_by_new_owners() -> dict[int, datetime]:
        firsts = await scale_out.first_commits_after(taken_at, set(held))
        assert set(firsts) == set(held), f"no commit yet on {set(held) - set(firsts)}"
        return firsts

    firsts = await scale_out.eventually(committed_by_new_owners, timeout=60, interval=0.2)
    lease_taken = {p: seconds(h.acquired_at, paused_at) for p, h in taken.items() if h.acquired_at}
    first_commit = {p: seconds(at, paused_at) for p, at in firsts.items()}
    report("SIGSTOP to lease taken", lease_taken)
    report(f"SIGSTOP to first commit (heartbeat {HEARTBEAT_SECONDS} s)", first_commit)
    assert max(first_commit.values()) <= 6 * HEARTBEAT_SECONDS
    stale.resume()

    # Awake, it finds every lease gone: its writes, if it tried any, were refused, and it
    # stopped consuming those partitions.
    async def stopped_consuming() -> set[int]:
        lost = {e["partition"] for e in stale.log_events("lease.lost")}
        assert lost == set(held), f"lost {sorted(lost)} of {sorted(held)}"
        return lost

    await scale_out.eventually(stopped_consuming, timeout=LEASE_SECONDS * 4)
    refused = stale.log_events("batch.lease_lost")
    print(f"scale-out figure: writes refused to the stale owner: {len(refused)} batches")
    # Then it rejoins as a live member, and what it holds again it took afresh.
    rejoined = await scale_out.wait_balanced(MEMBERS, timeout=READY_SECONDS)
    assert all(
        rejoined[p].epoch > taken[p].epoch for p in held if rejoined[p].owner == stale.member
    )
    await assert_every_instance_completed_once(scale_out, workload)


async def test_a_replica_paused_inside_a_transaction_does_not_hold_up_the_new_owners(
    scale_out: ScaleOut,
) -> None:
    await start_replicas(scale_out, MEMBERS)
    workload = MixedWorkload(scale_out.client, scale_out.pool)
    starting = asyncio.create_task(workload.start())
    stale = scale_out.replica("replica-0")
    # Pause it while it has a transaction open (its instances' rows locked): the first
    # steps of new instances are written in transactions of several statements.
    for _ in range(300):
        stale.pause()
        if await scale_out.open_transactions(stale):
            break
        stale.resume()
        await asyncio.sleep(0.02)
    assert stale.paused, "never caught the replica inside a transaction"
    paused_at = await scale_out.now()
    held = await scale_out.held_by(stale.member)
    await starting
    await workload.raise_events()

    # Postgres ends the paused transaction after a lease, so the new owners' writes to
    # those instances do not wait on its locks while it sleeps.
    async def committed_by_new_owners() -> dict[int, datetime]:
        firsts = await scale_out.first_commits_after(paused_at, set(held))
        waits = await scale_out.lock_waits()
        assert set(firsts) == set(held), (
            f"no commit yet on {set(held) - set(firsts)}; lock waits: {waits}; "
            f"the paused replica's ports: {stale.database_ports()}"
        )
        assert not waits, f"sessions wait on a lock: {waits}"
        return firsts

    await taken_from(scale_out, stale.member, held, timeout=TAKEOVER_SECONDS + 10)
    await scale_out.eventually(committed_by_new_owners, timeout=60, interval=0.2)
    assert stale.paused
    stale.resume()
    await scale_out.wait_balanced(MEMBERS, timeout=READY_SECONDS)
    await assert_every_instance_completed_once(scale_out, workload)


async def test_a_replica_joining_under_load_moves_only_the_partitions_it_takes(
    scale_out: ScaleOut,
) -> None:
    before = await start_replicas(scale_out, MEMBERS[:2])
    workload = await start_load(scale_out)

    scale_out.replica("replica-2").start()
    after = await scale_out.wait_balanced(MEMBERS, timeout=READY_SECONDS)

    moved = {p for p in before if after[p].owner != before[p].owner}
    assert {after[p].owner for p in moved} == {"replica-2"}
    assert len(moved) == fair_share(MEMBERS, "replica-2", PARTITIONS)
    # The others kept their leases as they were: no partition went back and forth.
    assert all(after[p].epoch == before[p].epoch for p in set(before) - moved)
    await workload.raise_events()
    await assert_every_instance_completed_once(scale_out, workload)
