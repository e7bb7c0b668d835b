"""Orchestrator messages built the way their real senders build them.

``start`` follows ``DurableClient.start_new``; ``task_completed`` and ``task_failed`` follow
``ActivityWorker`` (the result's id is derived from instance, execution and task, so a re-run
of the task yields the same id). ``at`` fixes the event's timestamp (default: now).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from contracts import (
    ActivityTask,
    ActivityTaskMessage,
    Envelope,
    EventRaised,
    ExecutionStarted,
    FailureDetails,
    InboundEvent,
    OrchestratorMessage,
    TaskCompleted,
    TaskFailed,
    Topology,
    deterministic_message_id,
)
from tests.conftest import unique


def _message(
    instance_id: str, execution_id: str | None, message_id: uuid.UUID, body: InboundEvent
) -> OrchestratorMessage:
    return OrchestratorMessage(
        envelope=Envelope(
            message_id=message_id,
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id=f"corr-{instance_id}",
            type=body.event_type,
            sent_at=body.timestamp,
        ),
        body=body,
    )


def start(
    instance_id: str,
    name: str,
    input: Any = None,
    *,
    execution_id: str | None = None,
    at: datetime | None = None,
) -> OrchestratorMessage:
    execution_id = execution_id or uuid.uuid4().hex
    return _message(
        instance_id,
        execution_id,
        deterministic_message_id(instance_id, execution_id, "start"),
        ExecutionStarted(
            timestamp=at or datetime.now(UTC), name=name, execution_id=execution_id, input=input
        ),
    )


def execution_of(start_message: OrchestratorMessage) -> str:
    assert isinstance(start_message.body, ExecutionStarted)
    return start_message.body.execution_id


def task_completed(
    instance_id: str,
    execution_id: str,
    task_id: int,
    result: Any = None,
    *,
    at: datetime | None = None,
) -> OrchestratorMessage:
    return _message(
        instance_id,
        execution_id,
        deterministic_message_id(instance_id, execution_id, "result", task_id),
        TaskCompleted(timestamp=at or datetime.now(UTC), task_scheduled_id=task_id, result=result),
    )


def task_failed(
    instance_id: str,
    execution_id: str,
    task_id: int,
    error_type: str = "RuntimeError",
    message: str = "boom",
    *,
    at: datetime | None = None,
) -> OrchestratorMessage:
    return _message(
        instance_id,
        execution_id,
        deterministic_message_id(instance_id, execution_id, "result", task_id),
        TaskFailed(
            timestamp=at or datetime.now(UTC),
            task_scheduled_id=task_id,
            failure=FailureDetails(error_type=error_type, message=message),
        ),
    )


def event_raised(
    instance_id: str,
    execution_id: str | None,
    name: str,
    data: Any = None,
    *,
    message_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> OrchestratorMessage:
    return _message(
        instance_id,
        execution_id,
        message_id or uuid.uuid4(),
        EventRaised(timestamp=at or datetime.now(UTC), name=name, input=data),
    )


def activity_task(
    instance_id: str, name: str, input: Any = None, *, task_id: int = 0
) -> ActivityTaskMessage:
    """A task as the orchestrator schedules it (see ``OrchestrationHandler``)."""
    execution_id = "e1"
    return ActivityTaskMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(instance_id, execution_id, "task", task_id),
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id=f"corr-{instance_id}",
            type="ActivityTask",
            sent_at=datetime.now(UTC),
        ),
        body=ActivityTask(name=name, input=input, task_scheduled_id=task_id),
    )


def ids_on_one_partition(topology: Topology, count: int) -> list[str]:
    """``count`` new instance ids that ``topology`` routes to one partition."""
    first = unique("pipe-")
    partition = topology.partition_for(first)
    ids = [first]
    while len(ids) < count:
        candidate = unique("pipe-")
        if topology.partition_for(candidate) == partition:
            ids.append(candidate)
    return ids
