"""Which inbound events an execution still accepts (duplicates are dropped), why it refuses
the others (an answer to a call never made is told apart), and termination."""

from __future__ import annotations

from datetime import timedelta

from contracts import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    OrchestrationStatus,
    SubOrchestrationInstanceCompleted,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
    TimerFired,
)
from contracts.failure import FailureDetails
from engine import OrchestrationExecutor
from tests.helpers.history import T0, HistoryBuilder

LATER = T0 + timedelta(minutes=1)


def two_steps(ctx):
    first = yield ctx.call_activity("one")
    second = yield ctx.call_activity("two")
    return [first, second]


def executor_after(history: HistoryBuilder, orchestrator=two_steps) -> OrchestrationExecutor:
    executor = OrchestrationExecutor(orchestrator, "i1")
    executor.replay(history.events)
    return executor


def first_step_done() -> HistoryBuilder:
    history = HistoryBuilder().start("steps").scheduled(0, "one")
    return history.episode().completed(0, "1").scheduled(1, "two")


def test_a_new_execution_accepts_its_start():
    executor = OrchestrationExecutor(two_steps, "i1")

    assert executor.accepts(ExecutionStarted(timestamp=T0, name="steps", execution_id="e1"))


def test_second_execution_started_is_not_accepted():
    executor = executor_after(HistoryBuilder().start("steps"))

    assert not executor.accepts(ExecutionStarted(timestamp=LATER, name="steps", execution_id="e1"))


def test_result_for_an_open_task_is_accepted():
    executor = executor_after(first_step_done())

    assert executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=1, result="2"))


def test_result_for_an_already_completed_task_is_not_accepted():
    executor = executor_after(first_step_done())
    failure = FailureDetails(error_type="ValueError", message="late")

    assert not executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=0, result="1"))
    assert not executor.accepts(TaskFailed(timestamp=LATER, task_scheduled_id=0, failure=failure))


def test_result_for_a_task_never_scheduled_is_not_accepted():
    executor = executor_after(first_step_done())

    assert not executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=9))


def test_activity_result_carrying_a_timer_id_is_not_accepted():
    def sleeps(ctx):
        yield ctx.create_timer(timedelta(hours=1))

    executor = executor_after(
        HistoryBuilder().start("sleep").timer_created(0, T0 + timedelta(hours=1)), sleeps
    )

    assert not executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=0))


def test_a_repeated_result_is_refused_as_normal_not_as_never_scheduled():
    executor = executor_after(first_step_done())

    refusal = executor.refusal(TaskCompleted(timestamp=LATER, task_scheduled_id=0, result="1"))

    assert refusal is not None
    assert not refusal.never_scheduled
    assert "activity #0 is no longer awaited" in refusal.reason


def test_a_result_for_a_task_never_scheduled_is_refused_as_never_scheduled():
    executor = executor_after(first_step_done())
    failure = FailureDetails(error_type="ValueError", message="from nowhere")

    for event in (
        TaskCompleted(timestamp=LATER, task_scheduled_id=9),
        TaskFailed(timestamp=LATER, task_scheduled_id=9, failure=failure),
        TaskStarted(timestamp=LATER, task_scheduled_id=9),
    ):
        refusal = executor.refusal(event)
        assert refusal is not None
        assert refusal.never_scheduled
        assert refusal.reason == "no activity #9 was scheduled"


def test_answers_of_the_wrong_kind_are_refused_as_never_scheduled():
    def sleeps(ctx):
        yield ctx.create_timer(timedelta(hours=1))

    executor = executor_after(
        HistoryBuilder().start("sleep").timer_created(0, T0 + timedelta(hours=1)), sleeps
    )

    activity = executor.refusal(TaskCompleted(timestamp=LATER, task_scheduled_id=0))
    child = executor.refusal(
        SubOrchestrationInstanceCompleted(timestamp=LATER, task_scheduled_id=0)
    )
    assert activity is not None
    assert activity.never_scheduled
    assert child is not None
    assert child.never_scheduled
    assert child.reason == "no sub-orchestration #0 was scheduled"
    assert executor.refusal(TimerFired(timestamp=LATER, timer_id=0, fire_at=LATER)) is None


