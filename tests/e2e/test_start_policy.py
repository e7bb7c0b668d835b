"""The start policy on the real services: the session's client service runs with
``DF_START_EXISTING=replace_ended``, yet its submissions consumer still refuses every existing
proposal id, ended or not, so a re-sent submission starts nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from contracts import ExecutionStarted, OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.conftest import AMQP_URL, unique
from tests.helpers.approval import MANAGER, ApprovalBus, approval_bus, proposal, submission
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


async def test_a_submission_re_sent_after_its_proposal_ended_starts_nothing(
    bus: ApprovalBus, client: DurableClient, services: ServiceGroup
) -> None:
    assert services.env["DF_START_EXISTING"] == "replace_ended"
    proposal_id = unique("p-")
    message = submission(proposal(proposal_id))
    await bus.submit(message)
    await bus.request(proposal_id, 1)
    await bus.respond(proposal_id, MANAGER)
    decided = await client.wait_for_completion(proposal_id, timeout=30)

    await bus.submit(message)
    await bus.submit(submission(proposal(proposal_id)))

    def duplicates_logged() -> bool:
        log = services["client"].log_path.read_text(errors="replace")
        lines = [
            line
            for line in log.splitlines()
            if "proposal.duplicate_submission" in line and proposal_id in line
        ]
        return len(lines) == 2

    await assert_eventually(duplicates_logged, timeout=10)
    after = await client.get_status(proposal_id)
    assert after is not None
    assert after.runtime_status is OrchestrationStatus.COMPLETED
    assert (after.execution_id, after.output) == (decided.execution_id, decided.output)
    history = [stored.event for stored in await client.get_history(proposal_id)]
    assert sum(isinstance(event, ExecutionStarted) for event in history) == 1
    assert len(bus.requests(proposal_id)) == 1
