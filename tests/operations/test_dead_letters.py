"""``durable-ops dlq``: listing, showing, re-driving and discarding dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest

from contracts import OrchestrationStatus, Topology
from durable.declarations import declare
from tests.conftest import AMQP_URL, activity_names_under_test, delete_broker_objects, unique
from tests.helpers.approval import MANAGER, approval_bus, dead_letters, header, proposal
from tests.operations.conftest import OpsDeployment
from workflows.approval.topology import ApprovalTopology

pytestmark = pytest.mark.e2e


async def depths(deployment: OpsDeployment, **env: str) -> dict[str, int | None]:
    listed = await deployment.ops("dlq", "list", "--json", **env)
    assert listed.code == 0, listed
    return {line["queue"]: line["messages"] for line in listed.lines()}


async def test_redriven_dead_letters_are_processed_discarded_ones_are_gone_nothing_else_moves(
    deployment: OpsDeployment,
) -> None:
    topology = deployment.settings.topology
    approval = ApprovalTopology(topology)
    responses_dlq = topology.dead_letter_queue(approval.approval_responses_queue)
    submissions_dlq = topology.dead_letter_queue(approval.proposal_submissions_queue)
    partition_dlq = topology.dead_letter_queue(topology.partition_queue(0))
    proposal_id = unique("p-early-")
    async with approval_bus(AMQP_URL, topology) as bus:
        # The manager's answer arrives before the proposal: no such instance yet.
        await bus.respond(proposal_id, MANAGER, "approve")
        for number in range(3):
            await bus.publish(approval.proposal_submissions_queue, f"not json {number}".encode())
        orchestrator = await bus.channel.get_exchange(topology.orchestrator_exchange)
        await orchestrator.publish(aio_pika.Message(b"garbage"), "p00", mandatory=True)

        async def dead_lettered() -> dict[str, int | None]:
            found = await depths(deployment)
            assert found[responses_dlq] == 1, found
            assert found[submissions_dlq] == 3, found
            assert found[partition_dlq] == 1, found
            return found

        before = await deployment.eventually(dead_lettered)
        assert set(before.values()) <= {0, 1, 3}, "the other dead-letter queues are empty"

        shown = await deployment.ops("dlq", "show", responses_dlq, "--json")
        assert shown.code == 0, shown
        [letter] = shown.lines()
        assert letter["reason"] == f"no proposal {proposal_id!r}: no instance has this id"
        assert letter["original_queue"] == approval.approval_responses_queue
        assert await depths(deployment) == before  # showing moves nothing

        await bus.submit(proposal(proposal_id, amount=800))
        await bus.request(proposal_id, 1)
        redriven = await deployment.ops("dlq", "redrive", responses_dlq)
        assert redriven.code == 0, redriven
        assert f"1 message(s) re-driven to {approval.approval_responses_queue}" in redriven.stdout
        # The copy is the operator's publish, not the manager's: RabbitMQ vouched for the first
        # publisher only, so the consumer takes the answer for no one's and dead-letters it
        # again (docs/approval.md, trust model). The manager answers again.
        await dead_letters(
            bus.channel,
            approval.approval_responses_queue,
            lambda m: "no user_id" in header(m, "x-dead-letter-reason"),
            1,
        )
        await bus.respond(proposal_id, MANAGER, "approve")
        _, outcome = await bus.outcome(proposal_id)
        assert (outcome.outcome, outcome.decided_by) == ("approved", MANAGER)
        await deployment.wait_for_status(proposal_id, OrchestrationStatus.COMPLETED)

    discarded = await deployment.ops("dlq", "discard", submissions_dlq, "--limit", "2", "--json")
    assert discarded.code == 0, discarded
    assert [line["body"] for line in discarded.lines()] == ["not json 0", "not json 1"]
    after = await depths(deployment)
    assert after == {**before, responses_dlq: 0, submissions_dlq: 1}
    [left] = (await deployment.ops("dlq", "show", submissions_dlq, "--json")).lines()
    assert left["body"] == "not json 2"

    refused = await deployment.ops("dlq", "discard", approval.approval_responses_queue + ".x")
    assert refused.code == 2
    assert await depths(deployment) == after


@pytest.fixture
async def private_topology() -> AsyncIterator[Topology]:
    topology = Topology(namespace=unique("opsdlq"), partitions=2)
    yield topology
    await delete_broker_objects(topology, activity_names_under_test())


async def test_a_message_the_broker_dead_lettered_is_redriven_to_its_queue(
    deployment: OpsDeployment, private_topology: Topology
) -> None:
    """No service consumes this namespace: the test rejects a task itself, so the broker
    dead-letters it with x-death, and checks where the re-driven copy lands."""
    queue_name = private_topology.activity_queue("echo")
    dlq = private_topology.dead_letter_queue(queue_name)
    env = {"DF_NAMESPACE": private_topology.namespace, "DF_PARTITIONS": "2"}
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await declare(channel, private_topology, *private_topology.activity_declarations("echo"))
        await channel.default_exchange.publish(
            aio_pika.Message(b'{"task": 1}', message_id="task-1", type="ActivityTask"), queue_name
        )
        queue = await channel.get_queue(queue_name, ensure=False)
        async with queue.iterator() as deliveries:
            async for delivery in deliveries:
                await delivery.reject(requeue=False)
                break

        async def dead_lettered() -> bool:
            assert (await depths(deployment, **env))[dlq] == 1
            return True

        await deployment.eventually(dead_lettered)
        [letter] = (await deployment.ops("dlq", "show", dlq, "--json", **env)).lines()
        assert letter["original_queue"] == queue_name
        assert letter["deaths"][0]["reason"] == "rejected"
        assert letter["deaths"][0]["count"] == 1

        redriven = await deployment.ops("dlq", "redrive", queue_name, **env)
        assert redriven.code == 0, redriven
        assert (await depths(deployment, **env))[dlq] == 0
        async with queue.iterator() as deliveries:
            async for delivery in deliveries:
                assert (delivery.body, delivery.message_id) == (b'{"task": 1}', "task-1")
                assert "x-death" not in (delivery.headers or {})
                assert delivery.headers["x-redriven-from"] == dlq
                await delivery.ack()
                break
        declared = await channel.declare_queue(queue_name, passive=True)
        assert declared.declaration_result.message_count == 0
    finally:
        await connection.close()
