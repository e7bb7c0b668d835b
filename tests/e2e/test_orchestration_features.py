"""Retries, sub-orchestrations and continue-as-new on the real services."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from contracts import OrchestrationStatus
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.helpers.waiting import assert_eventually, wait_for_status

pytestmark = pytest.mark.e2e


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def event_types(client: DurableClient, instance_id: str) -> Counter[str]:
    return Counter(stored.event.event_type for stored in await client.get_history(instance_id))


async def test_an_activity_failing_twice_then_succeeding_runs_three_attempts_with_timers_between(
    services: ServiceGroup, client: DurableClient
) -> None:
    order = {"order_id": unique("order"), "fail_payment_attempts": 2, "ship": True}
    instance_id = await client.start_new("process_order", input=order)

    status = await client.wait_for_completion(instance_id, timeout=60)

    assert status.runtime_status is OrchestrationStatus.COMPLETED, status.failure
    assert status.output["receipt"] == f"receipt-{order['order_id']}-3"
    history = [s.event for s in await client.get_history(instance_id)]
    charges = [e for e in history if e.event_type == "TaskScheduled" and e.name == "charge_payment"]
    assert [c.attempt for c in charges] == [1, 2, 3]
    counts = Counter(e.event_type for e in history)
    assert counts["TaskFailed"] == 2
    assert counts["TimerCreated"] == counts["TimerFired"] == 2


async def test_a_child_failure_is_caught_by_the_parent_and_both_are_linked(
    services: ServiceGroup, client: DurableClient
) -> None:
    order = {"order_id": unique("order"), "ship": False}
    instance_id = await client.start_new("process_order", input=order)

    status = await client.wait_for_completion(instance_id, timeout=60)

    assert status.output["shipped"] is False
    assert f"no carrier accepts order {order['order_id']}" in status.output["problem"]
    history = [s.event for s in await client.get_history(instance_id)]
    created = next(e for e in history if e.event_type == "SubOrchestrationInstanceCreated")
    child = await client.get_status(created.instance_id)
    assert child is not None
    assert child.runtime_status is OrchestrationStatus.FAILED
    assert child.parent_instance_id == instance_id
    child_history = [s.event for s in await client.get_history(created.instance_id)]
    child_start = next(e for e in child_history if e.event_type == "ExecutionStarted")
    assert child_start.parent.instance_id == instance_id
    assert "SubOrchestrationInstanceFailed" in await event_types(client, instance_id)


async def test_terminating_a_parent_terminates_its_running_children(
    services: ServiceGroup, client: DurableClient
) -> None:
    child_id = unique("child")
    parent_id = await client.start_new("waits_on_child", input=child_id)

    await wait_for_status(client, child_id, OrchestrationStatus.RUNNING)
    await client.terminate(parent_id, "cancelled by the test")

    parent = await client.wait_for_completion(parent_id, timeout=30)
    child = await client.wait_for_completion(child_id, timeout=30)
    assert parent.runtime_status is OrchestrationStatus.TERMINATED
    assert child.runtime_status is OrchestrationStatus.TERMINATED


async def test_a_monitor_runs_fifty_rounds_with_continue_as_new_and_its_history_stays_bounded(
    services: ServiceGroup, client: DurableClient
) -> None:
    watch = {
        "job_id": f"{unique('job')}:50",
        "interval_seconds": 0.05,
        "expires_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
        "checks": 0,
    }
    instance_id = await client.start_new("monitor_job", input=watch)

    status = await client.wait_for_completion(instance_id, timeout=120)

    assert status.output == {"job_id": watch["job_id"], "outcome": "done", "checks": 50}
    history = await client.get_history(instance_id)
    # Only the last round is kept: its start, its check and its end (no 50 rounds' worth).
    assert len(history) <= 8, [s.event.event_type for s in history]
    assert {s.event.execution_id for s in history if s.event.event_type == "ExecutionStarted"} == {
        status.execution_id
    }


async def test_a_monitor_stops_when_it_expires(
    services: ServiceGroup, client: DurableClient
) -> None:
    watch = {
        "job_id": unique("never-done"),
        "interval_seconds": 0.5,
        "expires_at": (datetime.now(UTC) + timedelta(seconds=2)).isoformat(),
        "checks": 0,
    }
    instance_id = await client.start_new("monitor_job", input=watch)

    status = await client.wait_for_completion(instance_id, timeout=60)

    assert status.output["outcome"] == "expired"
    assert 2 <= status.output["checks"] <= 5


@pytest.mark.parametrize(("keep", "expected"), [(True, ["a", "b", "stop"]), (False, ["a"])])
async def test_events_raised_before_continue_as_new_are_kept_only_when_asked(
    services: ServiceGroup, client: DurableClient, keep: bool, expected: list[str]
) -> None:
    instance_id = await client.start_new("eternal_inbox", input={"keep": keep, "seen": []})
    await assert_eventually(lambda: _running(client, instance_id), timeout=30)
    # All three arrive before the first execution continues as new: it consumes "a".
    await client.suspend(instance_id)
    for item in ("a", "b", "stop"):
        await client.raise_event(instance_id, "Item", item)
    await client.resume(instance_id)

    if keep:
        status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.output == expected
    else:

        async def waiting_again() -> bool:
            status = await client.get_status(instance_id)
            assert status is not None
            assert status.runtime_status is OrchestrationStatus.RUNNING
            assert status.input == {"keep": False, "seen": expected}
            return True

        await assert_eventually(waiting_again, timeout=30)
        await client.terminate(instance_id)


async def _running(client: DurableClient, instance_id: str) -> bool:
    status = await client.get_status(instance_id)
    assert status is not None
    assert status.runtime_status is OrchestrationStatus.RUNNING
    return True
