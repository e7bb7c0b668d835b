"""The rules of ``durable-ops check-invariants`` on histories built by hand: each shape the
orchestrator writes passes, each corruption is named by its rule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from contracts import (
    ContinueAsNew,
    EventRaised,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionRewound,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    TaskCompleted,
    TaskScheduled,
    TaskStarted,
)
from durable.store.events import RawStreamEvent
from engine import OrchestrationExecutor
from services.operations.check_invariants import check_instance
from services.operations.invariants import RULES, Violation
from tests.helpers.history import T0, HistoryBuilder
from workflows.samples import hello_cities

BOOM = FailureDetails(error_type="ValueError", message="boom")


def stream(*executions: tuple[str, list[HistoryEvent]], first_seq: int = 1) -> list[RawStreamEvent]:
    """Stored events: each execution's events, numbered on from ``first_seq``."""
    stored: list[RawStreamEvent] = []
    for execution_id, events in executions:
        for event in events:
            seq = first_seq + len(stored)
            stored.append(
                RawStreamEvent(seq, execution_id, event.event_type, event.model_dump_json())
            )
    return stored


def row_for(
    events: list[RawStreamEvent],
    status: OrchestrationStatus,
    *,
    execution_id: str | None = None,
    execution_start_seq: int | None = None,
    name: str = "flow",
    input: Any = None,
    output: Any = None,
    failure: FailureDetails | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """The row the orchestrator would have written for ``events`` (override what differs)."""
    last = events[-1] if events else None
    current = execution_id or (last.execution_id if last else "e1")
    return {
        "instance_id": "i1",
        "name": name,
        "execution_id": current,
        "status": status,
        "input": input,
        "output": output,
        "failure": failure.model_dump(mode="json") if failure else None,
        "parent_instance_id": None,
        "completed_at": T0 if status.is_terminal else None,
        "last_seq": last.seq if last else 0,
        "execution_start_seq": execution_start_seq
        or next((e.seq for e in events if e.execution_id == current), 1),
        **columns,
    }


def found(violations: list[Violation]) -> set[tuple[str, int | None]]:
    return {(v.rule, v.seq) for v in violations}


def chain() -> HistoryBuilder:
    """A chain of two activities that completed, as the orchestrator writes it."""
    h = HistoryBuilder().start("flow", input={"n": 1}).scheduled(0, "a", 1)
    h.episode().completed(0, 2).scheduled(1, "b", 2)
    return h.episode().completed(1, 3).execution_completed([2, 3])


def completed_chain() -> tuple[list[RawStreamEvent], dict[str, Any]]:
    events = stream(("e1", chain().events))
    row = row_for(events, OrchestrationStatus.COMPLETED, input={"n": 1}, output=[2, 3])
    return events, row


# --- shapes the orchestrator writes ----------------------------------------------------------


def test_a_completed_chain_is_well_formed() -> None:
    events, row = completed_chain()
    assert check_instance(row, events) == []


def test_every_rule_has_a_description() -> None:
    assert all(RULES.values())
    assert "row-matches-events" in RULES


def test_a_pending_instance_has_no_events_and_a_pending_row() -> None:
    assert check_instance(row_for([], OrchestrationStatus.PENDING), []) == []


def test_events_raised_and_a_suspension_before_the_start_are_normal() -> None:
    h = HistoryBuilder().episode().raised("Go", 1)
    h.add(ExecutionSuspended(timestamp=T0))
    h.episode().add(ExecutionResumed(timestamp=T0))
    h.episode().add(ExecutionStarted(timestamp=T0, name="flow", execution_id="e1"))
    events = stream(("e1", h.events))
    assert check_instance(row_for(events, OrchestrationStatus.RUNNING), events) == []


def test_a_termination_or_a_failure_before_the_start_ends_an_unstarted_execution() -> None:
    terminated = stream(("e1", HistoryBuilder().episode().terminated("stop").events))
    row = row_for(terminated, OrchestrationStatus.TERMINATED, output="stop")
    assert check_instance(row, terminated) == []

    failed = stream(
        ("e1", [OrchestratorStarted(timestamp=T0), ExecutionFailed(timestamp=T0, failure=BOOM)])
    )
    assert check_instance(row_for(failed, OrchestrationStatus.FAILED, failure=BOOM), failed) == []


def test_retries_are_new_calls_and_timers_fire_once() -> None:
    h = HistoryBuilder().start("flow").scheduled(0, "a")
    h.episode().failed(0).timer_created(1, T0)
    h.episode().timer_fired(1, T0).scheduled(2, "a")
    h.add(TaskScheduled(timestamp=T0, event_id=3, name="slow", timeout_seconds=5))
    h.episode().add(TaskStarted(timestamp=T0, task_scheduled_id=3)).timer_created(4, T0)
    h.episode().completed(2, "ok").completed(3, "late but first")
    events = stream(("e1", h.events))
    assert check_instance(row_for(events, OrchestrationStatus.RUNNING), events) == []


def test_a_sub_orchestration_is_created_then_answered() -> None:
    parent = ParentInstance(instance_id="p", execution_id="pe", task_scheduled_id=4, name="up")
    h = HistoryBuilder().episode()
    h.add(ExecutionStarted(timestamp=T0, name="flow", execution_id="e1", parent=parent))
    h.add(SubOrchestrationInstanceCreated(timestamp=T0, event_id=0, name="c", instance_id="c1"))
    h.episode().add(SubOrchestrationInstanceCompleted(timestamp=T0, task_scheduled_id=0))
    events = stream(("e1", h.events))
    row = row_for(events, OrchestrationStatus.RUNNING, parent_instance_id="p")
    assert check_instance(row, events) == []


def continued(keep_history: bool, carried: bool) -> list[RawStreamEvent]:
    first = HistoryBuilder().start("flow", input=0).raised("Item", "a")
    first.add(ContinueAsNew(timestamp=T0, input=1, new_execution_id="e2"))
    second = HistoryBuilder(T0 + timedelta(seconds=9))
    if carried:
        second.episode().raised("Item", "b")
    second.start("flow", input=1, execution_id="e2")
    if keep_history:
        return stream(("e1", first.events), ("e2", second.events))
    return stream(("e2", second.events), first_seq=len(first.events) + 1)


@pytest.mark.parametrize("keep_history", [True, False])
@pytest.mark.parametrize("carried", [True, False])
def test_continue_as_new_with_or_without_the_earlier_history_and_carried_events(
    keep_history: bool, carried: bool
) -> None:
    events = continued(keep_history, carried)
    assert check_instance(row_for(events, OrchestrationStatus.RUNNING, input=1), events) == []


def test_between_continue_as_new_and_the_next_start_the_row_says_continued_as_new() -> None:
    first = HistoryBuilder().start("flow", input=0)
    first.add(ContinueAsNew(timestamp=T0, input=1, new_execution_id="e2"))
    events = stream(("e1", first.events))
    row = row_for(
        events,
        OrchestrationStatus.CONTINUED_AS_NEW,
        execution_id="e2",
        execution_start_seq=len(events) + 1,
    )
    assert check_instance(row, events) == []
    # The earlier execution dropped: no event at all, the row counts on.
    dropped = row_for([], OrchestrationStatus.CONTINUED_AS_NEW, last_seq=3, execution_start_seq=4)
    assert check_instance(dropped, []) == []
    # Events carried over are the next execution's first, before its start.
    carried = HistoryBuilder(T0).episode().raised("Item", "b").events
    with_carried = stream(("e1", first.events), ("e2", carried))
    row = row_for(with_carried, OrchestrationStatus.CONTINUED_AS_NEW)
    assert check_instance(row, with_carried) == []


def rewound_history() -> list[RawStreamEvent]:
    failed = HistoryBuilder().start("flow").scheduled(0, "a").episode().completed(0, 1)
    failed.scheduled(1, "b").episode().failed(1)
    before_failure = list(failed.events)
    failed.add(ExecutionFailed(timestamp=T0, failure=BOOM))
    failed.episode().add(ExecutionRewound(timestamp=T0, reason="fixed", new_execution_id="e2"))
    copy = [
        e.model_copy(update={"execution_id": "e2"}) if isinstance(e, ExecutionStarted) else e
        for e in before_failure[:-1]  # without the final TaskFailed
    ]
    again = HistoryBuilder(T0 + timedelta(seconds=30)).episode().completed(1, 2)
    return stream(("e1", failed.events), ("e2", [*copy, *again.events]))


def test_a_rewind_ends_the_failed_execution_and_copies_it_without_its_final_failure() -> None:
    events = rewound_history()
    assert check_instance(row_for(events, OrchestrationStatus.RUNNING), events) == []


def test_suspend_and_resume_set_the_status() -> None:
    h = HistoryBuilder().start("flow").episode().add(ExecutionSuspended(timestamp=T0))
    events = stream(("e1", h.events))
    assert check_instance(row_for(events, OrchestrationStatus.SUSPENDED), events) == []
    running = check_instance(row_for(events, OrchestrationStatus.RUNNING), events)
    assert found(running) == {("row-matches-events", len(events))}
    assert "the events say Suspended" in running[0].reason


# --- corruptions, each named by its rule -----------------------------------------------------


def without(events: list[RawStreamEvent], seq: int) -> list[RawStreamEvent]:
    return [e for e in events if e.seq != seq]


def test_a_deleted_event_leaves_a_gap() -> None:
    events, row = completed_chain()
    violations = check_instance(row, without(events, 5))
    assert ("seq-contiguous", 6) in found(violations)
    assert "seq 5 missing" in violations[0].reason


def test_a_deleted_schedule_leaves_its_answer_pointing_at_nothing() -> None:
    events, row = completed_chain()  # seq 3: TaskScheduled #0, seq 5: its TaskCompleted
    assert found(check_instance(row, without(events, 3))) >= {
        ("seq-contiguous", 4),
        ("task-scheduled", 5),
    }


def test_a_deleted_first_event_breaks_the_start_and_the_row() -> None:
    events, row = completed_chain()
    assert found(check_instance(row, without(events, 1))) == {
        ("starts-with-start", 2),
        ("row-matches-events", 2),
    }


def test_a_deleted_last_event_leaves_the_row_ahead() -> None:
    events, row = completed_chain()
    violations = check_instance(row, events[:-1])
    assert {v.rule for v in violations} == {"row-matches-events"}
    reasons = " | ".join(v.reason for v in violations)
    assert "last_seq is 9, the events say 8" in reasons
    assert "status is Completed, the events say Running" in reasons


def duplicate(events: list[RawStreamEvent], seq: int, before_seq: int) -> list[RawStreamEvent]:
    """``events`` with a copy of the event at ``seq`` inserted before ``before_seq``."""
    copy = next(e for e in events if e.seq == seq)
    shifted = [e if e.seq < before_seq else RawStreamEvent(e.seq + 1, *_rest(e)) for e in events]
    at = RawStreamEvent(before_seq, copy.execution_id, copy.event_type, copy.payload)
    return sorted([*shifted, at], key=lambda e: e.seq)


def _rest(e: RawStreamEvent) -> tuple[str, str, str]:
    return e.execution_id, e.event_type, e.payload


def test_a_duplicated_completion_is_an_answer_given_twice() -> None:
    events, row = completed_chain()
    doubled = duplicate(events, 5, 7)
    row = {**row, "last_seq": row["last_seq"] + 1}
    violations = check_instance(row, doubled)
    assert found(violations) == {("task-once", 7)}
    assert "answered already at seq 5" in violations[0].reason


def test_a_changed_status_or_output_disagrees_with_the_events() -> None:
    events, row = completed_chain()
    for column, value in [("status", "Running"), ("output", [2]), ("failure", {"x": 1})]:
        violations = check_instance({**row, column: value}, events)
        assert [(v.rule, v.reason.split(" ")[0]) for v in violations] == [
            ("row-matches-events", column)
        ]


def test_an_event_after_the_end_is_named() -> None:
    events, row = completed_chain()
    late = EventRaised(timestamp=T0, name="Late")
    extra = RawStreamEvent(len(events) + 1, "e1", late.event_type, late.model_dump_json())
    row = {**row, "last_seq": extra.seq}
    violations = check_instance(row, [*events, extra])
    assert found(violations) == {("nothing-after-end", extra.seq)}
    assert (
        violations[0].reason
        == "EventRaised after the execution ended with ExecutionCompleted at seq 9"
    )


def test_a_timer_fired_twice_or_never_created() -> None:
    h = HistoryBuilder().start("flow").timer_created(0, T0).episode().timer_fired(0, T0)
    h.episode().timer_fired(0, T0).timer_fired(5, T0)
    events = stream(("e1", h.events))
    assert found(check_instance(row_for(events, OrchestrationStatus.RUNNING), events)) == {
        ("timer-once", 7),
        ("timer-created", 8),
    }


def test_an_answer_of_the_wrong_kind_and_a_reused_action_id() -> None:
    h = HistoryBuilder().start("flow").scheduled(0, "a").timer_created(0, T0)
    h.episode().add(SubOrchestrationInstanceCompleted(timestamp=T0, task_scheduled_id=0))
    events = stream(("e1", h.events))
    violations = check_instance(row_for(events, OrchestrationStatus.RUNNING), events)
    assert found(violations) == {("action-id-unique", 4), ("child-created", 6)}
    assert violations[1].reason.endswith("(#0 is a call of another kind: activity)")


def test_work_before_the_start_and_a_second_start() -> None:
    h = HistoryBuilder().episode().scheduled(0, "a")
    h.start("flow").start("flow")
    events = stream(("e1", h.events))
    assert found(check_instance(row_for(events, OrchestrationStatus.RUNNING), events)) == {
        ("starts-with-start", 2),
        ("starts-with-start", 6),
    }


def test_a_start_naming_another_execution() -> None:
    events = stream(("e1", HistoryBuilder().start("flow", execution_id="other").events))
    assert found(check_instance(row_for(events, OrchestrationStatus.RUNNING), events)) == {
        ("starts-with-start", 2)
    }


def test_an_execution_nobody_continued_as() -> None:
    events = stream(
        ("e1", chain().events), ("e2", HistoryBuilder().start("flow", execution_id="e2").events)
    )
    violations = check_instance(row_for(events, OrchestrationStatus.RUNNING), events)
    assert found(violations) == {("executions-chained", 10)}


def test_interleaved_executions() -> None:
    events = continued(keep_history=True, carried=False)
    moved = [
        RawStreamEvent(e.seq, "e1" if e.seq == len(events) else e.execution_id, *_rest(e)[1:])
        for e in events
    ]
    rules = {v.rule for v in check_instance(row_for(events, OrchestrationStatus.RUNNING), moved)}
    assert "executions-chained" in rules


def test_a_rewind_of_an_execution_that_did_not_fail() -> None:
    h = chain().episode().add(ExecutionRewound(timestamp=T0, new_execution_id="e2"))
    events = stream(("e1", h.events))
    violations = check_instance(
        row_for(events, OrchestrationStatus.COMPLETED, input={"n": 1}, output=[2, 3]), events
    )
    assert found(violations) == {("nothing-after-end", 10), ("rewind-after-failure", 11)}
    running = stream(("e1", HistoryBuilder().start("flow").add(h.events[-1]).events))
    assert ("rewind-after-failure", 3) in found(
        check_instance(row_for(running, OrchestrationStatus.RUNNING), running)
    )


def test_a_resume_without_a_suspension() -> None:
    h = HistoryBuilder().start("flow").episode().add(ExecutionResumed(timestamp=T0))
    events = stream(("e1", h.events))
    assert found(check_instance(row_for(events, OrchestrationStatus.RUNNING), events)) == {
        ("suspend-resume", 4)
    }


def test_an_unreadable_payload_is_named_and_the_rest_still_checked() -> None:
    events, row = completed_chain()
    broken = [
        RawStreamEvent(e.seq, e.execution_id, e.event_type, '{"event_type": "Nope"}')
        if e.seq == 4
        else e
        for e in events
    ]
    violations = check_instance(row, broken)
    assert found(violations) == {("event-readable", 4)}
    relabelled = [
        RawStreamEvent(e.seq, e.execution_id, "TaskFailed", e.payload) if e.seq == 5 else e
        for e in events
    ]
    assert found(check_instance(row, relabelled)) == {("event-readable", 5)}


def test_the_row_of_a_continued_instance_that_did_not_move_on() -> None:
    first = HistoryBuilder().start("flow", input=0)
    first.add(ContinueAsNew(timestamp=T0, input=1, new_execution_id="e2"))
    events = stream(("e1", first.events))
    row = row_for(events, OrchestrationStatus.CONTINUED_AS_NEW, input=0)
    violations = check_instance(row, events)
    assert [v.rule for v in violations] == ["row-matches-events"]
    assert "continued as e2" in violations[0].reason


def test_numbers_compare_by_value_between_jsonb_and_json() -> None:
    events = stream(("e1", HistoryBuilder().start("flow").execution_completed(1e100).events))
    row = row_for(events, OrchestrationStatus.COMPLETED, output=10**100)
    assert check_instance(row, events) == []
    assert check_instance({**row, "output": True}, events) != []


# --- what the checker found in real histories ------------------------------------------------


def test_a_termination_in_the_episode_of_a_result_records_nothing_after_it() -> None:
    past = HistoryBuilder().start("hello_cities").scheduled(0, "say_hello", "Tokyo")
    executor = OrchestrationExecutor(hello_cities, "i1")
    executor.replay(past.events)
    now = past.now + timedelta(seconds=1)
    episode: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=now),
        TaskCompleted(timestamp=now, task_scheduled_id=0, result="Hello Tokyo!"),
        ExecutionTerminated(timestamp=now, reason="stop"),
    ]
    decision = executor.execute(episode)
    events = stream(("e1", [*past.events, *episode, *decision.new_events]))
    row = row_for(events, OrchestrationStatus.TERMINATED, name="hello_cities", output="stop")

    assert check_instance(row, events) == []
