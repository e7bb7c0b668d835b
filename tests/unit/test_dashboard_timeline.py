"""The dashboard's timeline without a browser: which bars a history gives, and where they go."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import (
    EventSent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
)
from services.client.dashboard.timeline import MIN_WIDTH_PERCENT, format_duration, layout
from tests.helpers.history import T0, HistoryBuilder


def chain(activities: int) -> HistoryBuilder:
    history = HistoryBuilder().start("hello_cities")
    for number in range(activities):
        history.scheduled(number, "say_hello", f"city {number}")
        history.episode().completed(number, f"hello {number}")
    return history.execution_completed(["done"])


def test_a_chain_gives_one_bar_per_activity_side_by_side_over_the_whole_span() -> None:
    history = chain(3)

    timeline = layout(history.events, now=T0 + timedelta(days=1))

    assert timeline is not None
    assert timeline.ended
    assert timeline.duration_seconds == 3.0
    assert [(bar.kind, bar.label, bar.outcome) for bar in timeline.bars] == [
        ("activity", "say_hello", "completed")
    ] * 3
    assert [bar.left for bar in timeline.bars] == pytest.approx([0, 100 / 3, 200 / 3], abs=1e-3)
    assert [bar.width for bar in timeline.bars] == pytest.approx([100 / 3] * 3, abs=1e-3)
    assert [bar.duration_seconds for bar in timeline.bars] == [1.0, 1.0, 1.0]


def test_an_unanswered_activity_waits_until_now_on_a_running_instance() -> None:
    history = HistoryBuilder().start("slow").scheduled(0, "crunch")
    now = T0 + timedelta(seconds=10)

    timeline = layout(history.events, now=now)

    assert timeline is not None
    assert not timeline.ended
    assert timeline.end == now
    (bar,) = timeline.bars
    assert (bar.outcome, bar.end, bar.duration_seconds) == ("waiting", None, None)
    assert bar.left + bar.width == pytest.approx(100.0)


def test_a_failed_activity_and_its_retry_are_two_bars_and_the_failure_is_told() -> None:
    history = HistoryBuilder().start("retrying").scheduled(0, "flaky")
    history.episode().failed(0, message="connection reset")
    history.add(TaskScheduled(timestamp=history.now, event_id=1, name="flaky", attempt=2))
    history.episode().completed(1, "ok").execution_completed("ok")

    timeline = layout(history.events, now=history.now)

    assert timeline is not None
    first, retry = timeline.bars
    assert (first.outcome, first.detail) == ("failed", "connection reset")
    assert (retry.label, retry.outcome) == ("flaky (#2)", "completed")


def test_timers_sub_orchestrations_and_events_each_have_their_row() -> None:
    history = HistoryBuilder().start("everything")
    fire_at = history.now + timedelta(seconds=2)
    history.timer_created(0, fire_at)
    history.add(
        SubOrchestrationInstanceCreated(
            timestamp=history.now, event_id=1, name="child", instance_id="child-1"
        )
    )
    history.episode(2).timer_fired(0, fire_at).raised("Approval", {"ok": True})
    history.add(
        EventSent(timestamp=history.now, event_id=2, instance_id="other", name="Ping", input=None)
    )
    history.episode(2).add(
        SubOrchestrationInstanceCompleted(timestamp=history.now, task_scheduled_id=1, result=1)
    )
    history.execution_completed(None)

    timeline = layout(history.events, now=history.now)

    assert timeline is not None
    rows = [(bar.kind, bar.label, bar.outcome, bar.duration_seconds) for bar in timeline.bars]
    assert rows == [
        ("timer", "timer", "fired", 2.0),
        ("sub_orchestration", "child", "completed", 4.0),
        ("event_raised", "Approval", "received", 0.0),
        ("event_sent", "Ping", "sent", 0.0),
    ]
    child, event = timeline.bars[1], timeline.bars[2]
    assert child.instance_id == "child-1"
    assert event.width == MIN_WIDTH_PERCENT  # an instant stays visible
    assert event.left == pytest.approx(50.0)


def test_only_the_latest_execution_is_laid_out() -> None:
    history = chain(2)
    history.start("hello_cities", execution_id="e2").scheduled(0, "say_hello")

    timeline = layout(history.events, now=history.now + timedelta(seconds=1))

    assert timeline is not None
    assert len(timeline.bars) == 1
    assert timeline.start == history.now


def test_a_history_that_has_not_started_has_no_timeline() -> None:
    assert layout([], now=T0) is None


def test_a_terminated_instance_ends_its_waiting_bars_at_the_termination() -> None:
    history = HistoryBuilder().start("waits").scheduled(0, "slow")
    history.episode(4).terminated("enough")

    timeline = layout(history.events, now=history.now + timedelta(hours=1))

    assert timeline is not None
    assert timeline.ended
    assert timeline.duration_seconds == 4.0
    assert timeline.bars[0].outcome == "unfinished"
    assert timeline.bars[0].width == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, ""), (0.0423, "42 ms"), (4.25, "4.2 s"), (192, "3 min 12 s"), (7500, "2 h 5 min")],
)
def test_durations_read_as_people_say_them(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_ticks_mark_the_span_in_quarters() -> None:
    timeline = layout(chain(4).events, now=T0)

    assert timeline is not None
    assert timeline.ticks() == [
        (0.0, "+0 ms"),
        (25.0, "+1.0 s"),
        (50.0, "+2.0 s"),
        (75.0, "+3.0 s"),
        (100.0, "+4.0 s"),
    ]
