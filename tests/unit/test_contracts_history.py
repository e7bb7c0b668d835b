"""Every history event type survives JSON, and the union knows each by its type tag."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts import (
    ContinueAsNew,
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityOperationSignaled,
    EntityUnlockSent,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TimerCreated,
    TimerFired,
)
from contracts.history import HISTORY_EVENT_ADAPTER

AT = datetime(2026, 1, 1, 9, 30, 15, 123456, tzinfo=UTC)
FAILURE = FailureDetails(
    error_type="TaskFailedError",
    message="activity failed",
    stack_trace="Traceback ...",
    inner_failure=FailureDetails(error_type="KeyError", message="'sku'", is_non_retriable=True),
)

ONE_OF_EACH = [
    ExecutionStarted(
        timestamp=AT,
        name="approval",
        execution_id="e1",
        input={"proposal": {"id": 7, "tags": ["a", "b"], "score": 0.5, "draft": False}},
        parent=ParentInstance(instance_id="p1", execution_id="pe1", task_scheduled_id=2, name="x"),
        scheduled_start_at=AT,
    ),
    OrchestratorStarted(timestamp=AT),
    TaskScheduled(timestamp=AT, event_id=0, name="say_hello", input="Tokyo"),
    TaskScheduled(timestamp=AT, event_id=1, name="charge", attempt=2, timeout_seconds=30.0),
    TaskStarted(timestamp=AT, task_scheduled_id=1),
    ExecutionRewound(timestamp=AT, reason="fixed the bug", new_execution_id="e2"),
    TaskCompleted(timestamp=AT, task_scheduled_id=0, result=["Hello Tokyo!"]),
    TaskFailed(timestamp=AT, task_scheduled_id=1, failure=FAILURE),
    TimerCreated(timestamp=AT, event_id=2, fire_at=AT),
    TimerFired(timestamp=AT, timer_id=2, fire_at=AT),
    EventRaised(timestamp=AT, name="approval", input=True),
    EventSent(timestamp=AT, event_id=3, instance_id="other", name="ping", input=None),
    SubOrchestrationInstanceCreated(timestamp=AT, event_id=4, name="child", instance_id="c1"),
    SubOrchestrationInstanceCompleted(timestamp=AT, task_scheduled_id=4, result=1),
    SubOrchestrationInstanceFailed(timestamp=AT, task_scheduled_id=4, failure=FAILURE),
    ExecutionCompleted(timestamp=AT, result={"ok": True}),
    ExecutionFailed(timestamp=AT, failure=FAILURE),
    ExecutionTerminated(timestamp=AT, reason="operator"),
    ContinueAsNew(timestamp=AT, input=[1, 2], new_execution_id="e2"),
    ExecutionSuspended(timestamp=AT, reason="pause"),
    ExecutionResumed(timestamp=AT, reason="go on"),
    EntityOperationSignaled(timestamp=AT, target="@counter@k", operation="add", input=1),
    EntityOperationCalled(
        timestamp=AT,
        event_id=5,
        target="@counter@k",
        operation="get",
        parent=ParentInstance(instance_id="o1", execution_id="e1", task_scheduled_id=5, name="x"),
    ),
    EntityLockRequested(
        timestamp=AT, event_id=6, critical_section_id="s1", lock_set=["@a@1", "@a@2"]
    ),
    EntityUnlockSent(timestamp=AT, event_id=7, critical_section_id="s1", target="@a@1"),
    EntityOperationCompleted(timestamp=AT, task_scheduled_id=5, result=3),
    EntityOperationFailed(timestamp=AT, task_scheduled_id=5, failure=FAILURE),
    EntityLockGranted(timestamp=AT, task_scheduled_id=6, critical_section_id="s1"),
]


def test_the_samples_cover_every_history_event_type():
    union = typing.get_args(typing.get_args(HistoryEvent)[0])

    assert {type(event) for event in ONE_OF_EACH} == set(union)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: event.event_type)
def test_history_event_round_trips_through_json(event):
    decoded = HISTORY_EVENT_ADAPTER.validate_json(event.model_dump_json())

    assert type(decoded) is type(event)
    assert decoded == event


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda event: event.event_type)
def test_history_event_round_trips_through_json_mode_dump(event):
    assert HISTORY_EVENT_ADAPTER.validate_python(event.model_dump(mode="json")) == event


def test_history_events_are_frozen():
    event = TaskScheduled(timestamp=AT, event_id=0, name="say_hello")

    with pytest.raises(ValidationError):
        event.name = "other"


def test_unknown_event_type_and_unknown_fields_are_rejected():
    with pytest.raises(ValidationError):
        HISTORY_EVENT_ADAPTER.validate_python({"event_type": "TaskExploded", "timestamp": AT})
    with pytest.raises(ValidationError, match="surprise"):
        HISTORY_EVENT_ADAPTER.validate_python(
            {"event_type": "OrchestratorStarted", "timestamp": AT, "surprise": 1}
        )
