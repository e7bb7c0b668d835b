"""Orchestrator replicas as separate hosts run them (ADR 27): one process each
(``DF_ORCHESTRATOR_PROCESSES=1``) with a member id of its own, next to one activities service,
on a database and broker namespace of their own; and the signals the scale-out tests send them.

Every replica logs JSON lines, which the tests read for what it did (``lease.lost``,
``batch.lease_lost``); the lease rows say who holds which partition, by the database's clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from contracts import Topology
from deploy.processes import PROJECT_ROOT, ServiceProcess
from durable.broker_nodes import connect
from durable.client import DurableClient
from services.orchestrator.leases import fair_share
from tests.conftest import AMQP_URL
from tests.helpers.waiting import assert_eventually

T = TypeVar("T")

LEASE_SECONDS = 3.0
PARTITIONS = 16
HEARTBEAT_SECONDS = 3


@dataclass(frozen=True)
class Holding:
    """A partition's lease row: who holds it, at which epoch, since when (database clock)."""

    owner: str | None
    epoch: int
    acquired_at: datetime | None


@dataclass
class Replica:
    """One orchestrator process, member ``member`` of the deployment."""

    member: str
    service: ServiceProcess
    paused: bool = False

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    def start(self) -> None:
        self.service.start()

    def kill(self) -> None:
        """``kill -9``."""
        self.resume()
        self.service.kill()

    def terminate(self) -> None:
        """SIGTERM, without waiting: the graceful stop."""
        os.kill(self.pid, signal.SIGTERM)

    def pause(self) -> None:
        """SIGSTOP: the process stays, its sockets open, and does nothing."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.service.running:
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def exit_status(self) -> int | None:
        assert self.service.process is not None
        return self.service.process.poll()

    def database_ports(self) -> list[int]:
        """The local ports of this process's connections to Postgres."""
        connections = psutil.Process(self.pid).net_connections("tcp")
        return [c.laddr.port for c in connections if c.raddr and c.raddr.port == 5432]

    def stop(self) -> None:
        self.resume()
        self.service.stop(timeout=15)

    def log_events(self, *names: str) -> list[dict[str, Any]]:
        """The lines this replica logged whose event is one of ``names``, oldest first."""
        return [line for line in self._log_lines() if line.get("event") in names]

    def _log_lines(self) -> Iterator[dict[str, Any]]:
        if not self.service.log_path.exists():
            return
        for text in self.service.log_path.read_text(errors="replace").splitlines():
            if text.startswith("{"):
                try:
                    yield json.loads(text)
                except json.JSONDecodeError:
                    continue


