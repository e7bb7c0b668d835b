"""Durable timers: what they record, what fires them, and which fires are ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts import OrchestrationStatus, TimerCreated, TimerFired
from engine import OrchestrationExecutor, replay
from tests.helpers.history import T0, HistoryBuilder

AT_NOON = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def sleeps_generator(ctx):
    yield ctx.create_timer(timedelta(minutes=10))
    return "woke up"


async def sleeps_async(ctx):
    await ctx.create_timer(timedelta(minutes=10))
    return "woke up"


styles = pytest.mark.parametrize("orchestrator", [sleeps_generator, sleeps_async])


@styles
def test_timedelta_timer_fires_at_current_time_plus_delta(orchestrator):
    history = HistoryBuilder().start("sleep")

    decision = replay(orchestrator, "i1", [], history.events)

    assert decision.new_events == [
        TimerCreated(event_id=0, timestamp=T0, fire_at=T0 + timedelta(minutes=10))
    ]


@pytest.mark.parametrize("fire_at", [AT_NOON, AT_NOON.replace(tzinfo=None)], ids=["aware", "naive"])
def test_explicit_datetime_timer_fires_at_that_utc_time(fire_at):
    def orchestrator(ctx):
        yield ctx.create_timer(fire_at)

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("sleep").events)

    assert decision.new_events == [TimerCreated(event_id=0, timestamp=T0, fire_at=AT_NOON)]


@styles
def test_timer_fired_completes_the_timer(orchestrator):
    fire_at = T0 + timedelta(minutes=10)
    history = HistoryBuilder().start("sleep").timer_created(0, fire_at)
    history.episode(600).timer_fired(0, fire_at)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == "woke up"


def waits_for_approval_or_deadline(ctx):
    deadline = ctx.create_timer(AT_NOON)
    approval = ctx.wait_for_external_event("approval")
    winner = yield ctx.task_any([approval, deadline])
    if winner == approval:
        deadline.cancel()
        return (yield ctx.call_activity("archive", approval.result))
    return "expired"


def approved_before_the_deadline() -> OrchestrationExecutor:
    history = HistoryBuilder().start("approval").timer_created(0, AT_NOON)
    history.episode().raised("approval", "yes").scheduled(1, "archive", "yes")
    executor = OrchestrationExecutor(waits_for_approval_or_deadline, "i1")
    executor.replay(history.events)
    return executor


def test_fire_of_a_cancelled_timer_is_not_accepted_and_changes_nothing():
    executor = approved_before_the_deadline()
    fire = TimerFired(timestamp=AT_NOON, timer_id=0, fire_at=AT_NOON)

    accepted = executor.accepts(fire)
    decision = executor.execute([fire])

    assert accepted is False
    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == []


@pytest.mark.parametrize("timer_id", [7, 1], ids=["unknown id", "id of an activity"])
def test_fire_for_something_that_is_not_an_open_timer_is_not_accepted(timer_id):
    executor = approved_before_the_deadline()

    assert not executor.accepts(TimerFired(timestamp=AT_NOON, timer_id=timer_id, fire_at=AT_NOON))


def test_fire_for_an_unknown_timer_is_ignored():
    fire_at = T0 + timedelta(minutes=10)
    history = HistoryBuilder().start("sleep").timer_created(0, fire_at)
    history.episode(600).timer_fired(5, fire_at)
    past, new = history.split()

    decision = replay(sleeps_generator, "i1", past, new)

    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == []


def test_a_timer_that_fired_is_no_longer_accepted():
    fire_at = T0 + timedelta(minutes=10)
    history = HistoryBuilder().start("sleep").timer_created(0, fire_at)
    executor = OrchestrationExecutor(waits_for_approval_or_deadline, "i1")
    executor.replay(history.events)
    fire = TimerFired(timestamp=AT_NOON, timer_id=0, fire_at=AT_NOON)

    first = executor.accepts(fire)
    decision = executor.execute([fire])

    assert first is True
    assert decision.output == "expired"
    assert not executor.accepts(fire)
