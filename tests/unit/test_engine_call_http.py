"""Durable HTTP calls: the requests they record, the 202-and-Location polling through durable
timers, and how failures reach the orchestrator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import (
    FailureDetails,
    OrchestrationStatus,
    TaskScheduled,
    TimerCreated,
)
from contracts.http import HTTP_ACTIVITY
from engine import replay
from engine.http import MAX_POLLS
from tests.apps.functions import calls_http
from tests.helpers.driving import drive
from tests.helpers.history import T0, HistoryBuilder

JOBS = "https://reports.example/jobs?code=k1"


def accepted(location: str | None = "/jobs/7/status", retry_after: str | None = "5") -> dict:
    headers = {}
    if location is not None:
        headers["Location"] = location
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return {"status_code": 202, "headers": headers, "content": None}


def ok(content: str = "done") -> dict:
    return {"status_code": 200, "headers": {}, "content": content}


def answering(*answers):
    """An activity that answers ``answers`` in turn, and remembers the requests it got."""
    requests: list[dict] = []

    def answer(task: TaskScheduled):
        assert task.name == HTTP_ACTIVITY
        requests.append(task.input)
        return answers[len(requests) - 1]

    answer.requests = requests  # type: ignore[attr-defined]
    return answer


def test_the_request_is_the_built_in_activity_with_json_content():
    history = HistoryBuilder().start(
        "calls_http", {"uri": JOBS, "method": "post", "content": {"a": 1}}
    )

    decision = replay(calls_http, "i1", [], history.events)

    [scheduled] = decision.new_events
    assert isinstance(scheduled, TaskScheduled)
    assert scheduled.name == HTTP_ACTIVITY
    assert scheduled.input == {
        "method": "POST",
        "uri": JOBS,
        "content": '{"a": 1}',
        "headers": {"Content-Type": "application/json"},
    }


def test_a_202_with_location_is_polled_through_timers_until_it_is_not_202():
    answer = answering(accepted(), accepted("status?again=1", "2"), ok("report"))

    history = drive(calls_http, "calls_http", {"uri": JOBS}, answer)

    assert history[-1].result == {"status": 200, "content": "report"}
    assert [r["uri"] for r in answer.requests] == [
        JOBS,
        "https://reports.example/jobs/7/status",
        "https://reports.example/jobs/7/status?again=1",
    ]
    assert [r["method"] for r in answer.requests] == ["GET", "GET", "GET"]
    timers = [e for e in history if isinstance(e, TimerCreated)]
    # Each wait is what Retry-After said, counted from the episode that read the 202.
    assert [t.fire_at - t.timestamp for t in timers] == [timedelta(seconds=5), timedelta(seconds=2)]


def test_polls_carry_the_first_requests_headers_but_not_its_body():
    def orchestrator(ctx):
        return (
            yield ctx.call_http("POST", JOBS, "x", {"Authorization": "Bearer t"}, is_raw_str=True)
        )

    answer = answering(accepted(), ok())
    drive(orchestrator, "o", None, answer)

    first, poll = answer.requests
    assert first["content"] == "x"
    assert first["headers"] == {"Authorization": "Bearer t"}
    assert poll == {
        "method": "GET",
        "uri": "https://reports.example/jobs/7/status",
        "content": None,
        "headers": {"Authorization": "Bearer t"},
    }


def test_with_polling_off_a_202_is_the_answer():
    answer = answering(accepted())

    history = drive(calls_http, "calls_http", {"uri": JOBS, "polling": False}, answer)

    assert history[-1].result == {"status": 202, "content": None}
    assert not any(isinstance(e, TimerCreated) for e in history)


def test_a_202_without_location_is_the_answer():
    history = drive(calls_http, "calls_http", {"uri": JOBS}, answering(accepted(location=None)))

    assert history[-1].result == {"status": 202, "content": None}


@pytest.mark.parametrize("status", [404, 500, 503])
def test_error_statuses_are_answers_not_failures(status):
    answer = answering({"status_code": status, "headers": {}, "content": "no"})

    history = drive(calls_http, "calls_http", {"uri": JOBS}, answer)

    assert history[-1].result == {"status": status, "content": "no"}


def test_a_request_that_gets_no_answer_fails_with_a_task_failed_error_the_code_can_catch():
    unreachable = FailureDetails(
        error_type="ConnectError", message="All connection attempts failed"
    )

    history = drive(calls_http, "calls_http", {"uri": JOBS}, answering(unreachable))

    assert history[-1].result == {
        "failed": "ConnectError",
        "message": "All connection attempts failed",
    }


def test_an_uncaught_failure_names_the_call_without_its_query():
    def orchestrator(ctx):
        return (yield ctx.call_http("GET", JOBS))

    history = (
        HistoryBuilder().start("o").scheduled(0, HTTP_ACTIVITY, {"method": "GET", "uri": JOBS})
    )
    history.episode().failed(0, "ConnectError", "refused")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.inner_failure.error_type == "ConnectError"
    assert "call_http GET https://reports.example/jobs failed: ConnectError: refused" in (
        decision.failure.message
    )
    assert "k1" not in decision.failure.message


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (None, timedelta(seconds=30)),
        ("0", timedelta(seconds=1)),
        ("soon", timedelta(seconds=30)),
        ("Thu, 01 Jan 2026 09:01:01 GMT", timedelta(seconds=60)),
        ("999999999", timedelta(days=1)),
        ("9" * 40, timedelta(seconds=30)),
    ],
)
def test_the_wait_between_polls_follows_retry_after_within_bounds(retry_after, wait):
    answer = answering(accepted(retry_after=retry_after), ok())

    history = drive(calls_http, "calls_http", {"uri": JOBS}, answer)

    [timer] = [e for e in history if isinstance(e, TimerCreated)]
    assert timer.fire_at - timer.timestamp == wait
    assert timer.timestamp == T0 + timedelta(seconds=1)


def test_polling_gives_up_when_the_next_poll_would_pass_the_calls_timeout():
    answer = answering(*[accepted(retry_after="5")] * 10)

    # Answers at +1 s and +7 s; the poll after the second would be at +12 s, past +10 s.
    history = drive(calls_http, "calls_http", {"uri": JOBS, "timeout": 10}, answer)

    assert history[-1].result["failed"] == "HttpPollingTimeoutError"
    assert "still answering 202 Accepted after 1 polls" in history[-1].result["message"]
    assert len(answer.requests) == 2


def test_polling_gives_up_after_its_most_polls(monkeypatch):
    monkeypatch.setattr("engine.http.MAX_POLLS", 3)

    history = drive(
        calls_http, "calls_http", {"uri": JOBS}, answering(*[accepted(retry_after="1")] * 10)
    )

    assert history[-1].result["failed"] == "HttpPollingTimeoutError"
    assert "after 3 polls" in history[-1].result["message"]
    assert MAX_POLLS == 1000


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"uri": "ftp://files.example/x"}, ValueError),
        ({"uri": "/relative"}, ValueError),
        ({"uri": JOBS, "token_source": object()}, ValueError),
        ({"uri": JOBS, "content": {"a": 1}, "is_raw_str": True}, TypeError),
    ],
)
def test_a_call_that_cannot_be_made_raises_at_the_call(arguments, error):
    def orchestrator(ctx):
        return (yield ctx.call_http("GET", **arguments))

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("o").events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == error.__name__
