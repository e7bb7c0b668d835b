"""Suspend and resume: outcomes that arrive while suspended are kept and delivered on resume."""

from __future__ import annotations

from contracts import (
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    OrchestrationStatus,
    TaskCompleted,
)
from engine import OrchestrationExecutor
from tests.helpers.history import T0, HistoryBuilder


def two_steps_then_event(ctx):
    first = yield ctx.call_activity("first")
    second = yield ctx.call_activity("second", first)
    approval = yield ctx.wait_for_external_event("Approval")
    return [first, second, approval]


def started() -> tuple[OrchestrationExecutor, HistoryBuilder]:
    history = HistoryBuilder().start("two_steps").scheduled(0, "first")
    executor = OrchestrationExecutor(two_steps_then_event, "i1")
    executor.execute(history.events)
    return executor, history


def suspend(history: HistoryBuilder) -> list:
    history.episode().add(ExecutionSuspended(timestamp=history.now, reason="audit"))
    return history.events[-2:]


def resume(history: HistoryBuilder) -> list:
    history.episode().add(ExecutionResumed(timestamp=history.now, reason="done"))
    return history.events[-2:]


def test_suspended_instance_reports_suspended_and_runs_nothing():
    executor, history = started()
    assert executor.execute(suspend(history)).status is OrchestrationStatus.SUSPENDED

    decision = executor.execute(
        history.episode().completed(0, "a").raised("Approval", 1).events[-3:]
    )

    assert decision.status is OrchestrationStatus.SUSPENDED
    assert decision.new_events == []


def test_outcomes_kept_while_suspended_are_processed_in_order_on_resume():
    executor, history = started()
    executor.execute(suspend(history))
    executor.execute(history.episode().completed(0, "a").raised("Approval", "yes").events[-3:])

    resumed = executor.execute(resume(history))

    assert resumed.status is OrchestrationStatus.RUNNING
    assert [e.event_type for e in resumed.new_events] == ["TaskScheduled"]
    assert resumed.new_events[0].input == "a"
    done = executor.execute(history.episode().completed(1, "b").events[-2:])
    assert done.output == ["a", "b", "yes"]


def test_replay_with_suspension_in_history_reaches_the_same_state():
    history = HistoryBuilder().start("two_steps").scheduled(0, "first")
    suspend(history)
    history.episode().completed(0, "a")
    resume(history)
    history.scheduled(1, "second", "a")
    executor = OrchestrationExecutor(two_steps_then_event, "i1")
    executor.replay(history.events)

    decision = executor.execute(
        history.episode().completed(1, "b").raised("approval", 7).events[-3:]
    )

    assert decision.output == ["a", "b", 7]


def test_duplicate_suspend_resume_and_results_while_suspended_are_refused():
    executor, history = started()
    executor.execute(suspend(history))
    executor.execute(history.episode().completed(0, "a").events[-2:])

    assert not executor.accepts(ExecutionSuspended(timestamp=T0))
    assert not executor.accepts(TaskCompleted(timestamp=T0, task_scheduled_id=0, result="again"))
    executor.execute(resume(history))
    assert not executor.accepts(ExecutionResumed(timestamp=T0))


def test_terminate_ends_a_suspended_instance():
    executor, history = started()
    executor.execute(suspend(history))

    decision = executor.execute(
        history.episode().add(ExecutionTerminated(timestamp=history.now, reason="stop")).events[-2:]
    )

    assert decision.status is OrchestrationStatus.TERMINATED
