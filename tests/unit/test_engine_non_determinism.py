"""Matching code to history: a changed orchestrator is reported, never silently replayed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import OrchestrationStatus
from engine import replay
from tests.helpers.history import T0, HistoryBuilder


def prepare_then_a_history() -> HistoryBuilder:
    """The old code: prepare, then A (event id 1), then it waits for A's result."""
    history = HistoryBuilder().start("changed").scheduled(0, "prepare")
    history.episode().completed(0, "ready").scheduled(1, "A", "ready")
    return history.episode().completed(1, "a")


def now_calls_b_generator(ctx):
    ready = yield ctx.call_activity("prepare")
    return (yield ctx.call_activity("B", ready))


async def now_calls_b_async(ctx):
    ready = await ctx.call_activity("prepare")
    return await ctx.call_activity("B", ready)


@pytest.mark.parametrize("orchestrator", [now_calls_b_generator, now_calls_b_async])
def test_different_activity_at_a_recorded_event_id_is_non_determinism(orchestrator):
    past, new = prepare_then_a_history().split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "NonDeterminismError"
    error = decision.non_determinism
    assert error.instance_id == "i1"
    assert error.event_id == 1
    assert "'A'" in error.expected
    assert "'B'" in error.actual
    assert [event.event_type for event in decision.new_events] == ["ExecutionFailed"]


def test_recorded_activity_the_code_no_longer_schedules_is_non_determinism():
    def now_waits_for_an_event(ctx):
        yield ctx.call_activity("prepare")
        return (yield ctx.wait_for_external_event("go"))

    past, new = prepare_then_a_history().split()

    decision = replay(now_waits_for_an_event, "i1", past, new)

    assert decision.failure.error_type == "NonDeterminismError"
    assert decision.non_determinism.event_id == 1
    assert "'A'" in decision.non_determinism.expected
    assert "did not schedule" in decision.non_determinism.actual


def test_code_that_now_finishes_before_a_recorded_activity_is_non_determinism():
    def now_stops_after_prepare(ctx):
        return (yield ctx.call_activity("prepare"))

    past, new = prepare_then_a_history().split()

    decision = replay(now_stops_after_prepare, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.non_determinism.event_id == 1
    assert decision.output is None
    assert [event.event_type for event in decision.new_events] == ["ExecutionFailed"]


def test_activity_where_history_holds_a_timer_is_non_determinism():
    def now_calls_an_activity(ctx):
        yield ctx.call_activity("poll")

    history = HistoryBuilder().start("changed").timer_created(0, T0 + timedelta(hours=1))

    decision = replay(now_calls_an_activity, "i1", history.events)

    assert decision.non_determinism.event_id == 0
    assert "TimerCreated" in decision.non_determinism.expected
    assert "'poll'" in decision.non_determinism.actual


def test_nothing_the_diverged_code_asks_for_is_dispatched():
    def now_fans_out_differently(ctx):
        yield ctx.task_all([ctx.call_activity(name) for name in ("X", "B", "C")])

    history = HistoryBuilder().start("changed").scheduled(0, "A").scheduled(1, "B")

    decision = replay(now_fans_out_differently, "i1", history.events)

    assert decision.non_determinism.event_id == 0
    assert [event.event_type for event in decision.new_events] == ["ExecutionFailed"]


def test_a_changed_activity_input_is_not_non_determinism():
    def now_sends_another_input(ctx):
        return (yield ctx.call_activity("prepare", {"format": "v2"}))

    history = HistoryBuilder().start("changed").scheduled(0, "prepare", "v1")
    history.episode().completed(0, "ready")
    past, new = history.split()

    decision = replay(now_sends_another_input, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.non_determinism is None


def test_activity_scheduled_in_the_final_step_is_matched_on_replay_not_scheduled_again():
    def notifies_and_returns(ctx):
        ctx.call_activity("notify", "done")
        return "done"

    history = HistoryBuilder().start("fire-and-forget")
    first = replay(notifies_and_returns, "i1", [], history.events)
    history.events += first.new_events

    decision = replay(notifies_and_returns, "i1", history.events)

    assert [event.event_type for event in first.new_events] == [
        "TaskScheduled",
        "ExecutionCompleted",
    ]
    assert decision.new_events == []
    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.non_determinism is None
