"""Broker entry points of a workflow other than the approval (``tests.apps.orders``): the client
service consumes the queues a function module declares, with the real RabbitMQ, and starts
orchestrations or raises events from their messages (ADR 26)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from contracts import ExecutionStarted, OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.apps.orders import PAYMENTS_QUEUE, PLACED_QUEUE, instance_of
from tests.conftest import AMQP_URL, unique
from tests.helpers.approval import INTERN, ApprovalBus, approval_bus, dead_letters, header
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e

PAYER = INTERN
"""A session broker user named by its own id: it may pay in its own name only."""


@pytest.fixture
async def bus(services: ServiceGroup, topology: Topology) -> AsyncIterator[ApprovalBus]:
    async with approval_bus(AMQP_URL, topology) as bus:
        yield bus


def order(order_id: str, *items: str) -> bytes:
    return json.dumps({"order_id": order_id, "items": list(items)}).encode()


def payment(order_id: str, payer: str, amount: float = 12.5) -> bytes:
    return json.dumps({"order_id": order_id, "payer": payer, "amount": amount}).encode()


def client_log_lines(services: ServiceGroup, event: str, instance_id: str) -> list[str]:
    text = services["client"].log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if event in line and instance_id in line]


async def test_a_message_on_a_workflows_queue_starts_its_orchestration_once(
    bus: ApprovalBus, client: DurableClient, services: ServiceGroup, topology: Topology
) -> None:
    order_id = unique("o-")
    placed = topology.workflow_name(PLACED_QUEUE)

    for _ in range(2):  # a publisher's retry: the same order twice
        await bus.publish(placed, order(order_id, "tea", "cups"))

    def duplicate_logged() -> bool:
        lines = client_log_lines(services, "entry_point.duplicate_start", order_id)
        return len(lines) == 1

    await assert_eventually(duplicate_logged, timeout=10)
    status = await client.get_status(instance_of(order_id))
    assert status is not None
    assert status.name == "order_received"
    assert status.input == {"order_id": order_id, "items": ["tea", "cups"]}
    history = [stored.event for stored in await client.get_history(instance_of(order_id))]
    assert sum(isinstance(event, ExecutionStarted) for event in history) == 1
    await client.terminate(instance_of(order_id), "test over")


async def test_an_event_is_raised_only_when_its_party_published_it(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    order_id = unique("o-")
    await bus.publish(topology.workflow_name(PLACED_QUEUE), order(order_id, "tea"))
    payments = topology.workflow_name(PAYMENTS_QUEUE)
    forged = payment(order_id, PAYER, 99.0)

    await bus.publish(payments, forged, user_id="guest")  # guest, naming the payer

    [dead] = await dead_letters(bus.channel, payments, lambda m: m.body == forged, 1)
    assert f"payer {PAYER!r} is not the publishing broker user 'guest'" in header(
        dead, "x-dead-letter-reason"
    )
    await bus.publish(payments, payment(order_id, PAYER), as_user=PAYER, user_id=PAYER)
    final = await client.wait_for_completion(instance_of(order_id), timeout=30)
    assert final.runtime_status is OrchestrationStatus.COMPLETED
    assert final.output["payment"] == {"order_id": order_id, "payer": PAYER, "amount": 12.5}


async def test_invalid_and_unusable_messages_are_dead_lettered_with_the_reason(
    bus: ApprovalBus, client: DurableClient, topology: Topology
) -> None:
    placed = topology.workflow_name(PLACED_QUEUE)
    payments = topology.workflow_name(PAYMENTS_QUEUE)
    no_items = order(unique("o-"))
    not_json = b"{not json"
    unknown = unique("o-")
    other_orchestrator = unique("o-")
    waiting_elsewhere = await client.start_new(
        "waits_for_approval", instance_of(other_orchestrator), 60
    )
    for body in (no_items, not_json):
        await bus.publish(placed, body)
    for body in (payment(unknown, PAYER), payment(other_orchestrator, PAYER)):
        await bus.publish(payments, body, as_user=PAYER, user_id=PAYER)
    good = unique("o-")
    await bus.publish(placed, order(good, "tea"))  # the consumer goes on

    for queue_name, expected in (
        (placed, {no_items: "invalid OrderPlaced", not_json: "invalid OrderPlaced"}),
        (
            payments,
            {
                payment(unknown, PAYER): f"no order {instance_of(unknown)!r}",
                payment(other_orchestrator, PAYER): "not 'order_received'",
            },
        ),
    ):
        dead = await dead_letters(bus.channel, queue_name, lambda m, e=expected: m.body in e, 2)
        for message in dead:
            assert expected[message.body] in header(message, "x-dead-letter-reason")
            assert header(message, "x-original-queue") == queue_name
    await assert_eventually(lambda: client.get_status(instance_of(good)), timeout=10)
    await client.terminate(instance_of(good), "test over")
    await client.terminate(waiting_elsewhere, "test over")
