"""The metrics follow Prometheus' conventions, keep their labels bounded, and a batch counts
only once it has committed."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge, Histogram

from contracts import (
    EventRaised,
    ExecutionStarted,
    OrchestrationStatus,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable import FunctionApp
from durable.broker_events import broker_observer
from services.common import metrics
from services.common.activity_runner import ActivityRunner
from tests.helpers.metrics import sample as value
from tests.integration import messages

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
METRICS = {
    name: metric
    for name, metric in vars(metrics).items()
    if isinstance(metric, Counter | Gauge | Histogram)
}
UNITS = ("_seconds", "_bytes", "_messages", "_instances", "_rows", "_held")
"""What a gauge's or a histogram's name ends with: a base unit, or what it counts."""
UNBOUNDED_LABEL = re.compile(r"(^|_)(id|ids|instance|instances|execution|correlation|message)(_|$)")


def exposed_name(metric: Counter | Gauge | Histogram) -> str:
    [family] = metric.describe()
    return family.name


def test_every_metric_is_named_by_prometheus_conventions() -> None:
    assert len(METRICS) >= 30
    for attribute, metric in METRICS.items():
        name = exposed_name(metric)
        assert re.fullmatch(r"durable_[a-z_]+", name), attribute
        assert not name.endswith("_total"), f"{attribute}: the client library adds _total"
        if isinstance(metric, Counter):
            assert metric._type == "counter"
        else:
            assert name.endswith(UNITS), f"{name}: no unit"
        assert "_milliseconds" not in name, f"{name}: seconds are the base unit"
        assert not name.endswith("_ms"), f"{name}: seconds are the base unit"


def test_no_label_could_take_an_instance_id() -> None:
    labels = {label for metric in METRICS.values() for label in metric._labelnames}
    assert labels == {"orchestrator", "activity", "outcome", "reason", "queue", "partition", "via"}
    for label in labels:
        assert not UNBOUNDED_LABEL.search(label), label


def test_every_gauge_means_something_summed_or_maxed_over_processes() -> None:
    gauges = [metric for metric in METRICS.values() if isinstance(metric, Gauge)]
    assert gauges
    for gauge in gauges:
        assert gauge._multiprocess_mode in {"livesum", "livemax", "max", "min", "sum"}, gauge


def test_a_batch_counts_nothing_until_it_commits_and_then_counts_once() -> None:
    tally = metrics.BatchTally()
    fired = TimerFired(timestamp=T0, timer_id=3, fire_at=T0 - timedelta(seconds=2))
    before = (
        value("durable_orchestrations_started_total", orchestrator="tally_orchestrator"),
        value("durable_events_raised_total", orchestrator="tally_orchestrator"),
        value("durable_timer_lateness_seconds_sum"),
        value("durable_activity_retries_total", activity="tally_activity"),
        value("durable_activities_scheduled_total", activity="tally_activity"),
    )

    tally.episode("tally_orchestrator", 0.001)
    tally.recorded(
        "tally_orchestrator",
        [
            ExecutionStarted(timestamp=T0, name="tally_orchestrator", execution_id="e1"),
            EventRaised(timestamp=T0, name="Approval"),
            fired,
        ],
        [
            TaskScheduled(timestamp=T0, name="tally_activity", attempt=1),
            TaskScheduled(timestamp=T0, name="tally_activity", attempt=2),
            TimerCreated(timestamp=T0, fire_at=T0),
        ],
        OrchestrationStatus.FAILED,
        continued_as_new=False,
        now=T0,
    )
    assert (
        value("durable_orchestrations_started_total", orchestrator="tally_orchestrator")
        == (before[0])
    )

    tally.writing()
    tally.committed(messages=3)

    after = (
        value("durable_orchestrations_started_total", orchestrator="tally_orchestrator"),
        value("durable_events_raised_total", orchestrator="tally_orchestrator"),
        value("durable_timer_lateness_seconds_sum"),
        value("durable_activity_retries_total", activity="tally_activity"),
        value("durable_activities_scheduled_total", activity="tally_activity"),
    )
    # The lateness sum is a float that other tests of this process may have added to.
    assert [a - b for a, b in zip(after, before, strict=True)] == pytest.approx([1, 1, 2, 1, 2])
    assert (
        value(
            "durable_orchestrations_ended_total",
            orchestrator="tally_orchestrator",
            outcome="failed",
        )
        == 1
    )
    assert (
        value(
            "durable_orchestrator_episode_duration_seconds_count", orchestrator="tally_orchestrator"
        )
        == 1
    )


def test_a_timer_fire_recorded_before_it_is_due_is_not_late() -> None:
    tally = metrics.BatchTally()
    early = TimerFired(timestamp=T0, timer_id=1, fire_at=T0 + timedelta(seconds=1))
    before = value("durable_timer_lateness_seconds_bucket", le="0.005")
    tally.recorded(
        "early", [early], [], OrchestrationStatus.RUNNING, continued_as_new=False, now=T0
    )
    tally.committed(messages=1)
    assert value("durable_timer_lateness_seconds_bucket", le="0.005") == before + 1


async def test_each_activity_execution_is_counted_with_its_outcome() -> None:
    app = FunctionApp()

    @app.activity
    def counted_ok(value: int) -> int:
        return value

    @app.activity
    def counted_refuses(value: int) -> int:
        raise ValueError("no")

    runner = ActivityRunner(ThreadPoolExecutor(max_workers=1), _no_report)
    ok, refuses = app.activities["counted_ok"], app.activities["counted_refuses"]

    await runner.run_in_one_thread(
        [
            (ok, messages.activity_task("i1", "counted_ok", 1)),
            (ok, messages.activity_task("i2", "counted_ok", 2)),
        ]
    )
    await runner.run(refuses, messages.activity_task("i3", "counted_refuses", 3))

    count = "durable_activity_duration_seconds_count"
    assert value(count, activity="counted_ok", outcome="completed") == 2
    assert value(count, activity="counted_refuses", outcome="failed") == 1


@pytest.mark.parametrize(
    ("error", "outcome"),
    [(None, "completed"), (ValueError("x"), "failed"), (TimeoutError("late"), "timed_out")],
)
def test_an_activity_outcome_is_named_by_what_it_raised(
    error: Exception | None, outcome: str
) -> None:
    before = value("durable_activity_duration_seconds_count", activity="named", outcome=outcome)
    metrics.activity_executed("named", 0.01, error if error is not None else "output")
    after = value("durable_activity_duration_seconds_count", activity="named", outcome=outcome)
    assert after == before + 1


def test_the_sdk_broker_events_reach_the_counters() -> None:
    before = value("durable_dead_lettered_messages_total", queue="unit.queue")
    reconnects = value("durable_publisher_reconnects_total")
    broker_observer().dead_lettered("unit.queue", 2)
    broker_observer().publisher_reconnecting()
    assert value("durable_dead_lettered_messages_total", queue="unit.queue") == before + 2
    assert value("durable_publisher_reconnects_total") == reconnects + 1


async def _no_report(started: object) -> None:
    """No task here has a time-out."""


def test_the_guide_lists_every_metric() -> None:
    guide = Path(__file__).parents[2] / "docs" / "guide" / "observability.md"
    listed = set(re.findall(r"^\| `(durable_[a-z_]+)` \|", guide.read_text(), re.MULTILINE))
    exported = {
        exposed_name(metric) + ("_total" if isinstance(metric, Counter) else "")
        for metric in METRICS.values()
    }
    assert listed == exported
