"""Running the three services as local processes: start, wait until ready, kill, stop.

Used by ``make run`` / ``make up`` and by the end-to-end and fault tests, so the tests start
the services exactly the way a person does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aio_pika
import asyncpg
import httpx

from contracts.topology import Topology
from durable.broker import connect
from durable.settings import CommonSettings
from durable.store.leases import members_and_leases
from services.activities.settings import ActivitiesSettings
from services.orchestrator.leases import fair_share
from services.orchestrator.settings import OrchestratorSettings, process_count

SERVICES = ("orchestrator", "activities", "client")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY_PORT_VARIABLES = {
    "orchestrator": "DF_ORCHESTRATOR_OBSERVABILITY_PORT",
    "activities": "DF_ACTIVITIES_OBSERVABILITY_PORT",
}
"""The setting naming the port of each service's ``/livez``, ``/readyz`` and ``/metrics``
(the client's are on its HTTP API's port)."""


@dataclass
class ServiceProcess:
    """One service (``python -m services.<name>``) with its log file.

    With ``free_ports`` (the default), a service whose observability port its environment
    does not name is given a free one of its own, kept across restarts
    (``observability_port``): several deployments, or two replicas started from one
    environment, never collide on the settings' default.
    """

    name: str
    env: Mapping[str, str]
    log_path: Path
    free_ports: bool = True
    process: subprocess.Popen[bytes] | None = None
    observability_port: int | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        env = {**os.environ, **self.env, "PYTHONPATH": str(PROJECT_ROOT)}
        variable = OBSERVABILITY_PORT_VARIABLES.get(self.name)
        if variable is not None and self.observability_port is None:
            named = env.get(variable)
            if named is None:
                self.observability_port = free_port() if self.free_ports else _default(variable)
            elif named.isdigit() and int(named) > 0:
                self.observability_port = int(named)
        if variable is not None and self.observability_port is not None:
            env[variable] = str(self.observability_port)
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    @property
    def health_url(self) -> str | None:
        """Where this service's ``/livez``, ``/readyz`` and ``/metrics`` are (None: no port,
        or one chosen by the service that only its log says)."""
        if self.name == "client":
            host = self._setting("DF_HTTP_HOST", "127.0.0.1")
            port: int | None = int(self._setting("DF_HTTP_PORT", "7071"))
        else:
            host = self._setting("DF_OBSERVABILITY_HOST", "127.0.0.1")
            port = self.observability_port
        if port is None:
            return None
        return f"http://{_reachable(host)}:{port}"

    def _setting(self, name: str, default: str) -> str:
        return self.env[name] if name in self.env else os.environ.get(name, default)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash case, no chance to clean up."""
        if self.process is not None and self.running:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process is None:
            return None
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_log()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class ServiceGroup:
    """The three services of one deployment, configured by ``DF_*`` variables in ``env``;
    ``free_ports``: see ``ServiceProcess``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path,
        names: Iterable[str] = SERVICES,
        *,
        free_ports: bool = True,
    ) -> None:
        self.env = dict(env)
        self.services = {
            name: ServiceProcess(name, self.env, log_dir / f"{name}.log", free_ports)
            for name in names
        }

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self) -> None:
        for service in self.services.values():
            service.start()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def logs(self) -> str:
        return "\n".join(
            f"----- {name} ({service.log_path}) -----\n{service.log_tail()}"
            for name, service in self.services.items()
        )

    async def wait_ready(
        self,
        topology: Topology,
        activity_names: Iterable[str] = (),
        timeout: float = 60.0,
    ) -> None:
        """Wait until every partition and activity queue has a consumer, the orchestrator's
        processes have joined and shared the partitions out, and every service says it is
        ready (``/readyz``)."""
        deadline = time.monotonic() + timeout
        queues = [topology.partition_queue(p) for p in range(topology.partitions)]
        if "activities" in self.services:
            queues += [topology.activity_queue(name) for name in activity_names]
        connection = await connect(
            self._setting("DF_AMQP_URL", "amqp://guest:guest@127.0.0.1/"), "deploy.wait-ready"
        )
        try:
            while True:
                self._raise_if_exited()
                waiting_for = (
                    await _unconsumed(connection, queues)
                    or await self._members_unsettled(topology)
                    or await self._services_not_ready()
                )
                if waiting_for is None:
                    return
                if time.monotonic() > deadline:
                    # Every service may be up and logging nothing wrong (a queue nothing
                    # serves is no error to them): only this check knows what it waited for.
                    raise TimeoutError(
                        f"services not ready after {timeout} s: {waiting_for}\n{self.logs()}"
                    )
                await asyncio.sleep(0.2)
        finally:
            await connection.close()

    def _setting(self, name: str, default: str) -> str:
        """A variable as the services see it: ``env`` overrides this process's environment."""
        return self.env[name] if name in self.env else os.environ.get(name, default)

    def _raise_if_exited(self) -> None:
        for name, service in self.services.items():
            if service.process is not None and not service.running:
                raise RuntimeError(f"service {name} exited early\n{service.log_tail()}")

    async def _members_unsettled(self, topology: Topology) -> str | None:
        """What is missing before every orchestrator process is a live member holding its
        fair share and no partition is free (just after a start, one may have released a
        partition that another has not taken yet, ADR 27); ``None`` once settled."""
        if "orchestrator" not in self.services:
            return None
        expected = process_count(
            int(self._setting("DF_ORCHESTRATOR_PROCESSES", "0")), topology.partitions
        )
        lease_seconds = float(self._setting("DF_LEASE_SECONDS", "5"))
        url = self._setting("DF_DATABASE_URL", CommonSettings.model_fields["database_url"].default)
        try:
            connection = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError) as error:
            return f"the database does not answer ({type(error).__name__})"
        try:
            members, leases = await members_and_leases(connection, topology.namespace)
        except asyncpg.UndefinedTableError:
            return "the database is not migrated yet"
        finally:
            await connection.close()
        live = sorted(m.member_id for m in members if m.heartbeat_age_seconds <= lease_seconds)
        held = Counter(
            lease.owner
            for lease in leases
            if lease.owner is not None and (lease.expires_in_seconds or 0) > 0
        )
        if len(live) < expected:
            return f"{len(live)} of {expected} orchestrator processes are live members"
        if sum(held.values()) != topology.partitions:
            return f"{sum(held.values())} of {topology.partitions} partitions are held"
        unfair = [m for m in live if held[m] != fair_share(live, m, topology.partitions)]
        if unfair:
            return f"members {unfair} do not hold their fair share of the partitions yet"
        return None

    async def _services_not_ready(self) -> str | None:
        """The first service whose ``/readyz`` does not answer 200, and what it said."""
        urls = [s.health_url for s in self.services.values() if s.health_url is not None]
        async with httpx.AsyncClient(timeout=5.0) as http:
            for url in urls:
                try:
                    response = await http.get(f"{url}/readyz")
                except httpx.HTTPError as error:
                    return f"{url}/readyz does not answer ({type(error).__name__})"
                if response.status_code != 200:
                    return f"{url}/readyz answers {response.status_code}: {response.text}"
        return None


_ports_given: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, and not given out before by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _ports_given:
            _ports_given.add(port)
            return port


def _default(variable: str) -> int | None:
    """The port a service listens on when ``variable`` is not set."""
    settings = OrchestratorSettings if "ORCHESTRATOR" in variable else ActivitiesSettings
    default: int | None = settings.model_fields[variable.removeprefix("DF_").lower()].default
    return default


def _reachable(host: str) -> str:
    """The address to reach a service listening on ``host`` from this machine."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


async def _unconsumed(connection: aio_pika.abc.AbstractConnection, queues: list[str]) -> str | None:
    """Which of ``queues`` no consumer reads (a queue not declared yet neither); ``None``
    when every one has a consumer."""
    missing = []
    channel = await connection.channel()
    try:
        for name in queues:
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                missing.append(f"{name} (not declared)")
                channel = await connection.channel()  # a failed passive declare closes it
                continue
            if not queue.declaration_result.consumer_count:
                missing.append(name)
    finally:
        if not channel.is_closed:
            await channel.close()
    return f"no consumer on {', '.join(missing)}" if missing else None
