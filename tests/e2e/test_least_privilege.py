"""The three services run as least-privilege identities, created for this module and removed
after it: a database owned by an owner role that migrated it, the services connecting as a
runtime role with rows and no DDL; the broker users ``durable-ops broker-definitions``
defines, run as an operator runs it: one per service, and the submitter, each approver and
the gateway, who may only publish to their entry point's exchange. A chain, a fan-out, a
durable timer through the delay cascade and the approval flow (submitted by the submitter,
approvers answering as their own broker users, ADR 20) all pass; an approver publishing
anywhere else, or as someone else, is refused by the broker or by ADR 20's check; a service
whose user lacks a right stops at start-up, naming it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import aiormq
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage

from contracts import OrchestrationStatus, Topology
from contracts.permissions import DEFAULT_EXCHANGE, Permissions
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
from tests.helpers.approval import (
    HEAD,
    MANAGER,
    Identities,
    approval_bus,
    dead_letters,
    header,
    proposal,
    response,
)
from tests.helpers.broker_users import BrokerUser
from tests.helpers.least_privilege import (
    DatabaseRoles,
    database_roles,
    database_url,
    defined_broker_users,
    service_broker_users,
)
from tests.helpers.waiting import assert_eventually
from workflows.approval.topology import ApprovalTopology

pytestmark = pytest.mark.e2e

COMPLETION_TIMEOUT = 60.0


@dataclass
class Deployment:
    topology: Topology
    group: ServiceGroup
    client: DurableClient
    roles: DatabaseRoles
    identities: Identities
    """The submitter's, the approvers' and the gateway's users, as the definitions limit
    them (the session's approvers, who may do anything, answer nothing here)."""

    def user(self, name: str) -> BrokerUser:
        return self.identities.users[name]


def permissions(topology: Topology) -> dict[str, Permissions]:
    return permissions_for(topology, entry_points_under_test())


@pytest.fixture(scope="module")
async def deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    topology = Topology(namespace=unique("lp"), partitions=4)
    ns = topology.namespace
    approvers = {MANAGER: f"{ns}-mia", HEAD: f"{ns}-hugo"}
    gateway = f"{ns}-gateway"
    try:
        async with database_roles(ADMIN_URL) as roles:
            runtime_url = database_url(ADMIN_URL, roles, roles.runtime)
            settings = CommonSettings(
                database_url=runtime_url,
                amqp_url=AMQP_URL,  # each service's own user below
                namespace=ns,
                partitions=topology.partitions,
                function_modules=TEST_FUNCTION_MODULES,
            )
            env = {
                **service_env(settings, free_port()),
                "DF_APPROVAL_BROKER_USERS": json.dumps(approvers),
                "DF_APPROVAL_GATEWAY_USERS": gateway,
            }
            async with defined_broker_users(
                env, [*approvers.values(), gateway], AMQP_URL, rabbitmqctl()
            ) as users:
                operator_url = users[f"{ns}-operator"].url(AMQP_URL)
                operator = settings.model_copy(update={"amqp_url": operator_url})
                group = ServiceGroup(env, tmp_path_factory.mktemp("least-privilege-logs"))
                for name, service in group.services.items():
                    service.env = {**env, "DF_AMQP_URL": users[f"{ns}-{name}"].url(AMQP_URL)}
                publishers = [*approvers.values(), gateway, f"{ns}-submitter"]
                identities = Identities(
                    {name: users[name] for name in publishers}, approvers, f"{ns}-submitter"
                )
                group.start()
                try:
                    await group.wait_ready(topology, activity_names_under_test())
                    async with await DurableClient.connect(operator, name="tests") as client:
                        yield Deployment(topology, group, client, roles, identities)
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
    """Submitted by the submitter, answered by the approvers' limited users."""
    async with approval_bus(AMQP_URL, deployment.topology, deployment.identities) as bus:
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


async def refusal(
    user: BrokerUser, exchange: str | None, routing_key: str, body: bytes, user_id: str
) -> str:
    """What the broker says when ``user`` publishes ``body`` to ``exchange`` (None: the
    default exchange) with this ``user_id``: it must refuse and close the channel."""
    connection = await aio_pika.connect(user.url(AMQP_URL))
    try:
        channel = await connection.channel(publisher_confirms=True)
        target = (
            channel.default_exchange
            if exchange is None
            else await channel.get_exchange(exchange, ensure=False)
        )
        with pytest.raises(aiormq.exceptions.ChannelClosed) as refused:
            await target.publish(aio_pika.Message(body, user_id=user_id), routing_key)
    finally:
        await connection.close()
    return str(refused.value)


async def test_an_approver_may_publish_to_the_responses_exchange_alone(
    deployment: Deployment,
) -> None:
    names = ApprovalTopology(deployment.topology)
    manager = deployment.identities.user_of(MANAGER)
    body = response("p-nowhere", MANAGER).model_dump_json().encode()
    elsewhere = {
        # the default exchange reaches every queue by name: the responses queue as before,
        # and the partition queues, where messages go unchecked
        "the default exchange": (None, names.approval_responses_queue),
        "the partition queues": (None, deployment.topology.partition_queue(0)),
        "the submissions exchange": (names.proposal_submissions_exchange, ""),
        "the orchestrator's exchange": (deployment.topology.orchestrator_exchange, "p00"),
        "the requests exchange": (names.approval_requests_exchange, MANAGER),
    }

    for what, (exchange, key) in elsewhere.items():
        reason = await refusal(deployment.user(manager), exchange, key, body, manager)
        name = exchange or DEFAULT_EXCHANGE
        assert f"access to exchange '{name}' in vhost '/' refused for user '{manager}'" in reason, (
            what
        )


async def test_an_approver_may_declare_and_consume_nothing(deployment: Deployment) -> None:
    names = ApprovalTopology(deployment.topology)
    manager = deployment.identities.user_of(MANAGER)
    connection = await aio_pika.connect(deployment.user(manager).url(AMQP_URL))
    try:
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await channel.declare_queue(f"{deployment.topology.namespace}.approval.mine")
        channel = await connection.channel()
        queue = await channel.get_queue(names.approval_responses_queue, ensure=False)

        async def ignore(message: AbstractIncomingMessage) -> None:
            pass

        with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
            await queue.consume(ignore)
    finally:
        await connection.close()


async def test_the_submitter_may_submit_and_not_answer(deployment: Deployment) -> None:
    names = ApprovalTopology(deployment.topology)
    submitter = deployment.identities.submitter
    assert submitter is not None
    body = response("p-nowhere", MANAGER).model_dump_json().encode()

    reason = await refusal(
        deployment.user(submitter), names.approval_responses_exchange, "", body, submitter
    )

    assert f"refused for user '{submitter}'" in reason


async def test_an_approver_answering_as_another_is_refused_and_decides_nothing(
    deployment: Deployment,
) -> None:
    names = ApprovalTopology(deployment.topology)
    head = deployment.identities.user_of(HEAD)
    async with approval_bus(AMQP_URL, deployment.topology, deployment.identities) as bus:
        proposal_id = unique("p-")
        await bus.submit(proposal(proposal_id, amount=800))
        assignee, _ = await bus.request(proposal_id, 1)
        assert assignee == MANAGER
        forged = response(proposal_id, MANAGER, "approve", "approved by the head")

        # As the manager's broker user: the broker refuses a user_id that is not the publisher.
        reason = await refusal(
            deployment.user(head),
            names.approval_responses_exchange,
            "",
            forged.model_dump_json().encode(),
            deployment.identities.user_of(MANAGER),
        )
        assert "PRECONDITION_FAILED" in reason
        assert "user_id" in reason
        # As themselves, naming the manager: ADR 20's check dead-letters it.
        await bus.respond_as(head, forged, user_id=head)
        queue = names.approval_responses_queue
        body = forged.model_dump_json().encode()
        [dead] = await dead_letters(bus.channel, queue, lambda m: m.body == body, 1)
        assert f"is not the publishing broker user {head!r}" in header(dead, "x-dead-letter-reason")

    history = [stored.event for stored in await deployment.client.get_history(proposal_id)]
    assert not any(type(event).__name__ == "EventRaised" for event in history), history
    await deployment.client.terminate(proposal_id, "done")


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
