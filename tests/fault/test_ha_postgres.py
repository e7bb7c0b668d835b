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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import pytest

from services.common.migrate import apply_migrations
from tests.conftest import AMQP_URL
from tests.fault.ha_load import MEMBERS, READY_SECONDS, HaDeployment, LoadUnderFault, ha_deployment
from tests.fault.replicas import LEASE_SECONDS
from tests.fault.workload import Shape
from tests.helpers.pg_cluster import PostgresPair

pytestmark = [pytest.mark.ha, pytest.mark.fault]

DETECTION_SECONDS = 5.0
"""How long the primary stays dead before the standby is promoted: the time a failover manager
takes to notice. Patroni promotes once the leader key's TTL has run out (``ttl`` 30 s and
``loop_wait`` 10 s by default; a tight setup, ``ttl`` 5 and ``loop_wait`` 1, takes about
this). Longer than a lease (``LEASE_SECONDS``), so that every member gives its partitions up
and must take them again after the promotion; a longer delay makes the outage longer, not
different."""
assert DETECTION_SECONDS > LEASE_SECONDS
FROZEN_HOST_TIMEOUT_SECONDS = 5.0
"""``DF_DATABASE_TIMEOUT_SECONDS`` for a deployment whose database hosts may hang unfenced."""


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
are raised once every partition commits again."""


@dataclass
class Failover:
    """The deployment on the pair, and a session on the standby, which outlives the primary:
    the clock the outage is timed with, the same clock the new primary records events by."""

    pair: PostgresPair
    ha: HaDeployment


@pytest.fixture
async def failover(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Failover]:
    # A test that expects a host to hang sets the services' time-out as its operator would.
    hangs = request.node.get_closest_marker("database_timeout")
    timeout = float(hangs.args[0]) if hangs else 30.0
    async with PostgresPair.started() as pair:
        migrating = await asyncpg.connect(pair.dsn)
        try:
            await apply_migrations(migrating)
        finally:
            await migrating.close()
        standby = await asyncpg.connect(pair.node_dsn(pair.standby))

        async def standby_now() -> datetime:
            return await standby.fetchval("SELECT clock_timestamp()")  # type: ignore[no-any-return]

        try:
            async with ha_deployment(
                pair.dsn,
                AMQP_URL,
                tmp_path_factory.mktemp("ha-logs"),
                clock=standby_now,
                database_timeout_seconds=timeout,
            ) as ha:
                yield Failover(pair, ha)
        finally:
            await standby.close()


async def test_a_failover_of_the_primary_under_load_loses_nothing_and_applies_nothing_twice(
    failover: Failover,
) -> None:
    await fail_over(
        failover, failover.pair.kill_primary, "kill -9 of the Postgres primary, standby promoted"
    )


@pytest.mark.database_timeout(FROZEN_HOST_TIMEOUT_SECONDS)
async def test_a_frozen_primary_whose_standby_is_promoted_under_load_loses_nothing(
    failover: Failover,
) -> None:
    """The primary's host stops (SIGSTOP of every server process) but its kernel still
    accepts connections, and stays so after the promotion, listed first in every service's
    DSN: calls in flight on it, and on each connection pooled to it, end after
    ``DF_DATABASE_TIMEOUT_SECONDS``, and each new connection tries it for
    ``HOST_CONNECT_SECONDS`` before the new primary. With the default time-out (30 s) every
    partition committed again 42 s after the freeze and timers were up to 67 s late; a
    deployment whose hosts may hang unfenced sets a shorter one, as this test does."""
    await fail_over(
        failover,
        failover.pair.primary.freeze,
        "the Postgres primary frozen, standby promoted",
    )


async def fail_over(failover: Failover, fault: Callable[[], None], what: str) -> None:
    load = LoadUnderFault(failover.ha, SHAPES)
    deployment = load.deployment
    await load.start()
    await load.assert_in_flight()
    await load.raise_events(EVENTS_BEFORE_THE_KILL)

    killed_at = await load.clock()
    fault()
    # The outage as a failover manager lets it last: a fault, not a wait for anything.
    await asyncio.sleep(DETECTION_SECONDS)
    await asyncio.to_thread(failover.pair.promote_standby)
    await load.recovered(what, killed_at)

    # Every member gave up its partitions a lease after the fault, and took its share again.
    after = await deployment.wait_balanced(MEMBERS, timeout=READY_SECONDS)
    assert all(after[p].epoch > load.before[p].epoch for p in load.before), (load.before, after)
    for replica in deployment.replicas:
        held = {p for p, h in load.before.items() if h.owner == replica.member}
        lost = {
            e["partition"]
            for e in replica.log_events("lease.lost")
            if e.get("why") == "not renewed in time"
        }
        assert lost == held, f"{replica.member} gave up {sorted(lost)} of {sorted(held)}"
    await load.finish()
    # The outage was no message's fault: batches waited for the database, whole, rather than
    # being split and their messages requeued one by one as failed.
    for replica in deployment.replicas:
        failed = replica.log_events("message.failed", "batch.failed_splitting")
        assert not failed, f"{replica.member}: {failed[:3]}"
