"""The deployment and the load of the high-availability fault tests (issue 17), whatever the
fault: the real services as processes (two orchestrator replicas, members of the deployment,
ADR 27; two activity workers; the client service), a mixed load of instances in flight
(``MixedWorkload``) and starts through the client service's HTTP API at a steady rate
(``HttpStarts``); then, after the test's faults, the checks every ha test ends with and the
figures it prints (``-s``/``-rP``: ``ha figure: ...`` lines).

A test builds the broker or the database it fails (``tests.helpers.rabbit_cluster``,
``tests.helpers.pg_cluster``), opens ``ha_deployment`` on them, and runs::

    load = LoadUnderFault(ha, shapes)
    await load.start()                      # a window of load, >= 1,000 instances in flight
    at = await load.clock()
    ...the fault...
    await load.recovered("what failed", at) # until every partition commits again
    ...more faults, events raised with load.raise_events...
    await load.finish()                     # the checks and the figures

The checks: every instance completed once with its own output, and nothing in its history
happened twice; ``durable-ops check-invariants`` finds nothing; the outbox drains; nothing was
dead-lettered; every service process still runs; no start the API accepted was lost, and
only an outage refused any; every timer due during an outage fired once, late by no more than
the recovery and the sweeper's grace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from deploy.processes import ServiceProcess
from durable.broker_nodes import node_urls
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from tests.conftest import (
    MANAGEMENT_KEY,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.fault.ha_figures import (
    Outage,
    completions_per_second,
    every_partition_commits,
    first_commit_after,
    longest_pause,
    summary,
    timer_lateness,
)
from tests.fault.http_starts import Attempt, HttpStarts
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
from tests.fault.workload import MixedWorkload, Shape, input_for
from tests.helpers.rabbit_cluster import RabbitCluster
from tests.helpers.rabbit_node import RabbitNode

MEMBERS = ["replica-0", "replica-1"]
TIMER_GRACE_SECONDS = 2.0
WINDOW_SECONDS = 20.0
"""The throughput windows: before each fault, and after each recovery."""
HTTP_STARTS_PER_SECOND = 10.0
IN_FLIGHT = 1_000
"""The fewest instances in flight at every fault."""
READY_SECONDS = 60
LOAD_SECONDS = 120

Clock = Callable[[], Awaitable[datetime]]


@dataclass
class HaDeployment:
    """The deployment, the port of its HTTP API, its broker's URL (or nodes), and the clock
    the outages are timed with (by default the database's)."""

    deployment: ScaleOut
    http_port: int
    amqp_url: str
    clock: Clock


@contextlib.asynccontextmanager
async def ha_deployment(
    database_url: str,
    amqp_url: str,
    log_dir: Path,
    *,
    clock: Clock | None = None,
    own_broker: bool = False,
    database_timeout_seconds: float = 30.0,
) -> AsyncIterator[HaDeployment]:
    """Start the services on ``database_url`` (migrated) and ``amqp_url`` (one URL or the
    nodes of a cluster); ``LoadUnderFault.start`` waits until the replicas share the
    partitions.

    Args:
        clock: whose clock times the outages (a session that outlives the fault).
        own_broker: the broker is the test's own and goes with it: nothing to delete.
        database_timeout_seconds: ``DF_DATABASE_TIMEOUT_SECONDS``, of the services and of
            the test's client.
    """
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=amqp_url,
        namespace=unique("ha"),
        partitions=PARTITIONS,
        function_modules=TEST_FUNCTION_MODULES,
        database_timeout_seconds=database_timeout_seconds,
    )
    http_port = free_port()
    # As in the scale-out tests: a short AMQP heartbeat, short leases and grace periods.
    nodes = ",".join(with_heartbeat(url, HEARTBEAT_SECONDS) for url in node_urls(amqp_url))
    env = service_env(settings, http_port) | {
        "DF_AMQP_URL": nodes,
        "DF_LEASE_SECONDS": str(LEASE_SECONDS),
        "DF_DATABASE_TIMEOUT_SECONDS": str(database_timeout_seconds),
        "DF_OUTBOX_GRACE_SECONDS": "1",
        "DF_TIMER_GRACE_SECONDS": str(TIMER_GRACE_SECONDS),
        "DF_LOG_FORMAT": "json",
        "DF_ENTRY_POINTS": "",  # the HTTP API alone
    }
    workers = [ServiceProcess("activities", env, log_dir / f"activities-{i}.log") for i in (0, 1)]
    client_service = ServiceProcess("client", env, log_dir / "client.log")
    replicas = [make_replica(env, log_dir, index) for index in range(len(MEMBERS))]
    # A time-out on the test's own calls: a frozen server must not hang its checks.
    pool = await create_pool(database_url, min_size=1, max_size=4, command_timeout=10)
    client: DurableClient | None = None
    try:
        client = await DurableClient.connect(settings, name="ha-test")
        deployment = ScaleOut(
            settings.topology,
            env,
            client,
            pool,
            workers[0],
            replicas,
            others=[workers[1], client_service],
        )
        for service in [*workers, client_service, *(r.service for r in replicas)]:
            service.start()
        yield HaDeployment(deployment, http_port, amqp_url, clock or deployment.now)
    finally:
        try:
            for replica in replicas:
                replica.stop()
            for service in [*workers, client_service]:
                service.stop()
            pool.terminate()  # not close(): a frozen server would never answer its goodbye
            if client is not None:
                await client.close()
        finally:
            # Whatever failed above, the machine's broker keeps no queue of this test's.
            if not own_broker:
                await delete_broker_objects(settings.topology, activity_names_under_test())


