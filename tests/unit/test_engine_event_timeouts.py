"""Waiting for an event with a deadline, and cancelling timers."""

from __future__ import annotations

from datetime import timedelta

from contracts import OrchestrationStatus, TimerCreated, TimerFired
from durable.errors import EventTimeoutError
from engine import OrchestrationExecutor
from tests.helpers.history import T0, HistoryBuilder

DEADLINE = T0 + timedelta(hours=1)


def waits_an_hour(ctx):
    try:
        answer = yield ctx.wait_for_external_event("Approval", timeout=timedelta(hours=1))
    except EventTimeoutError as error:
        late = yield ctx.wait_for_external_event("Approval")
        return {"timed_out": error.name, "late": late}
    return {"answer": answer}


def started() -> tuple[OrchestrationExecutor, HistoryBuilder]:
    history = HistoryBuilder().start("waits")
    executor = OrchestrationExecutor(waits_an_hour, "i1")
    decision = executor.execute(history.events)
    assert decision.new_events == [TimerCreated(event_id=0, timestamp=T0, fire_at=DEADLINE)]
    return executor, history


def test_event_before_the_deadline_wins_and_cancels_the_timer():
    executor, history = started()

    decision = executor.execute(history.episode(60).raised("approval", "yes").events[-2:])

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == {"answer": "yes"}
    assert decision.cancelled_timers == [0]
    assert not executor.accepts(TimerFired(timestamp=DEADLINE, timer_id=0, fire_at=DEADLINE))


def test_deadline_raises_a_catchable_timeout_and_a_later_event_goes_to_the_next_wait():
    executor, history = started()

    timed_out = executor.execute(history.episode(3600).timer_fired(0, DEADLINE).events[-2:])
    assert timed_out.status is OrchestrationStatus.RUNNING
    assert timed_out.new_events == []

    answered = executor.execute(history.episode(60).raised("Approval", "late yes").events[-2:])
    assert answered.output == {"timed_out": "Approval", "late": "late yes"}


def test_event_buffered_before_the_wait_completes_it_without_a_timer():
    def buffered(ctx):
        yield ctx.call_activity("prepare")
        return (yield ctx.wait_for_external_event("Approval", timeout=60))

    history = HistoryBuilder().start("buffered").scheduled(0, "prepare")
    history.episode().raised("Approval", "early").completed(0)
    executor = OrchestrationExecutor(buffered, "i1")
    past, new = history.split()
    executor.replay(past)

    decision = executor.execute(new)

    assert decision.output == "early"
    assert not any(isinstance(e, TimerCreated) for e in decision.new_events)


def test_cancelling_a_timer_reports_it_once_and_refuses_its_fire():
    def cancels(ctx):
        timer = ctx.create_timer(timedelta(days=30))
        yield ctx.call_activity("work")
        timer.cancel()
        timer.cancel()
        return "done"

    history = HistoryBuilder().start("cancels")
    executor = OrchestrationExecutor(cancels, "i1")
    executor.execute(history.events)
    decision = executor.execute(history.episode().completed(1, None).events[-2:])

    assert decision.cancelled_timers == [0]
    assert decision.status is OrchestrationStatus.COMPLETED


def test_cancellations_seen_during_replay_are_not_reported_again():
    def cancels_then_waits(ctx):
        timer = ctx.create_timer(timedelta(days=30))
        yield ctx.call_activity("work")
        timer.cancel()
        return (yield ctx.wait_for_external_event("go"))

    history = HistoryBuilder().start("c").timer_created(0, T0 + timedelta(days=30))
    history.scheduled(1, "work").episode().completed(1)
    executor = OrchestrationExecutor(cancels_then_waits, "i1")
    executor.replay(history.events)

    decision = executor.execute(history.episode().raised("go", 1).events[-2:])

    assert decision.cancelled_timers == []
    assert decision.output == 1
