"""Our runtime as the benchmark deploys it: its own database and broker namespace, the real
services as processes, a client, and what the workloads read back from the event store."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bench.config import Endpoints
from bench.measure import create_database, drop_database, unique_name, wait_until
from contracts import OrchestrationStatus, Topology
from contracts.http import HTTP_ACTIVITY
from deploy.processes import ServiceGroup
from durable.broker import Publisher, connect
from durable.client import DurableClient
from durable.store.database import create_pool
from durable.store.leases import members_and_leases
from services.common.loader import load_function_apps
from services.common.migrate import apply_migrations
from services.orchestrator.leases import fair_share

FUNCTION_MODULES = "workflows.samples,bench.apps"
TERMINAL = [s.value for s in OrchestrationStatus if s.is_terminal]
CITIES = ["Tokyo", "Seattle", "London", "Amsterdam", "Cairo"]
HELLO_OUTPUT = [f"Hello {city}!" for city in CITIES]


@dataclass
class Outcome:
    """What one workload measured, and whether its results were right."""

    metrics: dict[str, float] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: Any = "") -> None:
        self.checks.append((name, bool(ok), str(detail)))


class OurDeployment:
    """A database, a broker namespace and the orchestrator and activity worker processes."""

    def __init__(self, endpoints: Endpoints, log_dir: Path, partitions: int = 16) -> None:
        self.endpoints = endpoints
        self.database = unique_name("bench_ours_")
        self.database_url = endpoints.database_url(self.database)
        self.topology = Topology(namespace=unique_name("bench"), partitions=partitions)
        self.log_dir = log_dir
        functions = load_function_apps(FUNCTION_MODULES.split(","))
        self.functions = functions
        # The built-in HTTP activity too: its queues are declared, and deleted after, alike.
        self.activity_names = sorted([*functions.activities, HTTP_ACTIVITY])
        self.env = {
            "DF_DATABASE_URL": self.database_url,
            "DF_AMQP_URL": endpoints.amqp_url,
            "DF_NAMESPACE": self.topology.namespace,
            "DF_PARTITIONS": str(partitions),
            "DF_FUNCTION_MODULES": FUNCTION_MODULES,
            "DF_LOG_LEVEL": "warning",
            "DF_LOG_FORMAT": "console",
        }
        self.group = ServiceGroup(self.env, log_dir, names=("orchestrator", "activities"))
        # Orchestrator replicas that run instead of the service's own orchestrator (W8).
        self.replicas: list[ServiceGroup] = []
        self.pool: asyncpg.Pool | None = None
        self.publisher: Publisher | None = None
        self.client: DurableClient | None = None

    async def open(self) -> None:
        await create_database(self.endpoints.admin_database_url, self.database)
        connection = await asyncpg.connect(self.database_url)
        try:
            await apply_migrations(connection)
        finally:
            await connection.close()
        self.pool = await create_pool(self.database_url, min_size=2, max_size=10)
        self.publisher = await Publisher.open(
            self.endpoints.amqp_url, self.topology, "bench.publish"
        )
        self.client = DurableClient(self.pool, self.publisher, self.topology)
        await self.start_services()

    async def start_services(self) -> None:
        self.group.start()
        await self._settle([self.group])

    async def restart_services(self) -> None:
        self._stop_replicas()
        self.group.stop()
        await self.start_services()

    async def run_replicas(self, count: int, lease_seconds: float | None = None) -> None:
        """Run the orchestrator as ``count`` replicas instead of the service as configured
        (0: back to the service). Each replica is one process with a member id of its own
        (``DF_ORCHESTRATOR_PROCESSES=1``, ``DF_MEMBER_ID``: ``replica-1``, ``replica-2``, …),
        its own pool, connections and sweepers, as on separate hosts (ADR 27); with
        ``lease_seconds``, its partition leases last that long (``DF_LEASE_SECONDS``)."""
        self._stop_replicas()
        self.group["orchestrator"].stop()
        if count == 0:
            self.group["orchestrator"].start()
            await self._settle([self.group])
            return
        lease = {} if lease_seconds is None else {"DF_LEASE_SECONDS": str(lease_seconds)}
        self.replicas = [
            ServiceGroup(
                {
                    **self.env,
                    **lease,
                    "DF_ORCHESTRATOR_PROCESSES": "1",
                    "DF_MEMBER_ID": f"replica-{index}",
                },
                self.log_dir / f"replica-{index}",
                names=("orchestrator",),
            )
            for index in range(1, count + 1)
        ]
        for replica in self.replicas:
            replica.start()
        await self._settle(self.replicas)

    async def _settle(self, groups: list[ServiceGroup]) -> None:
        """Wait until the services of ``groups`` are ready and their orchestrator members
        hold their fair shares of the partitions. The first member to start takes every
        partition and hands the others theirs over the next seconds (ADR 27); a workload
        started before then sees its partitions change hands (W1's chain stalled 5 s)."""
        for group in groups:  # first, so that a service that exits says why
            await group.wait_ready(self.topology, self.activity_names, timeout=120)
        await self.wait_fair_shares(sum(_members(group) for group in groups), timeout=120)
        for group in groups:  # a partition's consumer starts just after its lease is taken
            await group.wait_ready(self.topology, self.activity_names, timeout=120)

    async def wait_fair_shares(self, members: int, timeout: float) -> None:
        """Wait until ``members`` members hold unexpired leases on every partition, each its
        fair share (16 partitions among two: 8 and 8; among three: 6, 5 and 5)."""
        assert self.pool is not None
        pool, namespace, partitions = self.pool, self.topology.namespace, self.topology.partitions

        async def fair() -> bool:
            _, leases = await members_and_leases(pool, namespace)
            held = Counter(
                lease.owner
                for lease in leases
                if lease.owner is not None and (lease.expires_in_seconds or 0) > 0
            )
            owners = sorted(held)
            return len(owners) == members and all(
                held[owner] == fair_share(owners, owner, partitions) for owner in owners
            )

        await wait_until(fair, timeout, 0.1, f"{members} orchestrator members with fair shares")

    def _stop_replicas(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.replicas = []

    async def close(self) -> None:
        self._stop_replicas()
        self.group.stop()
        if self.publisher is not None:
            await self.publisher.close()
        if self.pool is not None:
            await self.pool.close()
        try:
            await delete_broker_objects(self.endpoints.amqp_url, self.topology, self.activity_names)
        finally:
            await drop_database(self.endpoints.admin_database_url, self.database)

    def orchestrator_rss(self) -> int:
        """The orchestrator service's resident memory: all its processes (ADR 15)."""
        return sum(p.memory_info().rss for p in self._processes("orchestrator"))

    def _processes(self, service: str) -> list[psutil.Process]:
        """A service's processes with their children; the orchestrator's are the replicas'
        while they run."""
        groups = [self.group]
        if service == "orchestrator" and self.replicas:
            groups = self.replicas
        processes = []
        for group in groups:
            process = group[service].process
            assert process is not None
            top = psutil.Process(process.pid)
            processes += [top, *top.children(recursive=True)]
        return processes

    def cpu_seconds_by_process(self) -> dict[str, float]:
        """CPU time so far of the orchestrator (the replicas, while they run) and activity
        services (with their child processes), of Postgres and RabbitMQ (every process of
        theirs on this machine) and of this harness, which is also the client that starts the
        instances."""
        groups: dict[str, list[psutil.Process]] = {"harness": [psutil.Process()]}
        for name in ("orchestrator", "activities"):
            groups[name] = self._processes(name)
        groups["postgres"], groups["rabbitmq"] = [], []
        for process in psutil.process_iter(["name"]):
            name = process.info["name"] or ""
            if name.startswith("postgres"):
                groups["postgres"].append(process)
            elif name in ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"):
                groups["rabbitmq"].append(process)
        return {name: _cpu_seconds(processes) for name, processes in groups.items()}

    # --- starting and waiting ----------------------------------------------------------------

    async def start_many(self, name: str, inputs: Sequence[Any]) -> list[str]:
        """Start one instance per input, all at once, as an application that starts a batch
        does: the client writes and publishes the starts that arrive together in batches of
        its own (``durable.client.starts``)."""
        assert self.client is not None
        client = self.client
        return list(
            await asyncio.gather(*(client.start_new(name, input=value) for value in inputs))
        )

    async def count_ended(self, instance_ids: list[str]) -> int:
        assert self.pool is not None
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM instances WHERE instance_id = ANY($1::text[]) "
                "AND status = ANY($2::text[])",
                instance_ids,
                TERMINAL,
            )
        )

    async def wait_ended(
        self, instance_ids: list[str], timeout: float, interval: float = 0.05
    ) -> None:
        async def ended() -> bool:
            return await self.count_ended(instance_ids) == len(instance_ids)

        await wait_until(ended, timeout, interval, f"{len(instance_ids)} instances ending")

    async def wait_all(
        self,
        instance_ids: list[str],
        where: str,
        *args: Any,
        timeout: float,
        interval: float = 0.05,
        what: str,
    ) -> None:
        """Wait until the row of every one of ``instance_ids`` matches ``where`` (SQL; its
        parameters ``args`` are $2, $3, …)."""
        assert self.pool is not None
        pool = self.pool

        async def all_match() -> bool:
            count = await pool.fetchval(
                f"SELECT count(*) FROM instances WHERE instance_id = ANY($1::text[]) AND {where}",
                instance_ids,
                *args,
            )
            return bool(count == len(instance_ids))

        await wait_until(all_match, timeout, interval, f"{len(instance_ids)} instances {what}")

    async def instances(self, instance_ids: list[str]) -> list[asyncpg.Record]:
        assert self.pool is not None
        return list(
            await self.pool.fetch(
                "SELECT instance_id, status, output, created_at, completed_at, last_seq "
                "FROM instances WHERE instance_id = ANY($1::text[])",
                instance_ids,
            )
        )

    async def transactions(self, instance_ids: list[str]) -> int:
        """How many transactions wrote the events of ``instance_ids``: the client's batches
        of starts and the orchestrator's batches (ADR 11: one statement each)."""
        assert self.pool is not None
        return int(
            await self.pool.fetchval(
                "SELECT count(DISTINCT transaction_id) FROM events "
                "WHERE instance_id = ANY($1::text[])",
                instance_ids,
            )
        )

    async def last_seq(self, instance_id: str) -> int:
        assert self.pool is not None
        return int(
            await self.pool.fetchval(
                "SELECT last_seq FROM instances WHERE instance_id = $1", instance_id
            )
        )

    async def event_times(self, instance_id: str, event_type: str) -> list[datetime]:
        """The times the instance's events of ``event_type`` carry: when the step that
        recorded each was decided (steps written together, ADR 14, share ``recorded_at``)."""
        assert self.pool is not None
        rows = await self.pool.fetch(
            "SELECT (payload::jsonb ->> 'timestamp')::timestamptz AS at FROM events "
            "WHERE instance_id = $1 AND event_type = $2 ORDER BY seq",
            instance_id,
            event_type,
        )
        return [row["at"] for row in rows]


