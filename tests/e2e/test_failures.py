"""Failures on the real services: orchestrator and activity exceptions become Failed statuses."""

from __future__ import annotations

import pytest

from contracts import (
    ExecutionFailed,
    OrchestrationStatus,
    TaskCompleted,
    TaskFailed,
)
from deploy.processes import ServiceGroup
from durable.client import DurableClient

pytestmark = pytest.mark.e2e


async def test_orchestrator_exception_fails_the_instance_with_its_type_and_message(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("failing_orchestrator", input="the plan")

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.FAILED, services.logs()
    assert status.failure is not None
    assert status.failure.error_type == "ValueError"
    assert status.failure.message == "orchestrator gave up on 'the plan'"
    assert "failing_orchestrator" in (status.failure.stack_trace or "")
    assert status.output is None
    history = [stored.event for stored in await client.get_history(instance_id)]
    # The activity before the failure ran; the execution ended with exactly one failure event.
    assert [e.result for e in history if isinstance(e, TaskCompleted)] == ["before the failure"]
    failures = [e for e in history if isinstance(e, ExecutionFailed)]
    assert len(failures) == 1
    assert failures[0].failure == status.failure


async def test_uncaught_activity_failure_fails_the_instance_with_the_activity_error_inside(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("calls_failing_activity", input="the order")

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.FAILED, services.logs()
    failure = status.failure
    assert failure is not None
    assert failure.error_type == "TaskFailedError"
    assert "always_fails" in failure.message
    assert failure.inner_failure is not None
    assert failure.inner_failure.error_type == "RuntimeError"
    assert failure.inner_failure.message == "activity refused 'the order'"
    # The activity's own stack travels with it, so the cause is visible from the status.
    assert "always_fails" in (failure.inner_failure.stack_trace or "")
    history = [stored.event for stored in await client.get_history(instance_id)]
    task_failures = [e for e in history if isinstance(e, TaskFailed)]
    assert len(task_failures) == 1
    assert task_failures[0].failure == failure.inner_failure


async def test_caught_activity_failure_lets_the_orchestrator_complete(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await client.start_new("catches_failing_activity", input=7)

    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.COMPLETED, services.logs()
    assert status.output == {"caught": "RuntimeError", "message": "activity refused 7"}
    assert status.failure is None
