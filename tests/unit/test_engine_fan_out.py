"""Fan-out/fan-in with task_all, in both orchestrator styles."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus, TaskScheduled
from engine import replay
from tests.helpers.history import HistoryBuilder

COUNT = 4


def fan_out_generator(ctx):
    results = yield ctx.task_all([ctx.call_activity("work", n) for n in range(ctx.get_input())])
    return results


async def fan_out_async(ctx):
    return await ctx.task_all([ctx.call_activity("work", n) for n in range(ctx.get_input())])


styles = pytest.mark.parametrize(
    "orchestrator", [fan_out_generator, fan_out_async], ids=["generator", "async"]
)


def fanned_out(count: int = COUNT) -> HistoryBuilder:
    history = HistoryBuilder().start("fan", input=count)
    for n in range(count):
        history.scheduled(n, "work", n)
    return history


@styles
def test_all_tasks_are_scheduled_in_one_decision_with_ids_in_call_order(orchestrator):
    history = HistoryBuilder().start("fan", input=COUNT)

    decision = replay(orchestrator, "i1", [], history.events)

    assert decision.new_events == [
        TaskScheduled(event_id=n, timestamp=history.now, name="work", input=n) for n in range(COUNT)
    ]


@styles
def test_does_not_complete_while_one_result_is_missing(orchestrator):
    history = fanned_out()
    history.episode()
    for n in range(COUNT - 1):
        history.completed(n, n * 10)
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == []


@styles
def test_results_are_in_scheduling_order_whatever_the_completion_order(orchestrator):
    history = fanned_out()
    history.episode().completed(2, "r2").completed(0, "r0")
    history.episode().completed(3, "r3").completed(1, "r1")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == ["r0", "r1", "r2", "r3"]


@styles
def test_task_all_of_no_tasks_completes_immediately(orchestrator):
    history = HistoryBuilder().start("fan", input=0)

    decision = replay(orchestrator, "i1", [], history.events)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == []
    assert [event.event_type for event in decision.new_events] == ["ExecutionCompleted"]


@styles
def test_one_failed_task_fails_the_whole_fan_in(orchestrator):
    history = fanned_out()
    history.episode().completed(0, "r0").failed(2, "KeyError", "no such row")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.FAILED
    assert decision.failure.error_type == "TaskFailedError"
    assert decision.failure.inner_failure.error_type == "KeyError"