@dataclass
class OnACluster:
    cluster: RabbitCluster
    ha: HaDeployment


@contextlib.asynccontextmanager
async def ha_on_a_cluster(
    log_dir: Path, *, namespaces: bool = False, config: Sequence[str] = ()
) -> AsyncIterator[OnACluster]:
    """``ha_deployment`` on a three-node RabbitMQ cluster built for it (the options of
    ``RabbitCluster.started``) and a database of its own; all removed at the end."""
    database_url = await create_database()
    try:
        async with (
            RabbitCluster.started(nodes=3, namespaces=namespaces, config=config) as cluster,
            ha_deployment(database_url, cluster.amqp_url, log_dir, own_broker=True) as ha,
        ):
            yield OnACluster(cluster, ha)
    finally:
        await drop_database(database_url)


async def busiest_node(cluster: RabbitCluster, ha: HaDeployment) -> RabbitNode:
    """The node of ``cluster`` that leads the most of the deployment's partition queues."""
    topology = ha.deployment.topology
    return await cluster.node_leading_most(
        topology.partition_queue(p) for p in range(topology.partitions)
    )


async def led_elsewhere(cluster: RabbitCluster, lost: RabbitNode, ha: HaDeployment) -> datetime:
    """Wait until no quorum queue is led by the ``lost`` node any more; return when (the
    clock of ``ha``)."""

    async def none_led() -> bool:
        led = await cluster.led_by(lost)
        assert not led, f"{len(led)} queues still led by {lost.name}, e.g. {led[:3]}"
        return True

    await ha.deployment.eventually(none_led, timeout=60, interval=0.2)
    return await ha.clock()


@dataclass(frozen=True)
class Stream:
    """Starts of ``orchestrator`` through the HTTP API, ``per_second`` a second; the i-th
    with ``inputs(i)`` (by default ``input_for``, as in the workload)."""

    orchestrator: str
    per_second: float
    inputs: Callable[[int], Any] | None = None

    def input(self, index: int) -> Any:
        return input_for(self.orchestrator, index) if self.inputs is None else self.inputs(index)


CHAINS = Stream("slow_chain", HTTP_STARTS_PER_SECOND)


