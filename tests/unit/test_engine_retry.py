"""Retry policies: the schedule they compute, and retries driven by the history."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import FailureDetails, OrchestrationStatus, TaskScheduled, TimerCreated
from durable.errors import TaskFailedError
from durable.retry import RetryOptions
from engine import OrchestrationExecutor
from tests.helpers.history import T0, HistoryBuilder

POLICY = RetryOptions(
    first_retry_interval_in_milliseconds=1000,
    max_number_of_attempts=5,
    backoff_coefficient=2.0,
    max_retry_interval_in_milliseconds=5000,
)


def test_waits_grow_by_the_backoff_coefficient_up_to_the_maximum():
    waits = [POLICY.delay_after(attempt).total_seconds() for attempt in range(1, 6)]

    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_no_attempt_beyond_the_maximum_or_the_retry_timeout_or_for_a_non_retryable_error():
    failure = FailureDetails(error_type="ValueError", message="x")
    timed = RetryOptions(1000, 10, retry_timeout_in_milliseconds=2500)
    picky = RetryOptions(1000, 10, non_retryable_error_types=["ValueError"])

    assert POLICY.next_attempt_at(5, failure, T0, T0) is None
    assert timed.next_attempt_at(1, failure, T0, T0 + timedelta(seconds=1)) == T0 + timedelta(
        seconds=2
    )
    assert timed.next_attempt_at(2, failure, T0, T0 + timedelta(seconds=2)) is None
    assert picky.next_attempt_at(1, failure, T0, T0) is None
    assert (
        POLICY.next_attempt_at(1, failure.model_copy(update={"is_non_retriable": True}), T0, T0)
        is None
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"first_retry_interval_in_milliseconds": 0, "max_number_of_attempts": 3},
        {"first_retry_interval_in_milliseconds": 10, "max_number_of_attempts": 0},
        {
            "first_retry_interval_in_milliseconds": 10,
            "max_number_of_attempts": 3,
            "backoff_coefficient": 0.5,
        },
    ],
)
def test_invalid_policies_are_refused(bad):
    with pytest.raises(ValueError, match="must be"):
        RetryOptions(**bad)


def charges(ctx):
    try:
        return (yield ctx.call_activity_with_retry("charge", POLICY, 10))
    except TaskFailedError as error:
        return {"gave_up": error.details.message}


def test_an_activity_failing_twice_then_succeeding_takes_three_attempts_with_timers_between():
    history = HistoryBuilder().start("charges")
    executor = OrchestrationExecutor(charges, "i1")
    first = executor.execute(history.events)
    assert first.new_events == [TaskScheduled(event_id=0, timestamp=T0, name="charge", input=10)]
    history.add(first.new_events[0])

    failed_once = executor.execute(history.episode().failed(0).events[-2:])
    assert failed_once.new_events == [
        TimerCreated(event_id=1, timestamp=history.now, fire_at=history.now + timedelta(seconds=1))
    ]
    history.add(failed_once.new_events[0])
    second = executor.execute(history.episode().timer_fired(1, history.now).events[-2:])
    assert second.new_events[0].attempt == 2
    history.add(second.new_events[0])
    failed_twice = executor.execute(history.episode().failed(2).events[-2:])
    assert failed_twice.new_events[0].fire_at == history.now + timedelta(seconds=2)
    history.add(failed_twice.new_events[0])
    third = executor.execute(history.episode().timer_fired(3, history.now).events[-2:])
    assert (third.new_events[0].event_id, third.new_events[0].attempt) == (4, 3)
    history.add(third.new_events[0])

    done = executor.execute(history.episode().completed(4, "charged").events[-2:])

    assert done.output == "charged"
    replayed = OrchestrationExecutor(charges, "i1")
    replayed.replay(history.events[:-2])
    assert replayed.execute(history.events[-2:]).output == "charged"


def test_the_last_failure_is_raised_when_the_attempts_run_out():
    policy = RetryOptions(1000, 2)

    def once_more(ctx):
        try:
            yield ctx.call_activity_with_retry("charge", policy, 1)
        except TaskFailedError as error:
            return error.details.message

    history = HistoryBuilder().start("once_more").scheduled(0, "charge", 1)
    history.episode().failed(0, message="first").timer_created(
        1, history.now + timedelta(seconds=1)
    )
    history.episode().timer_fired(1, history.now).scheduled(2, "charge", 1)
    history.episode().failed(2, message="second")
    past, new = history.split()
    executor = OrchestrationExecutor(once_more, "i1")
    executor.replay(past)

    decision = executor.execute(new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == "second"