@dataclass
class ScaleOut:
    """The deployment: replicas (not started until a test starts them), the activities
    service, a client in this process and a pool on the database."""

    topology: Topology
    env: dict[str, str]
    client: DurableClient
    pool: asyncpg.Pool
    activities: ServiceProcess
    replicas: list[Replica] = field(default_factory=list)
    others: list[ServiceProcess] = field(default_factory=list)
    """More processes of the deployment (more activity workers, the client service), whose
    logs a failure shows too."""

    def replica(self, member: str) -> Replica:
        return next(r for r in self.replicas if r.member == member)

    async def eventually(
        self, check: Callable[[], Awaitable[T]], timeout: float, interval: float = 0.05
    ) -> T:
        """``assert_eventually``, with the services' logs added to a failure."""
        try:
            return await assert_eventually(check, timeout=timeout, interval=interval)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from error

    def logs(self) -> str:
        services = [self.activities, *self.others] + [r.service for r in self.replicas]
        return "\n".join(
            f"----- {s.log_path.name} -----\n{s.log_tail(25)}" for s in services if s.process
        )

    async def now(self) -> datetime:
        """The database's clock, which the lease rows and ``recorded_at`` are on."""
        return await self.pool.fetchval("SELECT clock_timestamp()")  # type: ignore[no-any-return]

    async def holdings(self) -> dict[int, Holding]:
        rows = await self.pool.fetch(
            "SELECT partition, owner, epoch, acquired_at FROM partition_leases "
            "WHERE namespace = $1 AND (expires_at > now() OR owner IS NULL)",
            self.topology.namespace,
        )
        held = {
            row["partition"]: Holding(row["owner"], row["epoch"], row["acquired_at"])
            for row in rows
        }
        # An expired lease is held by no one, whatever its row still names.
        return {p: held.get(p, Holding(None, 0, None)) for p in range(self.topology.partitions)}

    async def held_by(self, member: str) -> dict[int, Holding]:
        return {p: h for p, h in (await self.holdings()).items() if h.owner == member}

    async def wait_balanced(self, members: list[str], timeout: float) -> dict[int, Holding]:
        """Wait until ``members`` (and no one else) hold every partition, each its fair share;
        return the holdings."""
        members = sorted(members)
        want = {m: fair_share(members, m, self.topology.partitions) for m in members}

        async def balanced() -> dict[int, Holding]:
            holdings = await self.holdings()
            counts = {m: 0 for m in members}
            for holding in holdings.values():
                assert holding.owner in counts, f"partitions held: {_owners(holdings)}"
                counts[holding.owner] += 1
            assert counts == want, f"held {counts}, fair shares {want}"
            return holdings

        return await self.eventually(balanced, timeout=timeout, interval=0.1)

    async def open_transactions(self, replica: Replica) -> int:
        """How many of ``replica``'s sessions are inside a transaction, between statements."""
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1::int[]) "
            "AND state = 'idle in transaction'"
        )
        return int(await self.pool.fetchval(query, replica.database_ports()))

    async def lock_waits(self) -> list[str]:
        """Each session waiting on a lock, with the sessions that block it: what a failure
        of a takeover test prints."""
        rows = await self.pool.fetch(
            "SELECT w.pid, w.query AS waiting, b.pid AS blocker, b.state, b.client_port, "
            "clock_timestamp() - b.state_change AS since, b.wait_event, b.query AS holding, "
            "b.query_start - b.xact_start AS into_transaction "
            "FROM pg_stat_activity w "
            "CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS blocking(pid) "
            "JOIN pg_stat_activity b ON b.pid = blocking.pid "
            "WHERE w.wait_event_type = 'Lock'"
        )
        return [
            f"{r['pid']} waits ({r['waiting'][:80]!r}) on {r['blocker']} "
            f"(port {r['client_port']}, {r['state']} for {r['since']}, "
            f"wait {r['wait_event']}, last {r['holding'][:80]!r} "
            f"begun {r['into_transaction']} into its transaction)"
            for r in rows
        ]

    async def first_commits_after(
        self, since: datetime, partitions: set[int]
    ) -> dict[int, datetime]:
        """For each of ``partitions``, when the first transaction after ``since`` that
        appended events to one of its instances began (``recorded_at``)."""
        rows = await self.pool.fetch(
            "SELECT instance_id, min(recorded_at) AS first FROM events "
            "WHERE recorded_at > $1 GROUP BY instance_id",
            since,
        )
        firsts: dict[int, datetime] = {}
        for row in rows:
            partition = self.topology.partition_for(row["instance_id"])
            if partition in partitions and (
                partition not in firsts or row["first"] < firsts[partition]
            ):
                firsts[partition] = row["first"]
        return firsts

    def check_invariants(self) -> subprocess.CompletedProcess[str]:
        """``durable-ops check-invariants`` over the whole database, as an operator runs it."""
        return subprocess.run(
            [sys.executable, "-m", "services.operations", "check-invariants"],
            env={**os.environ, **self.env, "PYTHONPATH": str(PROJECT_ROOT)},
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _owners(holdings: dict[int, Holding]) -> dict[int, str | None]:
    return {p: h.owner for p, h in sorted(holdings.items())}


def make_replica(env: dict[str, str], log_dir: Path, index: int) -> Replica:
    member = f"replica-{index}"
    replica_env = env | {"DF_ORCHESTRATOR_PROCESSES": "1", "DF_MEMBER_ID": member}
    return Replica(member, ServiceProcess("orchestrator", replica_env, log_dir / f"{member}.log"))


def with_heartbeat(amqp_url: str, heartbeat: int) -> str:
    parts = urlsplit(amqp_url)
    query = "&".join(q for q in (parts.query, f"heartbeat={heartbeat}") if q)
    return urlunsplit(parts._replace(query=query))


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


async def dead_lettered(
    topology: Topology, activity_names: list[str], amqp_url: str = AMQP_URL
) -> dict[str, int]:
    """Messages waiting in the deployment's dead-letter queues, by queue (on ``amqp_url``,
    one URL or the nodes of a cluster)."""
    queues, _ = topology.orchestrator_declarations()
    for activity in activity_names:
        queues += topology.activity_declarations(activity)[0]
    connection = await connect(amqp_url, "dead-letter-count")
    try:
        channel = await connection.channel()
        counts = {}
        for spec in queues:
            if spec.name.endswith(".dlq"):
                queue = await channel.declare_queue(spec.name, passive=True)
                if queue.declaration_result.message_count:
                    counts[spec.name] = queue.declaration_result.message_count
        return counts
    finally:
        await connection.close()
