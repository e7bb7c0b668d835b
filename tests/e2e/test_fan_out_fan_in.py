"""Fan-out/fan-in on the real services: a thousand activities in parallel, summed."""

from __future__ import annotations

from collections import Counter

import pytest

from contracts import OrchestrationStatus, TaskCompleted, TaskScheduled
from deploy.processes import ServiceGroup
from durable.client import DurableClient

pytestmark = pytest.mark.e2e

FAN_OUT = 1_000


async def test_fan_out_of_a_thousand_activities_sums_every_square_once(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("fan_out_fan_in", input=FAN_OUT)

    status = await client.wait_for_completion(instance_id, timeout=120)

    assert status.runtime_status is OrchestrationStatus.COMPLETED, services.logs()
    assert status.output == sum(n * n for n in range(FAN_OUT))
    history = [stored.event for stored in await client.get_history(instance_id)]
    scheduled = [e for e in history if isinstance(e, TaskScheduled)]
    completed = [e for e in history if isinstance(e, TaskCompleted)]
    assert len(scheduled) == FAN_OUT
    assert len(completed) == FAN_OUT
    # Each task completed exactly once, with its own square.
    assert sorted(e.input for e in scheduled) == list(range(FAN_OUT))
    assert Counter(e.task_scheduled_id for e in completed) == Counter(e.event_id for e in scheduled)
    inputs = {e.event_id: e.input for e in scheduled}
    assert all(e.result == inputs[e.task_scheduled_id] ** 2 for e in completed)
    # Fan-out: every task is scheduled in the first episode, before any result comes back.
    first_completion = next(i for i, e in enumerate(history) if isinstance(e, TaskCompleted))
    last_schedule = max(i for i, e in enumerate(history) if isinstance(e, TaskScheduled))
    assert last_schedule < first_completion
