"""task_any: the first task to complete wins, failed or not, as in azure-functions-durable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts import OrchestrationStatus
from durable.errors import TaskFailedError
from engine import replay
from tests.helpers.history import T0, HistoryBuilder

DEADLINE = T0 + timedelta(minutes=5)


def race_generator(ctx):
    deadline = ctx.create_timer(timedelta(minutes=5))
    work = ctx.call_activity("work")
    winner = yield ctx.task_any([work, deadline])
    if winner == work:
        deadline.cancel()
        return {"winner": "work", "result": winner.result}
    return {"winner": "deadline"}


async def race_async(ctx):
    deadline = ctx.create_timer(timedelta(minutes=5))
    work = ctx.call_activity("work")
    winner = await ctx.task_any([work, deadline])
    if winner == work:
        deadline.cancel()
        return {"winner": "work", "result": winner.result}
    return {"winner": "deadline"}


def mirrors_generator(ctx):
    primary, mirror = ctx.call_activity("primary"), ctx.call_activity("mirror")
    winner = yield ctx.task_any([primary, mirror])
    return ["primary" if winner == primary else "mirror", winner.result]


async def mirrors_async(ctx):
    primary, mirror = ctx.call_activity("primary"), ctx.call_activity("mirror")
    winner = await ctx.task_any([primary, mirror])
    return ["primary" if winner == primary else "mirror", winner.result]


races = pytest.mark.parametrize("orchestrator", [race_generator, race_async])
mirrors = pytest.mark.parametrize("orchestrator", [mirrors_generator, mirrors_async])


def raced() -> HistoryBuilder:
    history = HistoryBuilder().start("race").timer_created(0, DEADLINE)
    return history.scheduled(1, "work")


def both_mirrors() -> HistoryBuilder:
    return HistoryBuilder().start("mirrors").scheduled(0, "primary").scheduled(1, "mirror")


@races
def test_activity_that_finishes_first_is_the_winner(orchestrator):
    history = raced()
    history.episode().completed(1, "done")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == {"winner": "work", "result": "done"}


@races
def test_timer_that_fires_first_is_the_winner(orchestrator):
    history = raced()
    history.episode(300).timer_fired(0, DEADLINE)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == {"winner": "deadline"}


def failure_aware(ctx):
    primary, mirror = ctx.call_activity("primary"), ctx.call_activity("mirror")
    winner = yield ctx.task_any([primary, mirror])
    name = "primary" if winner == primary else "mirror"
    if winner.is_faulted:
        return [name, "failed", winner.exception.details.message]
    return [name, "ok", winner.result]


def test_a_task_that_fails_first_wins_and_task_any_does_not_raise():
    history = both_mirrors()
    history.episode().failed(0, "IOError", "primary down")
    past, new = history.split()

    decision = replay(failure_aware, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == ["primary", "failed", "primary down"]


@mirrors
def test_first_completion_wins_even_when_both_results_arrive_together(orchestrator):
    history = both_mirrors()
    history.episode().completed(1, "from mirror").completed(0, "from primary")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.output == ["mirror", "from mirror"]


def test_the_failure_of_a_winning_task_is_raised_only_when_its_result_is_taken():
    def takes_result(ctx):
        winner = yield ctx.task_any([ctx.call_activity("primary"), ctx.call_activity("mirror")])
        try:
            return winner.get_result()
        except TaskFailedError as error:
            return error.details.message

    history = both_mirrors()
    history.episode().failed(0, "IOError", "primary down")
    past, new = history.split()

    assert replay(takes_result, "i1", past, new).output == "primary down"


def test_task_any_of_no_tasks_is_refused():
    def orchestrator(ctx):
        yield ctx.task_any([])

    decision = replay(orchestrator, "i1", [], HistoryBuilder().start("empty").events)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "ValueError"
