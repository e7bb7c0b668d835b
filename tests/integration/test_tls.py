"""Transport security: the services, the CLIs and the client library reach a broker and a
database that speak only TLS, through the TLS parameters of their URLs; a certificate signed
by another CA is refused, and a service says so.

The servers are the test's own (``tests.helpers.tls_servers``): a RabbitMQ node and a Postgres
cluster given certificates the test makes. The machine's servers are not touched.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiormq.exceptions import AMQPConnectionError

from contracts import OrchestrationStatus, Topology
from deploy.processes import PROJECT_ROOT, ServiceGroup, ServiceProcess
from durable.broker import connect
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from services.common.migrate import apply_migrations
from tests.conftest import TEST_FUNCTION_MODULES, free_port, service_env, unique
from tests.helpers.tls_servers import (
    TlsBroker,
    TlsPostgres,
    certificates,
    tls_broker,
    tls_postgres,
)
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.ha  # builds servers of its own


@dataclass(frozen=True)
class Servers:
    broker: TlsBroker
    postgres: TlsPostgres
    database: str


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[Servers]:
    with certificates() as certs:
        async with tls_broker(certs) as broker, tls_postgres(certs) as postgres:
            admin = await asyncpg.connect(postgres.url())
            try:
                await admin.execute("CREATE DATABASE durable")
            finally:
                await admin.close()
            connection = await asyncpg.connect(postgres.url("durable"))
            try:
                await apply_migrations(connection)
            finally:
                await connection.close()
            yield Servers(broker, postgres, "durable")


async def test_a_broker_connection_verifies_the_server_and_shows_a_client_certificate(
    servers: Servers,
) -> None:
    connection = await connect(servers.broker.url(), "tests.tls")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        assert queue.name
    finally:
        await connection.close()


async def test_a_broker_certificate_from_another_ca_is_refused(servers: Servers) -> None:
    wrong = servers.broker.url(servers.broker.certificates.wrong_ca)

    with pytest.raises(AMQPConnectionError, match="certificate verify failed") as refused:
        await connect(wrong, "tests.tls", timeout=10)
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)


async def test_the_broker_refuses_a_client_without_a_certificate(servers: Servers) -> None:
    with pytest.raises(Exception) as refused:  # noqa: PT011 the TLS alert, however it surfaces
        await connect(servers.broker.url(client_certificate=False), "tests.tls", timeout=10)
    assert not isinstance(refused.value, ssl.SSLCertVerificationError)


async def test_a_database_pool_verifies_the_server_over_tls(servers: Servers) -> None:
    pool = await create_pool(servers.postgres.url(servers.database), min_size=1, max_size=1)
    try:
        assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await pool.close()


async def test_a_database_certificate_from_another_ca_is_refused(servers: Servers) -> None:
    wrong = servers.postgres.url(servers.database, servers.postgres.certificates.wrong_ca)

    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        await create_pool(wrong, min_size=1, max_size=1)


async def test_a_database_without_tls_is_refused_by_the_server(servers: Servers) -> None:
    plain = servers.postgres.url(servers.database, sslmode="disable")

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plain)


async def run_cli(command: list[str], env: dict[str, str]) -> int | None:
    """``python -m <command>`` with the deployment's variables; its exit code."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *command,
        env={**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"{command}: {out.decode()}{err.decode()}"
    return process.returncode


def settings_for(servers: Servers, topology: Topology) -> CommonSettings:
    return CommonSettings(
        database_url=servers.postgres.url(servers.database),
        amqp_url=servers.broker.url(),
        namespace=topology.namespace,
        partitions=topology.partitions,
        function_modules=TEST_FUNCTION_MODULES,
    )


async def test_the_services_the_client_and_durable_ops_run_over_tls(
    servers: Servers, tmp_path: Path
) -> None:
    topology = Topology(namespace=unique("tls"), partitions=2)
    settings = settings_for(servers, topology)
    env = {**service_env(settings, free_port()), "DF_ORCHESTRATOR_PROCESSES": "1"}
    group = ServiceGroup(env, tmp_path)
    group.start()
    try:
        await group.wait_ready(topology, ["say_hello"])
        async with await DurableClient.connect(settings, name="tests.tls") as client:
            instance_id = await client.start_new("hello_cities", input=["Oslo"])
            final = await client.wait_for_completion(instance_id, timeout=60)
        assert final.runtime_status is OrchestrationStatus.COMPLETED
        for command in (
            ["services.client.cli", "start", "hello_cities", "--input", '["Lima"]', "--wait", "30"],
            ["services.operations", "members", "--json"],
        ):
            assert await run_cli(command, env) == 0
    except BaseException:
        print(group.logs())
        raise
    finally:
        group.stop()


async def test_a_service_given_the_wrong_ca_stops_saying_why(
    servers: Servers, tmp_path: Path
) -> None:
    topology = Topology(namespace=unique("tls"), partitions=2)
    settings = settings_for(servers, topology)
    wrong = servers.broker.url(servers.broker.certificates.wrong_ca)
    service = ServiceProcess(
        "activities", {**service_env(settings, free_port()), "DF_AMQP_URL": wrong}, tmp_path / "a"
    )
    service.start()

    def stopped() -> bool:
        assert not service.running
        return True

    try:
        await assert_eventually(stopped, timeout=60, interval=0.2)
    finally:
        service.stop()
    log = service.log_tail()
    assert service.process is not None
    assert service.process.returncode == 2, log
    assert "service.cannot_start" in log
    assert "certificate verify failed" in log
    assert "cafile" in log
