"""Durable Functions' ``historyEvents`` view of a stored history."""

from __future__ import annotations

from datetime import timedelta

from contracts import (
    ContinueAsNew,
    EventSent,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    FailureDetails,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
)
from services.client.history_view import history_events
from tests.helpers.history import T0, HistoryBuilder


def hello_two_cities() -> HistoryBuilder:
    history = HistoryBuilder()
    history.start("hello_cities", input=["Oslo", "Lima"])
    history.scheduled(0, "say_hello", "Oslo")
    history.episode(0.5).completed(0, "Hello Oslo!").scheduled(1, "say_hello", "Lima")
    history.episode(0.25).completed(1, "Hello Lima!")
    return history.execution_completed(["Hello Oslo!", "Hello Lima!"])


def test_answered_schedules_fold_into_their_answers_and_episodes_disappear() -> None:
    view = history_events(hello_two_cities().events)

    assert view == [
        {
            "EventType": "ExecutionStarted",
            "FunctionName": "hello_cities",
            "Timestamp": "2026-01-01T09:00:00Z",
        },
        {
            "EventType": "TaskCompleted",
            "FunctionName": "say_hello",
            "ScheduledTime": "2026-01-01T09:00:00Z",
            "Timestamp": "2026-01-01T09:00:00.5Z",
        },
        {
            "EventType": "TaskCompleted",
            "FunctionName": "say_hello",
            "ScheduledTime": "2026-01-01T09:00:00.5Z",
            "Timestamp": "2026-01-01T09:00:00.75Z",
        },
        {
            "EventType": "ExecutionCompleted",
            "OrchestrationStatus": "Completed",
            "Timestamp": "2026-01-01T09:00:00.75Z",
        },
    ]


def test_results_appear_only_with_show_output() -> None:
    view = history_events(hello_two_cities().events, show_output=True)

    assert [event.get("Result") for event in view] == [
        None,
        "Hello Oslo!",
        "Hello Lima!",
        ["Hello Oslo!", "Hello Lima!"],
    ]
    assert "Result" not in view[0]


def test_a_task_still_running_shows_as_scheduled_without_its_input() -> None:
    history = HistoryBuilder().start("chain").scheduled(0, "slow", {"secret": 1})

    view = history_events(history.events, show_output=True)

    assert view[1] == {
        "EventType": "TaskScheduled",
        "Name": "slow",
        "Timestamp": "2026-01-01T09:00:00Z",
    }


def test_a_failed_task_carries_reason_details_and_failure_details() -> None:
    history = HistoryBuilder().start("chain").scheduled(0, "charge")
    history.episode().failed(0, "RuntimeError", "card declined")

    failed = history_events(history.events)[1]

    assert failed["EventType"] == "TaskFailed"
    assert (failed["FunctionName"], failed["Reason"]) == ("charge", "card declined")
    assert failed["FailureDetails"] == {
        "ErrorType": "RuntimeError",
        "ErrorMessage": "card declined",
        "StackTrace": None,
        "InnerFailure": None,
        "IsNonRetriable": False,
    }


def test_timers_and_events_show_names_and_fire_times_but_not_inputs() -> None:
    fire_at = T0 + timedelta(hours=1)
    history = HistoryBuilder().start("approval").timer_created(0, fire_at)
    history.episode().raised("Approval", {"approved": True})
    history.episode().timer_fired(0, fire_at).terminated("stop")

    view = history_events(history.events, show_output=True)

    assert view[1] == {
        "EventType": "TimerCreated",
        "FireAt": "2026-01-01T10:00:00Z",
        "Timestamp": "2026-01-01T09:00:00Z",
    }
    assert view[2] == {
        "EventType": "EventRaised",
        "Name": "Approval",
        "Timestamp": "2026-01-01T09:00:01Z",
    }
    assert view[3]["EventType"] == "TimerFired"
    assert view[3]["FireAt"] == "2026-01-01T10:00:00Z"
    assert view[4] == {"EventType": "ExecutionTerminated", "Timestamp": "2026-01-01T09:00:02Z"}


def test_a_failed_execution_is_an_execution_completed_with_status_failed() -> None:
    history = HistoryBuilder().start("chain")
    history.add(
        ExecutionFailed(
            timestamp=history.now,
            failure=FailureDetails(error_type="ValueError", message="bad input", stack_trace="tb"),
        )
    )

    last = history_events(history.events, show_output=True)[-1]

    assert last["EventType"] == "ExecutionCompleted"
    assert last["OrchestrationStatus"] == "Failed"
    assert last["Result"] == "bad input"
    assert last["FailureDetails"]["StackTrace"] == "tb"  # type: ignore[index]


def test_only_the_current_execution_is_shown() -> None:
    history = HistoryBuilder().start("counter", input=0, execution_id="e1")
    history.add(ContinueAsNew(timestamp=history.now, input=1, new_execution_id="e2"))
    history.start("counter", input=1, execution_id="e2")

    latest = history_events(history.events)
    first = history_events(history.events, execution_id="e1", show_output=True)

    assert [e["EventType"] for e in latest] == ["ExecutionStarted"]
    assert [e["EventType"] for e in first] == [
        "ExecutionStarted",
        "ContinueAsNew",
        "ExecutionStarted",
    ]
    assert first[1] == {
        "EventType": "ContinueAsNew",
        "OrchestrationStatus": "ContinuedAsNew",
        "Result": 1,
        "Timestamp": "2026-01-01T09:00:00Z",
    }


def test_sub_orchestrations_fold_like_tasks_and_sent_events_keep_their_input() -> None:
    history = HistoryBuilder().start("parent")
    history.add(
        SubOrchestrationInstanceCreated(
            timestamp=history.now, event_id=0, name="child", instance_id="c1", input=5
        )
    )
    history.add(
        EventSent(timestamp=history.now, event_id=1, instance_id="other", name="Ping", input=2)
    )
    history.episode().add(
        SubOrchestrationInstanceCompleted(timestamp=history.now, task_scheduled_id=0, result=10)
    )

    view = history_events(history.events, show_output=True)

    assert view[1] == {
        "EventType": "EventSent",
        "InstanceId": "other",
        "Name": "Ping",
        "Input": 2,
        "Timestamp": "2026-01-01T09:00:00Z",
    }
    assert view[2]["EventType"] == "SubOrchestrationInstanceCompleted"
    assert (view[2]["FunctionName"], view[2]["Result"]) == ("child", 10)


def test_suspension_shows_its_reason_and_a_scheduled_start_its_time() -> None:
    history = HistoryBuilder()
    history.add(
        ExecutionStarted(
            timestamp=T0,
            name="later",
            execution_id="e1",
            scheduled_start_at=T0 + timedelta(minutes=5),
        )
    )
    history.add(ExecutionSuspended(timestamp=T0, reason="audit"))
    history.add(ExecutionResumed(timestamp=T0, reason=None))

    view = history_events(history.events)

    assert view[0]["ScheduledStartTime"] == "2026-01-01T09:05:00Z"
    assert view[1] == {
        "EventType": "ExecutionSuspended",
        "Reason": "audit",
        "Timestamp": "2026-01-01T09:00:00Z",
    }
    assert view[2]["Reason"] is None
