"""An instance's history as Durable Functions' status query shows it (``historyEvents``).

Durable Functions does not return its raw history there; it rewrites it for people:

- only the current execution is shown (what came before a ``ContinueAsNew`` is left out);
- ``OrchestratorStarted`` events are dropped;
- a ``TaskScheduled`` (``SubOrchestrationInstanceCreated``) that has its answer is dropped and
  its name and time move onto the answer as ``FunctionName`` and ``ScheduledTime``;
- inputs are left out (of ``ExecutionStarted``, ``TaskScheduled``, ``EventRaised`` and the
  termination reason), and results only appear with ``showHistoryOutput=true``;
- fields are PascalCase as the Durable Task Framework serializes them (``EventType``,
  ``Timestamp``, ``FireAt``, ``FailureDetails`` …); a failed execution is an
  ``ExecutionCompleted`` with ``OrchestrationStatus: "Failed"``, as the framework records it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from pydantic import JsonValue

from contracts import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable.client.payloads import format_timestamp

View: TypeAlias = dict[str, JsonValue]
_Scheduling: TypeAlias = TaskScheduled | SubOrchestrationInstanceCreated
_Answer: TypeAlias = (
    TaskCompleted | TaskFailed | SubOrchestrationInstanceCompleted | SubOrchestrationInstanceFailed
)


def history_events(
    events: Sequence[HistoryEvent], *, show_output: bool = False, execution_id: str | None = None
) -> list[View]:
    """Durable Functions' ``historyEvents`` for an instance's stored events (oldest first).

    Args:
        events: the instance's events, every execution.
        show_output: include results (``showHistoryOutput``).
        execution_id: the execution to show; the latest one when not given.
    """
    current = _current_execution(events, execution_id)
    scheduling = {
        _key(type(event), event.event_id): event
        for event in current
        if isinstance(event, TaskScheduled | SubOrchestrationInstanceCreated)
    }
    answered = {
        _key(_scheduling_kind(event), event.task_scheduled_id)
        for event in current
        if isinstance(event, _Answer)
    }
    views: list[View] = []
    for event in current:
        if isinstance(event, OrchestratorStarted):
            continue
        if isinstance(event, _Scheduling) and _key(type(event), event.event_id) in answered:
            continue
        origin = None
        if isinstance(event, _Answer):
            origin = scheduling.get(_key(_scheduling_kind(event), event.task_scheduled_id))
        views.append(_view(event, _Context(show_output, origin)))
    return views


@dataclass(frozen=True)
class _Context:
    show_output: bool
    origin: _Scheduling | None


def _current_execution(
    events: Sequence[HistoryEvent], execution_id: str | None
) -> Sequence[HistoryEvent]:
    starts = [
        index
        for index, event in enumerate(events)
        if isinstance(event, ExecutionStarted)
        and (execution_id is None or event.execution_id == execution_id)
    ]
    return events[starts[-1] :] if starts else events


def _key(kind: type[_Scheduling], event_id: int) -> tuple[str, int]:
    return kind.__name__, event_id


def _scheduling_kind(answer: _Answer) -> type[_Scheduling]:
    if isinstance(answer, TaskCompleted | TaskFailed):
        return TaskScheduled
    return SubOrchestrationInstanceCreated


def _view(event: HistoryEvent, context: _Context) -> View:
    view: View = {"EventType": event.event_type}
    match event:
        case ExecutionStarted():
            view["FunctionName"] = event.name
            if event.scheduled_start_at is not None:
                view["ScheduledStartTime"] = format_timestamp(event.scheduled_start_at)
        case TaskScheduled():
            view["Name"] = event.name
        case SubOrchestrationInstanceCreated():
            view["Name"] = event.name
            view["InstanceId"] = event.instance_id
        case TaskCompleted() | SubOrchestrationInstanceCompleted():
            _add_origin(view, context.origin)
            if context.show_output:
                view["Result"] = event.result
        case TaskFailed() | SubOrchestrationInstanceFailed():
            _add_origin(view, context.origin)
            _add_failure(view, event.failure)
        case TimerCreated() | TimerFired():
            view["FireAt"] = format_timestamp(event.fire_at)
        case EventRaised():
            view["Name"] = event.name
        case EventSent():
            view["InstanceId"] = event.instance_id
            view["Name"] = event.name
            view["Input"] = event.input
        case ExecutionCompleted():
            view["OrchestrationStatus"] = OrchestrationStatus.COMPLETED.value
            if context.show_output:
                view["Result"] = event.result
        case ExecutionFailed():
            view["EventType"] = "ExecutionCompleted"
            view["OrchestrationStatus"] = OrchestrationStatus.FAILED.value
            if context.show_output:
                view["Result"] = event.failure.message
            view["FailureDetails"] = _failure_details(event.failure)
        case ContinueAsNew():
            view["OrchestrationStatus"] = OrchestrationStatus.CONTINUED_AS_NEW.value
            if context.show_output:
                view["Result"] = event.input
        case ExecutionSuspended() | ExecutionResumed():
            view["Reason"] = event.reason
        case ExecutionTerminated() | OrchestratorStarted():
            pass
    view["Timestamp"] = format_timestamp(event.timestamp)
    return view


def _add_origin(view: View, origin: _Scheduling | None) -> None:
    if origin is not None:
        view["FunctionName"] = origin.name
        view["ScheduledTime"] = format_timestamp(origin.timestamp)


def _add_failure(view: View, failure: FailureDetails) -> None:
    view["Reason"] = failure.message
    view["Details"] = failure.stack_trace
    view["FailureDetails"] = _failure_details(failure)


def _failure_details(failure: FailureDetails) -> View:
    inner = failure.inner_failure
    return {
        "ErrorType": failure.error_type,
        "ErrorMessage": failure.message,
        "StackTrace": failure.stack_trace,
        "InnerFailure": _failure_details(inner) if inner is not None else None,
        "IsNonRetriable": failure.is_non_retriable,
    }
