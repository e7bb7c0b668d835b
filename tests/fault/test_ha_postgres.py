"""The loss of the Postgres primary under load, with the real services (issue 17).

A primary with a synchronous standby, built by the test (``tests.helpers.pg_cluster``), and the
services as processes, each given the pair's multi-host DSN (``target_session_attrs=read-write``):
two orchestrator replicas (members of the deployment, ADR 27), two activity workers and the
client service. Under a mixed load of 1,550 instances started directly (chains, fan-outs,
durable timers due during and after the outage, some through the delay cascade, and waits for
events raised before the kill and after the recovery), with more started all along through
the client service's HTTP API, the test kills the primary (kill -9), lets the outage last as
long as a failover manager takes to notice, promotes the standby, and checks that every
instance completed once with its own output, that nothing was dead-lettered, that the outbox
drains, that ``durable-ops check-invariants`` finds nothing, that the members gave their
partitions up and took them again, that the timers due during the outage fired once and late
by no more than the outage and the sweeper's grace, and that no start the API accepted was
lost. The figures are printed (``-s``/``-rP``): ``ha figure: ...`` lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest

from deploy.processes import ServiceProcess
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from services.common.migrate import apply_migrations
from tests.conftest import (
    AMQP_URL,
    MANAGEMENT_KEY,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    delete_broker_objects,
    free_port,
    service_env,
    unique,
)
from tests.fault.http_starts import Attempt, HttpStarts
from tests.fault.replicas import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    PARTITIONS,
    ScaleOut,
    dead_lettered,
    make_replica,
    seconds,
    with_heartbeat,
)
from tests.fault.workload import CHAIN_STEPS, STEP_SECONDS, MixedWorkload, Shape
from tests.helpers.pg_cluster import PostgresPair

pytestmark = [pytest.mark.ha, pytest.mark.fault]

MEMBERS = ["replica-0", "replica-1"]
DETECTION_SECONDS = 5.0
"""How long the primary stays dead before the standby is promoted: the time a failover manager
takes to notice. Patroni promotes once the leader key's TTL has run out (``ttl`` 30 s and
``loop_wait`` 10 s by default; a tight setup, ``ttl`` 5 and ``loop_wait`` 1, takes about
this). Longer than a lease (``LEASE_SECONDS``), so that every member gives its partitions up
and must take them again after the promotion; a longer delay makes the outage longer, not
different."""
TIMER_GRACE_SECONDS = 2.0
WINDOW_SECONDS = 20.0
"""The throughput windows: before the kill, and after the recovery."""
HTTP_STARTS_PER_SECOND = 10.0
READY_SECONDS = 60
LOAD_SECONDS = 120


def sleeper_seconds(index: int) -> int:
    """20 to 50 s: due from just before the kill (about 22 s after the load starts) to well
    after the recovery; those of 31 s or more pass through the delay cascade."""
    return 20 + index % 31


SHAPES = (
    Shape("slow_chain", 300),
    Shape("slow_fan_out", 150),
    Shape("sleeper", 500, sleeper_seconds),
    Shape("waits_for_approval", 600),
)
EVENTS_BEFORE_THE_KILL = 200
"""Of the 600 waits, the events raised just before the kill (in flight across it); the rest
are raised once the new primary commits."""


@dataclass
class Failover:
    """The deployment on the pair, and a session on the standby, which outlives the primary:
    the clock the outage is timed with, the same clock the new primary records events by."""

    pair: PostgresPair
    deployment: ScaleOut
    standby: asyncpg.Connection
    http_port: int

    async def standby_now(self) -> datetime:
        return await self.standby.fetchval("SELECT clock_timestamp()")  # type: ignore[no-any-return]


@pytest.fixture
async def failover(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Failover]:
    async with PostgresPair.started() as pair:
        migrating = await asyncpg.connect(pair.dsn)
        try:
            await apply_migrations(migrating)
        finally:
            await migrating.close()
        settings = CommonSettings(
            database_url=pair.dsn,
            amqp_url=AMQP_URL,
            namespace=unique("ha"),
            partitions=PARTITIONS,
            function_modules=TEST_FUNCTION_MODULES,
        )
        http_port = free_port()
        # As in the scale-out tests: a short AMQP heartbeat, short leases and grace periods.
        env = service_env(settings, http_port) | {
            "DF_AMQP_URL": with_heartbeat(AMQP_URL, HEARTBEAT_SECONDS),
            "DF_LEASE_SECONDS": str(LEASE_SECONDS),
            "DF_OUTBOX_GRACE_SECONDS": "1",
            "DF_TIMER_GRACE_SECONDS": str(TIMER_GRACE_SECONDS),
            "DF_LOG_FORMAT": "json",
            "DF_ENTRY_POINTS": "",  # the HTTP API alone
        }
        log_dir = tmp_path_factory.mktemp("ha-logs")
        workers = [
            ServiceProcess("activities", env, log_dir / f"activities-{i}.log") for i in range(2)
        ]
        client_service = ServiceProcess("client", env, log_dir / "client.log")
        pool = await create_pool(pair.dsn, min_size=1, max_size=4)
        client = await DurableClient.connect(settings, name="ha-test")
        replicas = [make_replica(env, log_dir, index) for index in range(len(MEMBERS))]
        deployment = ScaleOut(
            settings.topology,
            env,
            client,
            pool,
            workers[0],
            replicas,
            others=[workers[1], client_service],
        )
        standby = await asyncpg.connect(pair.node_dsn(pair.standby))
        try:
            for service in [*workers, client_service, *(r.service for r in replicas)]:
                service.start()
            yield Failover(pair, deployment, standby, http_port)
        finally:
            for replica in replicas:
                replica.stop()
            for service in [*workers, client_service]:
                service.stop()
            await standby.close()
            await client.close()
            await pool.close()
            await delete_broker_objects(settings.topology, activity_names_under_test())


async def test_a_failover_of_the_primary_under_load_loses_nothing_and_applies_nothing_twice(
    failover: Failover,
) -> None:
    deployment = failover.deployment
    before = await deployment.wait_balanced(MEMBERS, timeout=READY_SECONDS)
    await client_answers(failover)

    load_started = await failover.standby_now()
    workload = MixedWorkload(deployment.client, deployment.pool, SHAPES)
    await workload.start()
    starts = HttpStarts(
        f"http://127.0.0.1:{failover.http_port}",
        MANAGEMENT_KEY,
        "slow_chain",
        lambda _: {"steps": CHAIN_STEPS, "delay": STEP_SECONDS},
        rate=HTTP_STARTS_PER_SECOND,
    )
    stop_starting = asyncio.Event()
    starting = asyncio.create_task(starts.run(stop_starting))

    async def a_window_of_load() -> bool:
        ran = seconds(await failover.standby_now(), load_started)
        assert ran >= WINDOW_SECONDS, f"{ran:.1f} s of load so far"
        return True

    await deployment.eventually(a_window_of_load, timeout=LOAD_SECONDS, interval=0.2)
    started = workload.size
    in_flight = started - await workload.ended()
    assert in_flight >= 1_000, f"only {in_flight} instances in flight"
    await workload.raise_events(workload.waiting[:EVENTS_BEFORE_THE_KILL])

    failover.pair.kill_primary()
    killed_at = await failover.standby_now()
    # The outage as a failover manager lets it last: a fault, not a wait for anything.
    await asyncio.sleep(DETECTION_SECONDS)
    promoted_at = await failover.standby_now()
    await asyncio.to_thread(failover.pair.promote_standby)

    recovered_at = await first_commit_after(deployment, promoted_at)
    recovery = seconds(recovered_at, killed_at)
    # Every member gave up its partitions a lease after the kill, and took its share again.
    after = await deployment.wait_balanced(MEMBERS, timeout=READY_SECONDS)
    assert all(after[p].epoch > before[p].epoch for p in before), (before, after)
    for replica in deployment.replicas:
        held = {p for p, h in before.items() if h.owner == replica.member}
        lost = {
            e["partition"]
            for e in replica.log_events("lease.lost")
            if e.get("why") == "not renewed in time"
        }
        assert lost == held, f"{replica.member} gave up {sorted(lost)} of {sorted(held)}"
    everywhere = await deployment.eventually(
        lambda: every_partition_commits(deployment, promoted_at), timeout=60, interval=0.2
    )
    await workload.raise_events(workload.waiting[EVENTS_BEFORE_THE_KILL:])

    async def a_window_after_the_recovery() -> bool:
        ran = seconds(await deployment.now(), recovered_at)
        assert ran >= WINDOW_SECONDS, f"{ran:.1f} s since the recovery"
        return True

    await deployment.eventually(a_window_after_the_recovery, timeout=60, interval=0.2)
    stop_starting.set()
    await starting

    refused = await check_http_starts(deployment, workload, starts, killed_at, recovered_at)
    await deployment.eventually(workload.all_ended, timeout=LOAD_SECONDS, interval=0.5)
    problems = await workload.problems()
    assert not problems, (
        f"{len(problems)} instances ended wrongly, e.g. {next(iter(problems.items()))}\n"
        + deployment.logs()
    )
    checked = deployment.check_invariants()
    assert checked.returncode == 0, checked.stdout + checked.stderr
    await deployment.eventually(lambda: outbox_empty(deployment), timeout=30, interval=0.2)
    assert await dead_lettered(deployment.topology, activity_names_under_test()) == {}
    lateness = await timer_lateness(deployment, workload, killed_at, recovered_at)
    assert lateness, "no timer was due during the outage"
    for service in [*(r.service for r in deployment.replicas), *deployment.others]:
        assert service.running, f"{service.log_path.name} exited\n{service.log_tail(40)}"
    # The outage was no message's fault: batches waited for the database, whole, rather than
    # being split and their messages requeued one by one as failed.
    for replica in deployment.replicas:
        failed = replica.log_events("message.failed", "batch.failed_splitting")
        assert not failed, f"{replica.member}: {failed[:3]}"

    before_rate = await completions_per_second(deployment, killed_at - window(), killed_at)
    after_rate = await completions_per_second(deployment, recovered_at, recovered_at + window())
    print(f"ha figure: instances in flight at the kill: {in_flight} of {started}")
    print(f"ha figure: kill to first commit on the new primary: {recovery:.2f} s")
    print(
        "ha figure: kill to every partition committing: "
        f"{max(seconds(at, killed_at) for at in everywhere.values()):.2f} s"
    )
    during = starts.between(killed_at, recovered_at)
    print(
        f"ha figure: HTTP starts during the outage: {len(during)}, refused or failed "
        f"{len(refused)} ({summary(refused)})"
    )
    # A timer due during the outage is fired by the sweeper once its grace has passed and
    # the database is back; a second covers the sweeper's round and the batch after it.
    bound = recovery + TIMER_GRACE_SECONDS + 1.0
    print(
        f"ha figure: timers due during the outage: {len(lateness)}, "
        f"latest {max(lateness.values()):.2f} s late (bound {bound:.2f} s)"
    )
    print(
        f"ha figure: throughput {before_rate:.1f} completed orchestrations/s in the "
        f"{WINDOW_SECONDS:.0f} s before the kill, {after_rate:.1f} in the "
        f"{WINDOW_SECONDS:.0f} s after the recovery"
    )
    late = {i: s for i, s in lateness.items() if s > bound}
    assert not late, f"{len(late)} timers later than {bound:.2f} s: {late}"


def window() -> timedelta:
    return timedelta(seconds=WINDOW_SECONDS)


async def client_answers(failover: Failover) -> None:
    async def healthy() -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            try:
                answer = await http.get(f"http://127.0.0.1:{failover.http_port}/healthz")
            except httpx.HTTPError as error:
                raise AssertionError(f"the client service does not answer: {error!r}") from error
        return answer.status_code == 200

    await failover.deployment.eventually(healthy, timeout=READY_SECONDS, interval=0.1)


async def first_commit_after(deployment: ScaleOut, since: datetime) -> datetime:
    """When the first transaction that appended events after ``since`` began (the new
    primary's clock): the standby takes no writes before it is promoted."""

    async def committed() -> datetime:
        try:
            first = await deployment.pool.fetchval(
                "SELECT min(recorded_at) FROM events WHERE recorded_at > $1", since
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise AssertionError(f"the store does not answer yet: {error!r}") from error
        assert first is not None, "no commit since the promotion"
        return first  # type: ignore[no-any-return]

    return await deployment.eventually(committed, timeout=60, interval=0.1)


async def every_partition_commits(deployment: ScaleOut, since: datetime) -> dict[int, datetime]:
    everything = set(range(deployment.topology.partitions))
    firsts = await deployment.first_commits_after(since, everything)
    assert set(firsts) == everything, f"no commit yet on {sorted(everything - set(firsts))}"
    return firsts


async def check_http_starts(
    deployment: ScaleOut,
    workload: MixedWorkload,
    starts: HttpStarts,
    killed_at: datetime,
    recovered_at: datetime,
) -> list[Attempt]:
    """Every start the API accepted exists (and joins the workload, to be checked with it);
    one refused as "nothing was changed" does not; one whose outcome was unknown may, and
    then joins the workload too. Only the outage refuses starts; return those it refused."""
    rows = await deployment.pool.fetch(
        "SELECT instance_id FROM instances WHERE instance_id = ANY($1::text[])",
        [a.instance_id for a in starts.attempts],
    )
    stored = {row["instance_id"] for row in rows}
    refused = [a for a in starts.attempts if not a.accepted]
    lost = [a for a in starts.attempts if a.accepted and a.instance_id not in stored]
    assert not lost, f"{len(lost)} starts accepted and lost, e.g. {lost[0]}"
    outside = [a for a in refused if a not in starts.between(killed_at, recovered_at)]
    assert not outside, f"starts refused outside the outage: {outside[:3]}"
    for attempt in refused:
        assert attempt.status is None or attempt.status >= 500, attempt
        if attempt.status == 503 and "nothing was changed" in attempt.message:
            assert attempt.instance_id not in stored, attempt
    for attempt in starts.attempts:
        if attempt.instance_id in stored:
            workload.shapes[attempt.instance_id] = starts.orchestrator
    return refused


def summary(refused: list[Attempt]) -> str:
    kinds: dict[str, int] = {}
    for attempt in refused:
        kind = str(attempt.status or "no answer")
        if "whether it was cannot be known" in attempt.message:
            kind += " outcome unknown"
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"


async def outbox_empty(deployment: ScaleOut) -> bool:
    left = await deployment.pool.fetchval("SELECT count(*) FROM outbox")
    assert left == 0, f"{left} outbox rows not yet published"
    return True


async def timer_lateness(
    deployment: ScaleOut, workload: MixedWorkload, start: datetime, end: datetime
) -> dict[str, float]:
    """How late (s) the timer of each sleeper due from ``start`` to ``end`` was recorded
    as fired (``problems`` has checked that each fired once)."""
    sleepers = [i for i, shape in workload.shapes.items() if shape == "sleeper"]
    rows = await deployment.pool.fetch(
        "SELECT instance_id, recorded_at, (payload->>'fire_at')::timestamptz AS fire_at "
        "FROM events WHERE event_type = 'TimerFired' AND instance_id = ANY($1::text[])",
        sleepers,
    )
    return {
        row["instance_id"]: seconds(row["recorded_at"], row["fire_at"])
        for row in rows
        if start <= row["fire_at"] <= end
    }


async def completions_per_second(deployment: ScaleOut, start: datetime, end: datetime) -> float:
    completed = await deployment.pool.fetchval(
        "SELECT count(*) FROM events WHERE event_type = 'ExecutionCompleted' "
        "AND recorded_at >= $1 AND recorded_at < $2",
        start,
        end,
    )
    return int(completed) / seconds(end, start)
