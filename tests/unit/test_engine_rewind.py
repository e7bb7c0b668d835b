"""Rewind: the history a Failed execution restarts from, and what it runs again."""

from __future__ import annotations

from datetime import timedelta

from contracts import (
    ExecutionFailed,
    FailureDetails,
    OrchestrationStatus,
    TaskFailed,
    TaskScheduled,
)
from durable.retry import RetryOptions
from engine import OrchestrationExecutor
from engine.rewind import open_work, rewound_history
from tests.helpers.history import HistoryBuilder


def pipeline(ctx):
    a = yield ctx.call_activity("extract")
    b, c = yield ctx.task_all([ctx.call_activity("transform", a), ctx.call_activity("enrich", a)])
    return (yield ctx.call_activity("load", [b, c]))


def failed_history() -> HistoryBuilder:
    history = HistoryBuilder().start("pipeline").scheduled(0, "extract")
    history.episode().completed(0, "rows").scheduled(1, "transform", "rows").scheduled(
        2, "enrich", "rows"
    )
    history.episode().completed(2, "extra").failed(1, "IOError", "disk full")
    history.add(
        ExecutionFailed(
            timestamp=history.now, failure=FailureDetails(error_type="TaskFailedError", message="x")
        )
    )
    return history


def test_the_rewound_history_drops_the_failures_that_ended_the_execution():
    rewound = rewound_history(pipeline, "p-1", failed_history().events, "e2")

    types = [e.event_type for e in rewound]
    assert "ExecutionFailed" not in types
    assert "TaskFailed" not in types
    assert types.count("TaskCompleted") == 2
    assert next(e for e in rewound if e.event_type == "ExecutionStarted").execution_id == "e2"


def test_only_the_failed_activity_is_open_again_and_completing_it_finishes_the_run():
    rewound = rewound_history(pipeline, "p-1", failed_history().events, "e2")
    executor = OrchestrationExecutor(pipeline, "p-1")
    executor.replay(rewound)

    work = open_work(executor, rewound)
    decision = executor.decide()
    assert [e.name for e in work.activities] == ["transform"]
    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == []

    after = HistoryBuilder(start=rewound[-1].timestamp)
    after.episode().completed(1, "shaped")
    loading = executor.execute(after.events)
    assert [e.name for e in loading.new_events] == ["load"]
    assert loading.new_events[0].input == ["shaped", "extra"]


def test_failures_a_retry_policy_retried_stay_and_only_the_last_attempt_runs_again():
    policy = RetryOptions(1000, 2)

    def retried(ctx):
        return (yield ctx.call_activity_with_retry("flaky", policy))

    history = HistoryBuilder().start("retried").scheduled(0, "flaky")
    history.episode().failed(0).timer_created(1, history.now + timedelta(seconds=1))
    history.episode().timer_fired(1, history.now)
    history.add(TaskScheduled(timestamp=history.now, event_id=2, name="flaky", attempt=2))
    history.episode().failed(2)
    history.add(
        ExecutionFailed(timestamp=history.now, failure=FailureDetails(error_type="E", message="m"))
    )

    rewound = rewound_history(retried, "r-1", history.events, "e2")
    executor = OrchestrationExecutor(retried, "r-1")
    executor.replay(rewound)

    failed = [e.task_scheduled_id for e in rewound if isinstance(e, TaskFailed)]
    assert failed == [0]
    assert [(e.event_id, e.attempt) for e in open_work(executor, rewound).activities] == [(2, 2)]
    assert executor.decide().non_determinism is None
