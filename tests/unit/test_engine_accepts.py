"""Which inbound events an execution still accepts (duplicates are dropped), and termination."""

from __future__ import annotations

from datetime import timedelta

from contracts import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    OrchestrationStatus,
    TaskCompleted,
    TaskFailed,
)
from contracts.failure import FailureDetails
from services.orchestrator.engine import OrchestrationExecutor
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


def test_nothing_is_accepted_after_the_execution_finished():
    history = first_step_done().episode().completed(1, "2").execution_completed(["1", "2"])
    executor = executor_after(history)

    assert executor.is_finished
    assert not executor.accepts(EventRaised(timestamp=LATER, name="late"))
    assert not executor.accepts(ExecutionTerminated(timestamp=LATER))
    assert not executor.accepts(TaskCompleted(timestamp=LATER, task_scheduled_id=1))


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


def test_replaying_a_terminated_history_stays_terminated():
    history = first_step_done().episode().terminated("stop")

    decision = executor_after(history).execute([])

    assert decision.status is OrchestrationStatus.TERMINATED
    assert decision.new_events == []