def _members(group: ServiceGroup) -> int:
    """The orchestrator members a group runs: the service's copies (ADR 15), or itself."""
    process = group["orchestrator"].process
    assert process is not None
    return len(psutil.Process(process.pid).children()) or 1


def _output(row: asyncpg.Record) -> Any:
    return None if row["output"] is None else json.loads(row["output"])


def _completed(rows: list[asyncpg.Record]) -> int:
    return sum(row["status"] == OrchestrationStatus.COMPLETED.value for row in rows)


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue  # a Postgres backend that ended in between: its time is lost with it
        total += times.user + times.system
    return total


async def delete_broker_objects(
    amqp_url: str, topology: Topology, activity_names: list[str]
) -> None:
    """Delete the namespace's queues and exchanges, its delay cascade included (ADR 35)."""
    connection = await connect(amqp_url, "bench.cleanup")
    try:
        channel = await connection.channel()
        queues, _ = topology.orchestrator_declarations()
        delay_exchanges, delay_queues, _, _ = topology.delay_declarations()
        names = [q.name for q in queues + delay_queues]
        for activity in activity_names:
            names += [q.name for q in topology.activity_declarations(activity)[0]]
        for name in names:
            await channel.queue_delete(name)
        for exchange in topology.exchanges() + delay_exchanges:
            await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()
