"""Activity time-outs: the clock starts when a worker starts the task."""

from __future__ import annotations

from datetime import timedelta

from contracts import TaskStarted, TimerCreated
from durable.errors import ActivityTimeoutError, TaskFailedError
from durable.retry import RetryOptions
from engine import OrchestrationExecutor
from tests.helpers.history import HistoryBuilder


def guarded(ctx):
    try:
        return (yield ctx.call_activity("slow", 1, timeout=timedelta(seconds=30)))
    except ActivityTimeoutError as error:
        return {"timed_out": error.details.error_type}


def scheduled() -> tuple[OrchestrationExecutor, HistoryBuilder]:
    history = HistoryBuilder().start("guarded")
    executor = OrchestrationExecutor(guarded, "a-1")
    decision = executor.execute(history.events)
    assert decision.new_events[0].timeout_seconds == 30.0
    history.add(decision.new_events[0])
    return executor, history


def started(executor: OrchestrationExecutor, history: HistoryBuilder) -> TimerCreated:
    history.episode(5)
    start = TaskStarted(timestamp=history.now, task_scheduled_id=0)
    assert executor.accepts(start)
    history.add(start)
    decision = executor.execute(history.events[-2:])
    (timer,) = decision.new_events
    assert isinstance(timer, TimerCreated)
    history.add(timer)
    return timer


def test_the_start_starts_a_timer_of_the_time_out():
    executor, history = scheduled()

    timer = started(executor, history)

    assert timer.fire_at == history.now + timedelta(seconds=30)
    assert not executor.accepts(TaskStarted(timestamp=history.now, task_scheduled_id=0))


def test_a_result_in_time_cancels_the_timer():
    executor, history = scheduled()
    started(executor, history)

    decision = executor.execute(history.episode().completed(0, "done").events[-2:])

    assert decision.output == "done"
    assert decision.cancelled_timers == [1]


def test_the_timer_fails_the_task_and_a_late_result_is_ignored():
    executor, history = scheduled()
    timer = started(executor, history)
    history.episode(30).timer_fired(1, timer.fire_at)

    decision = executor.execute(history.events[-2:])
    late = history.episode().completed(0, "too late").events[-1]

    assert decision.output == {"timed_out": "ActivityTimeoutError"}
    assert not executor.accepts(late)


def test_a_time_out_is_retried_by_a_retry_policy():
    def retried(ctx):
        policy = RetryOptions(1000, 2)
        try:
            return (yield ctx.call_activity_with_retry("slow", policy, 1, timeout=10))
        except TaskFailedError as error:
            return error.details.error_type

    history = HistoryBuilder().start("retried")
    executor = OrchestrationExecutor(retried, "a-2")
    history.add(executor.execute(history.events).new_events[0])
    history.episode().add(TaskStarted(timestamp=history.now, task_scheduled_id=0))
    history.add(executor.execute(history.events[-2:]).new_events[0])
    history.episode(10).timer_fired(1, history.now)

    decision = executor.execute(history.events[-2:])

    assert [e.event_type for e in decision.new_events] == ["TimerCreated"]
