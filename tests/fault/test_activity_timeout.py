"""A start-to-close time-out fires even when the worker that started the activity died."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus
from tests.fault.conftest import Deployment

pytestmark = pytest.mark.fault


async def test_the_orchestrator_sees_the_time_out_after_the_worker_running_the_activity_died(
    deployment: Deployment,
) -> None:
    instance_id = await deployment.client.start_new("guarded_hang", input=3)
    await deployment.wait_for_events("TaskStarted", 1)

    deployment.group["activities"].kill()

    status = await deployment.eventually(
        lambda: _ended(deployment, instance_id), timeout=30, interval=0.1
    )
    assert status.output == {"failed": "ActivityTimeoutError"}
    history = [s.event.event_type for s in await deployment.client.get_history(instance_id)]
    assert history.count("TaskStarted") == 1
    assert "TimerFired" in history
    assert "TaskCompleted" not in history


async def _ended(deployment: Deployment, instance_id: str):  # type: ignore[no-untyped-def]
    status = await deployment.client.get_status(instance_id)
    assert status is not None
    assert status.runtime_status is OrchestrationStatus.COMPLETED, status.runtime_status
    return status
