"""The client service's broker entry points: duplicates, bad messages, answers nobody can use.

Everything is published to the real submissions and approval-responses queues of the session's
deployment; dead letters are read from their real dead-letter queues.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from contracts import EventRaised, ExecutionStarted, OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.conftest import AMQP_URL, unique
from tests.helpers.approval import (
    INTERN,
    MANAGER,
    ApprovalBus,
    approval_bus,
    broker_user_of,
    dead_letters,
    header,
    proposal,
    response,
    submission,
)
from tests.helpers.waiting import assert_eventually
from workflows.approval.topology import ApprovalTopology

pytestmark = pytest.mark.e2e

GARBAGE = b"\x00\xff this is not JSON"


@pytest.fixture(scope="module")
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


def client_log_lines(services: ServiceGroup, event: str, proposal_id: str) -> list[str]:
    text = services["client"].log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if event in line and proposal_id in line]


async def test_a_re_sent_submission_starts_one_instance(
    bus: ApprovalBus, client: DurableClient, services: ServiceGroup
) -> None:
    proposal_id = unique("p-")
    message = submission(proposal(proposal_id))
    # The same message three times (a publisher retrying), and a new message for the same id.
    for copy in (message, message, message, submission(proposal(proposal_id))):
        await bus.submit(copy)

    def duplicates_logged() -> bool:
        return len(client_log_lines(services, "proposal.duplicate_submission", proposal_id)) == 3

    await assert_eventually(duplicates_logged, timeout=10)
    await bus.request(proposal_id, 1)
    await bus.respond(proposal_id, MANAGER)
    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert final.output["outcome"] == "approved"
    history = [stored.event for stored in await client.get_history(proposal_id)]
    assert sum(isinstance(e, ExecutionStarted) for e in history) == 1
    assert len(bus.requests(proposal_id)) == 1


async def test_invalid_submissions_are_dead_lettered_and_the_consumer_keeps_going(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    bad_amount = json.loads(submission(proposal(unique("p-"))).model_dump_json())
    bad_amount["body"]["amount"] = "lots"
    violating = json.dumps(bad_amount).encode()
    mismatched = json.loads(submission(proposal(unique("p-"))).model_dump_json())
    mismatched["envelope"]["type"] = "ApprovalResponse"
    wrong_type = json.dumps(mismatched).encode()
    for body in (GARBAGE, violating, wrong_type):
        await bus.publish(ApprovalTopology(topology).proposal_submissions_queue, body)

    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id))
    await bus.request(proposal_id, 1)
    await bus.respond(proposal_id, MANAGER)
    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert final.output["outcome"] == "approved"

    queue_name = ApprovalTopology(topology).proposal_submissions_queue
    expected = {
        GARBAGE: "Invalid JSON",
        violating: "amount",
        wrong_type: "is not 'ProposalSubmitted'",
    }
    dead = await dead_letters(bus.channel, queue_name, lambda m: m.body in expected, 3)
    for message in dead:
        reason = header(message, "x-dead-letter-reason")
        assert reason.startswith("invalid ProposalSubmitted")
        assert expected[message.body] in reason, reason
        assert header(message, "x-original-queue") == queue_name


async def test_invalid_and_unusable_responses_are_dead_lettered_with_the_reason(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id))
    await bus.request(proposal_id, 1)
    not_a_decision = json.loads(response(proposal_id, MANAGER).model_dump_json())
    not_a_decision["body"]["decision"] = "maybe"
    violating = json.dumps(not_a_decision).encode()
    unknown = response(unique("no-such-proposal-"), MANAGER)
    waiting_elsewhere = await client.start_new("waits_for_approval", unique("other-"), 60)
    not_an_approval = response(waiting_elsewhere, MANAGER)
    manager = broker_user_of(MANAGER)  # so they fail for what they say, not who sent them
    for body in (GARBAGE, violating, unknown, not_an_approval):
        await bus.publish(
            ApprovalTopology(topology).approval_responses_queue,
            body,
            as_user=manager,
            user_id=manager,
        )
    await bus.respond(proposal_id, MANAGER)

    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert final.output["outcome"] == "approved"
    queue_name = ApprovalTopology(topology).approval_responses_queue
    expected = {
        GARBAGE: "invalid ApprovalResponse",
        violating: "'approve' or 'reject'",
        unknown.model_dump_json().encode(): "no proposal",
        not_an_approval.model_dump_json().encode(): "runs 'waits_for_approval'",
    }
    dead = await dead_letters(bus.channel, queue_name, lambda m: m.body in expected, 4)
    for message in dead:
        assert expected[message.body] in header(message, "x-dead-letter-reason")
    other = await client.get_status(waiting_elsewhere)
    assert other is not None
    assert other.runtime_status is OrchestrationStatus.RUNNING  # no event reached it
    await client.terminate(waiting_elsewhere, "test over")


async def test_an_answer_after_the_decision_is_acknowledged_and_logged(
    bus: ApprovalBus, client: DurableClient, services: ServiceGroup
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id))
    await bus.request(proposal_id, 1)
    await bus.respond(proposal_id, MANAGER, "reject")
    await client.wait_for_completion(proposal_id, timeout=30)

    await bus.respond(proposal_id, MANAGER, "approve", "changed my mind")

    def logged() -> bool:
        return bool(client_log_lines(services, "approval.response_after_end", proposal_id))

    await assert_eventually(logged, timeout=10)
    final = await client.get_status(proposal_id)
    assert final is not None
    assert final.output["outcome"] == "rejected"


async def test_a_redelivered_response_is_raised_once(
    bus: ApprovalBus, client: DurableClient, services: ServiceGroup
) -> None:
    proposal_id = unique("p-")
    await bus.submit(proposal(proposal_id))
    await bus.request(proposal_id, 1)
    someone_else = response(proposal_id, INTERN)
    for _ in range(3):  # the same message: a publisher's retry, or a redelivery after a crash
        await bus.respond_as(INTERN, someone_else, user_id=INTERN)

    def all_raised() -> bool:
        return len(client_log_lines(services, "approval.response_raised", proposal_id)) == 3

    await assert_eventually(all_raised, timeout=10)
    await bus.respond(proposal_id, MANAGER)

    final = await client.wait_for_completion(proposal_id, timeout=30)
    assert final.output["decided_by"] == MANAGER
    assert [r["approver"] for r in final.output["ignored_responses"]] == [INTERN]
    history = [stored.event for stored in await client.get_history(proposal_id)]
    assert sum(isinstance(e, EventRaised) for e in history) == 2
