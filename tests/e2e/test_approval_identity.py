"""Only the real approver decides: the responses consumer takes an answer only from the broker
user that identifies the approver it names (RabbitMQ's validated ``user_id``), or a gateway.

The session's deployment maps the manager and the head of department to broker users of their
own (``DF_APPROVAL_BROKER_USERS``), trusts one gateway user (``DF_APPROVAL_GATEWAY_USERS``) and
nobody else: not guest, whose connection can publish anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import aiormq
import pytest

from contracts import EventRaised, OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.conftest import AMQP_URL, unique
from tests.helpers.approval import (
    GATEWAY,
    HEAD,
    MANAGER,
    ApprovalBus,
    approval_bus,
    broker_user_of,
    dead_letters,
    header,
    proposal,
    response,
)
from workflows.approval.topology import ApprovalTopology

pytestmark = pytest.mark.e2e

GUEST = "guest"


@pytest.fixture(scope="module")
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


async def awaiting_the_manager(bus: ApprovalBus) -> str:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id, amount=800))
    assignee, _ = await bus.request(proposal_id, 1)
    assert assignee == MANAGER
    return proposal_id


async def assert_undecided(client: DurableClient, proposal_id: str) -> None:
    """No answer reached the instance: nothing raised, still waiting for the manager."""
    history = [stored.event for stored in await client.get_history(proposal_id)]
    assert not any(isinstance(event, EventRaised) for event in history), history
    status = await client.get_status(proposal_id)
    assert status is not None
    assert status.runtime_status is OrchestrationStatus.RUNNING
    assert status.custom_status["phase"] == "awaiting_response"


FORGERIES = [
    pytest.param(
        None,
        GUEST,
        f"approver {MANAGER!r} is not the publishing broker user {GUEST!r}",
        id="guest naming the assignee",
    ),
    pytest.param(
        broker_user_of(HEAD),
        broker_user_of(HEAD),
        f"approver {MANAGER!r} is not the publishing broker user {broker_user_of(HEAD)!r}",
        id="another approver naming the assignee",
    ),
    pytest.param(None, None, "no user_id", id="guest without user_id"),
    pytest.param(
        broker_user_of(MANAGER), None, "no user_id", id="the assignee's own user without user_id"
    ),
]


@pytest.mark.parametrize(("publisher", "user_id", "reason"), FORGERIES)
async def test_an_answer_not_proven_to_come_from_its_approver_is_dead_lettered_and_decides_nothing(
    bus: ApprovalBus,
    client: DurableClient,
    services: ServiceGroup,
    topology: Topology,
    publisher: str | None,
    user_id: str | None,
    reason: str,
) -> None:
    proposal_id = await awaiting_the_manager(bus)
    forged = response(proposal_id, MANAGER, "approve", "approved by someone else")

    await bus.respond_as(publisher, forged, user_id=user_id)

    queue_name = ApprovalTopology(topology).approval_responses_queue
    body = forged.model_dump_json().encode()
    [dead] = await dead_letters(bus.channel, queue_name, lambda m: m.body == body, 1)
    assert reason in header(dead, "x-dead-letter-reason")
    assert header(dead, "x-original-queue") == queue_name
    await assert_undecided(client, proposal_id)
    log = services["client"].log_path.read_text(errors="replace")
    assert any(
        "approval.response_unverified" in line and proposal_id in line and "warning" in line
        for line in log.splitlines()
    )

    await bus.respond(proposal_id, MANAGER, "reject")
    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert (final.output["outcome"], final.output["decided_by"]) == ("rejected", MANAGER)
    assert final.output["ignored_responses"] == []


async def test_the_approver_s_own_broker_user_decides(
    bus: ApprovalBus, client: DurableClient
) -> None:
    proposal_id = await awaiting_the_manager(bus)
    manager = broker_user_of(MANAGER)
    assert manager != MANAGER  # mapped: the person id is not the broker user's name

    await bus.respond_as(manager, response(proposal_id, MANAGER, "approve"), user_id=manager)

    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert (final.output["outcome"], final.output["decided_by"]) == ("approved", MANAGER)


async def test_an_answer_published_to_the_default_exchange_as_before_still_decides(
    bus: ApprovalBus, client: DurableClient
) -> None:
    """The path approvers used before the responses exchange existed (the queue's name on
    the default exchange) still arrives, for a user allowed to write there."""
    proposal_id = await awaiting_the_manager(bus)
    manager = broker_user_of(MANAGER)

    await bus.respond_as(
        manager,
        response(proposal_id, MANAGER, "approve"),
        user_id=manager,
        via_default_exchange=True,
    )

    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert (final.output["outcome"], final.output["decided_by"]) == ("approved", MANAGER)


async def test_a_gateway_user_answers_for_the_assignee(
    bus: ApprovalBus, client: DurableClient
) -> None:
    proposal_id = await awaiting_the_manager(bus)

    await bus.respond_as(GATEWAY, response(proposal_id, MANAGER, "approve"), user_id=GATEWAY)

    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert (final.output["outcome"], final.output["decided_by"]) == ("approved", MANAGER)


async def test_the_broker_refuses_a_user_id_that_is_not_the_publishing_user(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    """Why ``user_id`` cannot be forged: RabbitMQ itself closes the channel of a publisher
    that sets another user's name, and the message goes nowhere."""
    proposal_id = await awaiting_the_manager(bus)
    forged = response(proposal_id, MANAGER, "approve")
    connection = await aio_pika.connect(AMQP_URL)  # guest
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="user_id"):
            await channel.default_exchange.publish(
                aio_pika.Message(
                    forged.model_dump_json().encode(), user_id=broker_user_of(MANAGER)
                ),
                ApprovalTopology(topology).approval_responses_queue,
            )
    finally:
        await connection.close()

    await bus.respond(proposal_id, MANAGER, "reject")
    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert (final.output["outcome"], final.output["decided_by"]) == ("rejected", MANAGER)
    history = [stored.event for stored in await client.get_history(proposal_id)]
    assert sum(isinstance(event, EventRaised) for event in history) == 1