class LoadUnderFault:
    """The load, the outages the test times, and the checks at the end (module docstring)."""

    def __init__(
        self,
        ha: HaDeployment,
        shapes: Sequence[Shape],
        streams: Sequence[Stream] = (CHAINS,),
    ) -> None:
        """``shapes``: the instances started at first; ``streams``: those started through the
        HTTP API meanwhile, at their rates."""
        self.ha = ha
        self.deployment = ha.deployment
        self.workload = MixedWorkload(self.deployment.client, self.deployment.pool, shapes)
        self.http = [
            HttpStarts(
                f"http://127.0.0.1:{ha.http_port}",
                MANAGEMENT_KEY,
                stream.orchestrator,
                stream.input,
                rate=stream.per_second,
            )
            for stream in streams
        ]
        self.outages: list[Outage] = []
        self.before: dict[int, Holding] = {}
        self.in_flight: list[int] = []
        self._raised = 0
        self._stop_starting = asyncio.Event()
        self._starting: list[asyncio.Task[None]] = []

    async def clock(self) -> datetime:
        return await self.ha.clock()

    async def start(self) -> None:
        """Start the load once the replicas share the partitions, and run it for a window."""
        self.before = await self.deployment.wait_balanced(MEMBERS, timeout=READY_SECONDS)
        await self._client_service_answers()
        load_started = await self.clock()
        await self.workload.start()
        self._starting = [asyncio.create_task(s.run(self._stop_starting)) for s in self.http]
        await self.a_window_since(load_started)

    async def a_window_since(self, since: datetime) -> None:
        """Wait until ``WINDOW_SECONDS`` have passed since ``since``."""

        async def a_window() -> bool:
            ran = seconds(await self.clock(), since)
            assert ran >= WINDOW_SECONDS, f"{ran:.1f} s of {WINDOW_SECONDS:.0f} so far"
            return True

        await self.deployment.eventually(a_window, timeout=LOAD_SECONDS, interval=0.2)

    async def raise_events(self, count: int | None = None) -> None:
        """Raise the events of the next ``count`` instances waiting (by default the rest)."""
        waiting = self.workload.waiting
        end = len(waiting) if count is None else self._raised + count
        await self.workload.raise_events(waiting[self._raised : end])
        self._raised = min(end, len(waiting))

    async def assert_in_flight(self, at_least: int = IN_FLIGHT) -> None:
        """At least ``at_least`` instances are in flight: call just before a fault."""
        in_flight = self.workload.size - await self.workload.ended()
        assert in_flight >= at_least, f"only {in_flight} instances in flight"
        self.in_flight.append(in_flight)

    async def recovered(
        self, what: str, began: datetime, restored: datetime | None = None
    ) -> Outage:
        """Wait until every partition has committed since the fault that began at ``began``
        (what failed was back at ``restored``)."""
        first = await first_commit_after(self.deployment, began)
        every = await self.deployment.eventually(
            lambda: every_partition_commits(self.deployment, began), timeout=60, interval=0.2
        )
        outage = Outage(what, began, first, max(every.values()), restored)
        self.outages.append(outage)
        return outage

    async def finish(self) -> None:
        """Raise the events left, run a last window, stop the starts; check everything and
        print the figures."""
        await self.raise_events()
        await self.a_window_since(self.outages[-1].ended)
        self._stop_starting.set()
        await asyncio.gather(*self._starting)
        refused = await self._check_http_starts()
        deployment = self.deployment
        await deployment.eventually(self.workload.all_ended, timeout=LOAD_SECONDS, interval=0.5)
        problems = await self.workload.problems()
        assert not problems, (
            f"{len(problems)} instances ended wrongly, e.g. {next(iter(problems.items()))}\n"
            + deployment.logs()
        )
        checked = deployment.check_invariants()
        assert checked.returncode == 0, checked.stdout + checked.stderr
        await deployment.eventually(self._outbox_empty, timeout=30, interval=0.2)
        dead = await dead_lettered(
            deployment.topology, activity_names_under_test(), self.ha.amqp_url
        )
        assert dead == {}, dead
        for service in [*(r.service for r in deployment.replicas), *deployment.others]:
            assert service.running, f"{service.log_path.name} exited\n{service.log_tail(40)}"
        await self._report(refused)

    async def _report(self, refused: list[Attempt]) -> None:
        print(
            f"ha figure: {self.workload.size} instances, every one checked; in flight at each "
            f"fault: {self.in_flight}"
        )
        if self.workload.raises_retried:
            print(
                f"ha figure: the test's own client raised {self.workload.raises_retried} "
                "events again after the store did not answer"
            )
        sleepers = [i for i, shape in self.workload.shapes.items() if shape == "sleeper"]
        late: dict[str, float] = {}
        due = 0
        for outage in self.outages:
            window = timedelta(seconds=WINDOW_SECONDS)
            before = await completions_per_second(
                self.deployment.pool, outage.began - window, outage.began
            )
            after = await completions_per_second(
                self.deployment.pool, outage.ended, outage.ended + window
            )
            pauses = [
                await longest_pause(self.deployment.pool, outage.began - window, outage.began),
                await longest_pause(self.deployment.pool, outage.began, outage.ended + window),
            ]
            during = [a for s in self.http for a in s.between(outage.began, outage.ended)]
            failed = [a for a in refused if a in during]
            lateness = await timer_lateness(self.deployment, sleepers, outage)
            due += len(lateness)
            # A timer due during the outage is fired by the sweeper once its grace has passed
            # and its partition is owned again; a second covers the round and the batch.
            bound = outage.recovery + TIMER_GRACE_SECONDS + 1.0
            late |= {i: s for i, s in lateness.items() if s > bound}
            print(
                f"ha figure: {outage.what}: first commit after "
                f"{seconds(outage.first_commit, outage.began):.2f} s, every partition had "
                f"committed after {seconds(outage.every_partition, outage.began):.2f} s"
                + (
                    f", back after {seconds(outage.restored, outage.began):.2f} s"
                    if outage.restored
                    else ""
                )
                + f"; the longest pause between commits {pauses[1]:.2f} s from the fault to "
                f"{WINDOW_SECONDS:.0f} s after its end ({pauses[0]:.2f} s in the "
                f"{WINDOW_SECONDS:.0f} s before it)"
            )
            print(
                f"ha figure: {outage.what}: HTTP starts meanwhile {len(during)}, refused or "
                f"failed {len(failed)} ({summary(failed)}); timers due meanwhile "
                f"{len(lateness)}, latest "
                f"{max(lateness.values(), default=0.0):.2f} s late (bound {bound:.2f} s)"
            )
            print(
                f"ha figure: {outage.what}: throughput {before:.1f} completed orchestrations/s "
                f"in the {WINDOW_SECONDS:.0f} s before, {after:.1f} in the "
                f"{WINDOW_SECONDS:.0f} s after the recovery"
            )
        assert due, "no timer was due during an outage"
        assert not late, f"{len(late)} timers later than their bound: {late}"

    async def _client_service_answers(self) -> None:
        url = f"http://127.0.0.1:{self.ha.http_port}/healthz"

        async def healthy() -> bool:
            async with httpx.AsyncClient(timeout=2) as http:
                try:
                    answer = await http.get(url)
                except httpx.HTTPError as error:
                    raise AssertionError(
                        f"the client service does not answer: {error!r}"
                    ) from error
            return answer.status_code == 200

        await self.deployment.eventually(healthy, timeout=READY_SECONDS, interval=0.1)

    async def _check_http_starts(self) -> list[Attempt]:
        """Every start the API accepted exists (and joins the workload, to be checked with
        it); one refused as "nothing was changed" does not; one whose outcome was unknown may,
        and then joins the workload too. Only an outage refuses starts; return those refused."""
        attempts = [a for s in self.http for a in s.attempts]
        rows = await self.deployment.pool.fetch(
            "SELECT instance_id FROM instances WHERE instance_id = ANY($1::text[])",
            [a.instance_id for a in attempts],
        )
        stored = {row["instance_id"] for row in rows}
        refused = [a for a in attempts if not a.accepted]
        lost = [a for a in attempts if a.accepted and a.instance_id not in stored]
        assert not lost, f"{len(lost)} starts accepted and lost, e.g. {lost[0]}"
        during = {
            a.instance_id
            for o in self.outages
            for s in self.http
            for a in s.between(o.began, o.ended)
        }
        outside = [a for a in refused if a.instance_id not in during]
        assert not outside, f"starts refused outside the outages: {outside[:3]}"
        for attempt in refused:
            # An outage is answered 503 (or not at all); a 500 is a failure of our own.
            assert attempt.status in (None, 503), attempt
            if attempt.status == 503 and "nothing was changed" in attempt.message:
                assert attempt.instance_id not in stored, attempt
        for starts in self.http:
            for attempt in starts.attempts:
                if attempt.instance_id in stored:
                    self.workload.shapes[attempt.instance_id] = starts.orchestrator
        return refused

    async def _outbox_empty(self) -> bool:
        left = await self.deployment.pool.fetchval("SELECT count(*) FROM outbox")
        assert left == 0, f"{left} outbox rows not yet published"
        return True
