"""The three services run as least-privilege identities, created for this module and removed
after it: a database owned by an owner role that migrated it, the services connecting as a
runtime role with rows and no DDL; one broker user per service with the permissions
``durable-ops broker-definitions`` gives it. A chain, a fan-out, a durable timer through the
delay cascade and the approval flow (approvers answering as their own broker users, ADR 20)
all pass; a service whose user lacks a right stops at start-up, naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from contracts import OrchestrationStatus, Topology
from contracts.permissions import Permissions
from deploy.processes import ServiceGroup, ServiceProcess
from durable.client import DurableClient
from durable.settings import CommonSettings
from services.operations.broker_definitions import permissions_for
from tests.conftest import (
    ADMIN_URL,
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    delete_broker_objects,
    entry_points_under_test,
    free_port,
    rabbitmqctl,
    service_env,
    unique,
)
from tests.helpers.approval import HEAD, MANAGER, approval_bus, proposal
from tests.helpers.least_privilege import (
    DatabaseRoles,
    database_roles,
    database_url,
    service_broker_users,
)
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e

COMPLETION_TIMEOUT = 60.0


@dataclass
class Deployment:
    topology: Topology
    group: ServiceGroup
    client: DurableClient
    roles: DatabaseRoles


def permissions(topology: Topology) -> dict[str, Permissions]:
    return permissions_for(topology, entry_points_under_test())


@pytest.fixture(scope="module")
async def deployment(
    approver_broker_users: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    topology = Topology(namespace=unique("lp"), partitions=4)
    try:
        async with (
            database_roles(ADMIN_URL) as roles,
            service_broker_users(
                permissions(topology), topology.namespace, AMQP_URL, rabbitmqctl()
            ) as users,
        ):
            runtime_url = database_url(ADMIN_URL, roles, roles.runtime)
            settings = CommonSettings(
                database_url=runtime_url,
                amqp_url=users["operator"].url(AMQP_URL),
                namespace=topology.namespace,
                partitions=topology.partitions,
                function_modules=TEST_FUNCTION_MODULES,
            )
            env = service_env(settings, free_port())
            group = ServiceGroup(env, tmp_path_factory.mktemp("least-privilege-logs"))
            for name, service in group.services.items():
                service.env = {**env, "DF_AMQP_URL": users[name].url(AMQP_URL)}
            group.start()
            try:
                await group.wait_ready(topology, activity_names_under_test())
                async with await DurableClient.connect(settings, name="tests") as client:
                    yield Deployment(topology, group, client, roles)
            except BaseException:
                print(group.logs())
                raise
            finally:
                group.stop()
    finally:
        await delete_broker_objects(topology, activity_names_under_test())


async def completed(deployment: Deployment, instance_id: str) -> object:
    final = await deployment.client.wait_for_completion(instance_id, timeout=COMPLETION_TIMEOUT)
    assert final.runtime_status is OrchestrationStatus.COMPLETED, final
    return final.output


async def test_a_chain_completes_with_least_privilege(deployment: Deployment) -> None:
    instance_id = await deployment.client.start_new("hello_cities", input=["Oslo", "Lima"])

    assert await completed(deployment, instance_id) == ["Hello Oslo!", "Hello Lima!"]


async def test_a_fan_out_completes_with_least_privilege(deployment: Deployment) -> None:
    instance_id = await deployment.client.start_new("fan_out_fan_in", input=50)

    assert await completed(deployment, instance_id) == sum(n * n for n in range(50))


async def test_a_timer_enters_the_deployments_own_cascade(deployment: Deployment) -> None:
    instance_id = await deployment.client.start_new("sleeper", input=3600)
    url = database_url(ADMIN_URL, deployment.roles, deployment.roles.runtime)

    async def published() -> bool:
        # The fire stays in the outbox until the broker confirmed it into <ns>.timers.entry.
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetchval("SELECT count(*) FROM outbox")
            timers = await connection.fetchval(
                "SELECT count(*) FROM timers WHERE instance_id = $1", instance_id
            )
        finally:
            await connection.close()
        assert (rows, timers) == (0, 1)
        return True

    await assert_eventually(published, timeout=20)
    await deployment.client.terminate(instance_id, "done")


async def test_the_approval_flow_passes_with_least_privilege(deployment: Deployment) -> None:
    async with approval_bus(AMQP_URL, deployment.topology) as bus:
        approved, escalated = unique("p-"), unique("p-")
        await bus.submit(proposal(approved, amount=800))
        await bus.submit(proposal(escalated, amount=800, author="bob"))

        await bus.request(approved, 1)
        await bus.respond(approved, MANAGER, "approve", "ship it")
        output = await completed(deployment, approved)
        assert isinstance(output, dict)
        assert (output["outcome"], output["decided_by"]) == ("approved", MANAGER)
        assert (await bus.outcome(approved))[1].outcome == "approved"

        # No answer: a reminder, then the head of department, who rejects it.
        routing_key, _ = await bus.request(escalated, 3, timeout=30)
        assert routing_key == HEAD
        await bus.respond(escalated, HEAD, "reject", "not now")
        output = await completed(deployment, escalated)
        assert isinstance(output, dict)
        assert (output["outcome"], output["decided_by"]) == ("rejected", HEAD)


def start_alone(name: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    service = ServiceProcess(name, env, log_dir / f"{name}.log")
    service.start()
    return service


async def exited(service: ServiceProcess, timeout: float = 60) -> str:
    def stopped() -> bool:
        assert not service.running, "still running"
        return True

    try:
        await assert_eventually(stopped, timeout=timeout, interval=0.2)
    finally:
        service.stop()
    assert service.process is not None
    assert service.process.returncode == 2, service.log_tail()
    return service.log_tail()


async def test_a_broker_user_without_a_right_stops_the_service_naming_it(
    tmp_path: Path,
) -> None:
    topology = Topology(namespace=unique("lp"), partitions=2)
    # The activities service may not read its activity queues, which declaring them (with
    # their dead-letter exchange) already needs.
    narrow = dataclasses.replace(
        permissions(topology)["activities"],
        read=rf"^{topology.namespace}\.(orchestrator|activities|dlx|orchestrator\.p\d+)$",
    )
    try:
        async with (
            database_roles(ADMIN_URL) as roles,
            service_broker_users(
                {"activities": narrow}, topology.namespace, AMQP_URL, rabbitmqctl()
            ) as users,
        ):
            user = users["activities"]
            env = {
                **service_env(
                    CommonSettings(
                        database_url=database_url(ADMIN_URL, roles, roles.runtime),
                        amqp_url=user.url(AMQP_URL),
                        namespace=topology.namespace,
                        partitions=topology.partitions,
                        function_modules=TEST_FUNCTION_MODULES,
                    ),
                    free_port(),
                ),
            }
            log = await exited(start_alone("activities", env, tmp_path))
    finally:
        await delete_broker_objects(topology, activity_names_under_test())

    queue = f"{topology.namespace}.activity."
    assert "service.cannot_start" in log
    assert f"declaring queue '{queue}" in log
    assert "needs configure and read on queue" in log
    assert f"access to queue '{queue}" in log
    assert f"refused for user '{user.name}'" in log
    assert "durable-ops broker-definitions" in log


async def test_a_database_role_without_grants_stops_the_service_naming_it(
    tmp_path: Path,
) -> None:
    topology = Topology(namespace=unique("lp"), partitions=2)
    async with database_roles(ADMIN_URL, grant=False) as roles:
        env = service_env(
            CommonSettings(
                database_url=database_url(ADMIN_URL, roles, roles.runtime),
                amqp_url=AMQP_URL,
                namespace=topology.namespace,
                partitions=topology.partitions,
                function_modules=TEST_FUNCTION_MODULES,
            ),
            free_port(),
        )
        log = await exited(start_alone("client", env, tmp_path))

    assert "service.cannot_start" in log
    assert f"database role '{roles.runtime.user}'" in log
    assert "SELECT on table instances" in log
    assert f"--runtime-role {roles.runtime.user}" in log
