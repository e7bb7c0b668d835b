"""Function chaining on the real services: Durable Functions' "Hello cities"."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus, TaskCompleted, TaskScheduled
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from workflows.samples import CITIES

pytestmark = pytest.mark.e2e


async def test_hello_cities_chain_returns_every_greeting_in_order(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("hello_cities")

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output == [f"Hello {city}!" for city in CITIES]
    history = [stored.event for stored in await client.get_history(instance_id)]
    scheduled = [e for e in history if isinstance(e, TaskScheduled)]
    assert [e.input for e in scheduled] == CITIES
    # Chaining: each activity is scheduled only after the previous one completed.
    completions = [i for i, e in enumerate(history) if isinstance(e, TaskCompleted)]
    schedules = [i for i, e in enumerate(history) if isinstance(e, TaskScheduled)]
    assert all(completions[n] < schedules[n + 1] for n in range(len(CITIES) - 1))