def test_a_fire_for_a_timer_never_created_is_refused_as_never_scheduled():
    executor = executor_after(first_step_done())

    refusal = executor.refusal(TimerFired(timestamp=LATER, timer_id=1, fire_at=LATER))

    assert refusal is not None
    assert refusal.never_scheduled
    assert refusal.reason == "no timer #1 was scheduled"


def test_a_fire_for_a_cancelled_timer_is_refused_as_normal():
    def races(ctx):
        timer = ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))
        winner = yield ctx.task_any([timer, ctx.wait_for_external_event("go")])
        if winner is not timer:
            timer.cancel()
        yield ctx.call_activity("after")

    history = HistoryBuilder().start("races").timer_created(0, T0 + timedelta(hours=1))
    executor = executor_after(history.episode().raised("go").scheduled(1, "after"), races)

    refusal = executor.refusal(TimerFired(timestamp=LATER, timer_id=0, fire_at=LATER))

    assert refusal is not None
    assert not refusal.never_scheduled


def test_a_result_for_a_task_asked_for_in_this_very_episode_is_never_scheduled():
    executor = executor_after(first_step_done(), three_steps)
    executor.apply_new(TaskCompleted(timestamp=LATER, task_scheduled_id=1, result="2"))

    refusal = executor.refusal(TaskCompleted(timestamp=LATER, task_scheduled_id=2))

    assert refusal is not None
    assert refusal.never_scheduled
    assert refusal.reason == "activity #2 is not scheduled yet"


def three_steps(ctx):
    results = []
    for name in ("one", "two", "three"):
        results.append((yield ctx.call_activity(name)))
    return results


def test_nothing_is_accepted_after_the_execution_finished():
    history = first_step_done().episode().completed(1, "2").execution_completed(["1", "2"])
    executor = executor_after(history)

    assert executor.is_finished
    assert not executor.accepts(EventRaised(timestamp=LATER, name="late"))
    assert not executor.accepts(ExecutionTerminated(timestamp=LATER))
    assert not executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=1))
    refusal = executor.refusal(TaskCompleted(timestamp=LATER, task_scheduled_id=9))
    assert refusal is not None
    assert not refusal.never_scheduled  # the end explains it


def test_terminating_a_running_execution_ends_it_as_terminated():
    executor = executor_after(first_step_done())
    terminate = ExecutionTerminated(timestamp=LATER, reason="operator said so")

    accepted = executor.accepts(terminate)
    decision = executor.execute([terminate])

    assert accepted
    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.output == "operator said so"
    assert decision.new_events == []
    assert not executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=1, result="2"))


def test_result_arriving_with_the_termination_does_not_resume_the_code():
    executor = executor_after(first_step_done())

    decision = executor.execute(
        [ExecutionTerminated(timestamp=LATER), TaskCompleted(timestamp=LATER, task_scheduled_id=1)]
    )

    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.new_events == []


def test_a_termination_in_the_episode_of_the_start_schedules_nothing():
    # The code runs on its start and asks for its first activity; the termination that came
    # in the same batch ends the execution before anything is dispatched.
    executor = OrchestrationExecutor(two_steps, "i1")

    decision = executor.execute(
        [
            ExecutionStarted(timestamp=T0, name="steps", execution_id="e1"),
            ExecutionTerminated(timestamp=T0, reason="stop"),
        ]
    )

    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.new_events == []


def test_a_termination_in_the_episode_of_a_result_schedules_nothing_after_it():
    executor = OrchestrationExecutor(two_steps, "i1")
    executor.replay(HistoryBuilder().start("steps").scheduled(0, "one").events)

    decision = executor.execute(
        [
            TaskCompleted(timestamp=LATER, task_scheduled_id=0, result="1"),
            ExecutionTerminated(timestamp=LATER, reason="stop"),
        ]
    )

    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.new_events == []


def test_an_action_recorded_after_a_termination_by_an_earlier_version_replays():
    # Before the fix, such a step recorded the action after the termination; replaying that
    # history keeps the instance terminated.
    history = HistoryBuilder().start("steps").terminated("stop").scheduled(0, "one")

    decision = executor_after(history).execute([])

    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.new_events == []


def test_replaying_a_terminated_history_stays_terminated():
    history = first_step_done().episode().terminated("stop")

    decision = executor_after(history).execute([])

    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.new_events == []
