"""The proposal-approval workflow on the real services, driven the way its users drive it.

Proposals are published to the submissions queue, answers to the approval-responses queue;
requests and outcomes are read from the real exchanges. The deployment runs with a two-level
hierarchy and deadlines of seconds (``tests.helpers.approval.approval_env``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from contracts import EventRaised, OrchestrationStatus, TimerCreated, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.conftest import AMQP_URL, activity_names_under_test, unique
from tests.helpers.approval import (
    HEAD,
    INTERN,
    MANAGER,
    MANAGER_LIMIT,
    REMINDER_SECONDS,
    RESPONSE_SECONDS,
    ApprovalBus,
    approval_bus,
    proposal,
)
from tests.helpers.waiting import assert_eventually
from workflows.approval.messages import APPROVAL_ORCHESTRATOR

pytestmark = pytest.mark.e2e

COMPLETION_TIMEOUT = 30.0


@pytest.fixture(scope="module")
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


async def custom_status(client: DurableClient, proposal_id: str) -> dict:
    status = await client.get_status(proposal_id)
    assert status is not None, f"no instance {proposal_id}"
    assert isinstance(status.custom_status, dict), status.custom_status
    return status.custom_status


async def test_approved_in_time_by_the_manager(bus: ApprovalBus, client: DurableClient) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id, amount=800))

    routing_key, request = await bus.request(proposal_id, 1)
    assert (routing_key, request.assignee, request.stage) == (MANAGER, MANAGER, "manager")
    assert not request.reminder
    status = await custom_status(client, proposal_id)
    assert status["phase"] == "awaiting_response"
    assert (status["assignee"], status["stage"]) == (MANAGER, "manager")
    assert datetime.fromisoformat(status["deadline"]) == request.deadline
    await bus.respond(proposal_id, MANAGER, "approve", "ship it")

    final = await client.wait_for_completion(proposal_id, timeout=COMPLETION_TIMEOUT)
    assert final.runtime_status is OrchestrationStatus.COMPLETED
    assert final.custom_status["phase"] == "decided"
    output = final.output
    assert (output["outcome"], output["decided_by"], output["comment"]) == (
        "approved",
        MANAGER,
        "ship it",
    )
    assert output["escalations"] == []
    author_key, outcome = await bus.outcome(proposal_id)
    assert (author_key, outcome.outcome, outcome.decided_by) == ("alice", "approved", MANAGER)


async def test_a_large_proposal_goes_to_the_head_of_department_who_rejects_it(
    bus: ApprovalBus, client: DurableClient
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id, amount=MANAGER_LIMIT * 5, author="bob"))

    routing_key, request = await bus.request(proposal_id, 1)
    assert (routing_key, request.stage, request.level) == (HEAD, "head_of_department", 0)
    await bus.respond(proposal_id, HEAD, "reject", "not this year")

    final = await client.wait_for_completion(proposal_id, timeout=COMPLETION_TIMEOUT)
    assert (final.output["outcome"], final.output["decided_by"]) == ("rejected", HEAD)
    author_key, outcome = await bus.outcome(proposal_id)
    assert (author_key, outcome.outcome, outcome.comment) == ("bob", "rejected", "not this year")


async def test_no_answer_brings_a_reminder_then_reassignment_and_the_head_approves(
    bus: ApprovalBus, client: DurableClient
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id, amount=800))

    _, first = await bus.request(proposal_id, 1)
    _, reminder = await bus.request(proposal_id, 2)
    assert (reminder.assignee, reminder.reminder) == (MANAGER, True)
    assert reminder.requested_at >= first.deadline
    assert (reminder.deadline - reminder.requested_at).total_seconds() == REMINDER_SECONDS
    routing_key, reassigned = await bus.request(proposal_id, 3)
    assert (routing_key, reassigned.stage) == (HEAD, "head_of_department")
    assert reassigned.reassigned_from == MANAGER
    assert reassigned.requested_at >= reminder.deadline
    assert (reassigned.deadline - reassigned.requested_at).total_seconds() == RESPONSE_SECONDS

    async def shows_the_head() -> bool:
        status = await custom_status(client, proposal_id)
        assert (status["assignee"], status["stage"], status["escalations"]) == (
            HEAD,
            "head_of_department",
            2,
        )
        return datetime.fromisoformat(status["deadline"]) == reassigned.deadline

    await assert_eventually(shows_the_head, timeout=5)
    await bus.respond(proposal_id, HEAD, "approve")

    final = await client.wait_for_completion(proposal_id, timeout=COMPLETION_TIMEOUT)
    output = final.output
    assert (output["outcome"], output["decided_by"], output["stage"]) == (
        "approved",
        HEAD,
        "head_of_department",
    )
    escalations = [(e["kind"], e["assignee"], e["missed_deadline"]) for e in output["escalations"]]
    assert escalations == [
        ("reminder", MANAGER, first.deadline.isoformat().replace("+00:00", "Z")),
        ("reassignment", HEAD, reminder.deadline.isoformat().replace("+00:00", "Z")),
    ]
    _, outcome = await bus.outcome(proposal_id)
    assert [e.kind for e in outcome.escalations] == ["reminder", "reassignment"]


async def test_when_nobody_answers_the_proposal_is_auto_rejected(
    bus: ApprovalBus, client: DurableClient
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id, amount=800))
    await bus.request(proposal_id, 1)  # the instance exists

    final = await client.wait_for_completion(proposal_id, timeout=COMPLETION_TIMEOUT)

    output = final.output
    assert (output["outcome"], output["decided_by"]) == ("auto_rejected", None)
    assert [e["kind"] for e in output["escalations"]] == ["reminder", "reassignment", "reminder"]
    assert [(key, r.assignee, r.reminder) for key, r in bus.requests(proposal_id)] == [
        (MANAGER, MANAGER, False),
        (MANAGER, MANAGER, True),
        (HEAD, HEAD, False),
        (HEAD, HEAD, True),
    ]
    _, outcome = await bus.outcome(proposal_id)
    assert outcome.outcome == "auto_rejected"


async def test_an_answer_from_someone_else_is_recorded_and_ignored(
    bus: ApprovalBus, client: DurableClient
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id, amount=800))
    _, request = await bus.request(proposal_id, 1)

    await bus.respond(proposal_id, INTERN, "approve")

    async def recorded() -> bool:
        history = [stored.event for stored in await client.get_history(proposal_id)]
        raised = [e for e in history if isinstance(e, EventRaised)]
        return [e.input["approver"] for e in raised] == [INTERN]

    await assert_eventually(recorded, timeout=5)
    status = await client.get_status(proposal_id)
    assert status is not None
    assert status.runtime_status is OrchestrationStatus.RUNNING
    assert status.custom_status["assignee"] == MANAGER
    assert datetime.fromisoformat(status.custom_status["deadline"]) == request.deadline
    await bus.respond(proposal_id, MANAGER, "reject")

    final = await client.wait_for_completion(proposal_id, timeout=COMPLETION_TIMEOUT)
    assert (final.output["outcome"], final.output["decided_by"]) == ("rejected", MANAGER)
    ignored = final.output["ignored_responses"]
    assert [(r["approver"], r["decision"]) for r in ignored] == [(INTERN, "approve")]


async def test_an_answer_sent_before_the_workflow_waits_is_used(
    bus: ApprovalBus, client: DurableClient, services: ServiceGroup, topology: Topology
) -> None:
    # With the activities service down, the instance stops at its first activity (choosing
    # the approver), before it asks anyone: the answer is recorded before the workflow waits
    # for it (it has not even sent the request). Suspending it instead raced the activity's
    # result, which sometimes came first.
    proposal_id = unique("p-")
    body = proposal(proposal_id, amount=800).model_dump(mode="json")
    services["activities"].stop()
    try:
        await client.start_new(APPROVAL_ORCHESTRATOR, proposal_id, body)
        await bus.respond(proposal_id, MANAGER, "approve", "early bird")

        async def answer_recorded() -> bool:
            history = [stored.event for stored in await client.get_history(proposal_id)]
            return any(isinstance(e, EventRaised) for e in history)

        await assert_eventually(answer_recorded, timeout=10)
        assert bus.requests(proposal_id) == []
    finally:
        services["activities"].start()
        await services.wait_ready(topology, activity_names_under_test())

    final = await client.wait_for_completion(proposal_id, timeout=COMPLETION_TIMEOUT)
    assert (final.output["decided_by"], final.output["comment"]) == (MANAGER, "early bird")
    history = [stored.event for stored in await client.get_history(proposal_id)]
    assert not any(isinstance(e, TimerCreated) for e in history), "it waited for the answer"
    assert len(bus.requests(proposal_id)) == 1
