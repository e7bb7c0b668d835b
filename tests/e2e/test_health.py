"""Health end to end: each service's ``/readyz`` turns 503, naming the broker, when the broker
closes that service's own connection, and 200 again once it has connected again; every
service's ``/metrics`` answers in Prometheus's text format (ADR 30).

The deployment logs in as a broker user of its own. To hold a service disconnected long
enough to be seen, the test limits that user to no new connections
(``rabbitmqctl set_user_limits``), closes the service's connection, found by its user and
its client-provided name, then lifts the limit: no other connection on the broker is touched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from contracts import Topology
from deploy.processes import ServiceGroup, free_port
from durable.settings import CommonSettings
from tests.conftest import (
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    rabbitmqctl,
    service_env,
    unique,
)
from tests.helpers import broker_users
from tests.helpers.broker_users import BrokerUser
from tests.helpers.waiting import assert_eventually

PLAIN_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"
_CONNECTION_NAME = re.compile(r'\{"connection_name",(?:longstr,)?"([^"]*)"\}')


@dataclass
class Deployment:
    group: ServiceGroup
    user: BrokerUser

    def url(self, service: str) -> str:
        url = self.group[service].health_url
        assert url is not None
        return url


async def _deploy(
    tmp_path: Path, orchestrator_processes: int, names: tuple[str, ...]
) -> AsyncIterator[Deployment]:
    user = BrokerUser.new(unique("health-"))
    command = rabbitmqctl()
    await broker_users.create([user], AMQP_URL, command)
    database_url = await create_database()
    topology = Topology(namespace=unique("health"), partitions=4)
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=user.url(AMQP_URL),
        namespace=topology.namespace,
        partitions=topology.partitions,
        function_modules=f"{TEST_FUNCTION_MODULES},tests.apps.metrics_probe",
    )
    env = service_env(settings, free_port()) | {
        "DF_ORCHESTRATOR_PROCESSES": str(orchestrator_processes)
    }
    group = ServiceGroup(env, tmp_path, names)
    group.start()
    try:
        await group.wait_ready(topology, activity_names_under_test())
        yield Deployment(group, user)
    finally:
        await asyncio.to_thread(group.stop)
        await _rabbitmqctl("clear_user_limits", user.name, "all")
        await broker_users.delete([user], command)
        await delete_broker_objects(topology, activity_names_under_test())
        await drop_database(database_url)


@pytest.fixture(scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    """The three services, the orchestrator as a supervisor of two processes."""
    async for deployed in _deploy(
        tmp_path_factory.mktemp("health-logs"),
        2,
        (
            "orchestrator",
            "activities",
            "client",
        ),
    ):
        yield deployed


@pytest.fixture
async def single(tmp_path: Path) -> AsyncIterator[Deployment]:
    """An orchestrator of one process, which serves its port itself."""
    async for deployed in _deploy(tmp_path, 1, ("orchestrator",)):
        yield deployed


@pytest.mark.parametrize(
    ("service", "connection"),
    [
        ("orchestrator", "orchestrator.consume"),
        ("activities", "activities.consume"),
        ("client", "client-service.publish"),
    ],
)
async def test_readiness_names_the_broker_while_the_service_is_cut_off_from_it(
    deployment: Deployment, service: str, connection: str
) -> None:
    url = deployment.url(service)
    await _is_ready(url)

    async with _cut_off(deployment.user, connection):
        body = await _is_not_ready(url)
        if service == "orchestrator":
            assert re.match(r"process [01]: ", body["checks"]["broker"]), body
            assert sum(process["broker"] != "ok" for process in body["processes"].values()) == 1, (
                body
            )

    await _is_ready(url)


async def test_the_client_is_not_ready_while_its_entry_points_have_no_consumer(
    deployment: Deployment,
) -> None:
    url = deployment.url("client")
    await _is_ready(url)

    async with _cut_off(deployment.user, "client-service.consume"):
        body = await _is_not_ready(url, check="consumers")
        assert body["checks"]["broker"] == "ok", body  # its publisher is still connected
        assert ".approval.submissions" in str(body["checks"]["consumers"]), body

    await _is_ready(url)


async def test_a_single_orchestrator_process_reports_its_own_readiness(
    single: Deployment,
) -> None:
    url = single.url("orchestrator")
    await _is_ready(url)

    async with _cut_off(single.user, "orchestrator.consume"):
        body = await _is_not_ready(url)
        assert "processes" not in body

    await _is_ready(url)


@pytest.mark.parametrize("service", ["orchestrator", "activities", "client"])
async def test_every_service_serves_prometheus_metrics(
    deployment: Deployment, service: str
) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"{deployment.url(service)}/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == PLAIN_0_0_4
    # The supervisor's one scrape counts both of its processes; the others count themselves.
    imports = 2.0 if service == "orchestrator" else 1.0
    assert f"df_test_function_module_imports_total {imports}" in response.text


async def _is_ready(url: str) -> None:
    async def ready() -> bool:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{url}/readyz")
        assert response.status_code == 200, response.text
        return True

    await assert_eventually(ready, timeout=30, interval=0.2)


async def _is_not_ready(url: str, check: str = "broker") -> dict[str, object]:
    """The 503 body, in which ``check`` must fail; within a few seconds of the loss."""

    async def not_ready() -> dict[str, object]:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(f"{url}/readyz")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "not ready"
        assert body["checks"][check] != "ok", body
        return body  # type: ignore[no-any-return]

    return await assert_eventually(not_ready, timeout=5, interval=0.1)


class _cut_off:
    """While inside: ``user`` may open no connection, and the broker has closed one of its
    connections named ``name`` (the first it lists)."""

    def __init__(self, user: BrokerUser, name: str) -> None:
        self._user = user
        self._name = name

    async def __aenter__(self) -> None:
        await _rabbitmqctl("set_user_limits", self._user.name, '{"max-connections": 0}')
        pids = await _connections(self._user.name, self._name)
        assert pids, f"no connection {self._name!r} of {self._user.name}"
        await _rabbitmqctl("close_connection", pids[0], "test: readiness when cut off")

    async def __aexit__(self, *_: object) -> None:
        await _rabbitmqctl("clear_user_limits", self._user.name, "all")


async def _connections(user: str, name: str) -> list[str]:
    """The broker's ids of ``user``'s connections whose client-provided name is ``name``."""
    output = await _rabbitmqctl("-q", "list_connections", "pid", "user", "client_properties")
    pids = []
    for line in output.splitlines():
        pid, _, rest = line.partition("\t")
        connection_user, _, properties = rest.partition("\t")
        found = _CONNECTION_NAME.search(properties)
        if connection_user == user and found is not None and found.group(1) == name:
            pids.append(pid)
    return pids


async def _rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *rabbitmqctl(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {output.decode()}"
    return output.decode()
