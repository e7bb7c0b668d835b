"""Function chaining, driven episode by episode, in both orchestrator styles."""

from __future__ import annotations

import pytest

from contracts import ExecutionCompleted, OrchestrationStatus, TaskScheduled
from engine import replay
from tests.helpers.history import HistoryBuilder


def chain_generator(ctx):
    first = yield ctx.call_activity("first", ctx.get_input())
    second = yield ctx.call_activity("second", first)
    return [first, second]


async def chain_async(ctx):
    first = await ctx.call_activity("first", ctx.get_input())
    second = await ctx.call_activity("second", first)
    return [first, second]


styles = pytest.mark.parametrize(
    "orchestrator", [chain_generator, chain_async], ids=["generator", "async"]
)


@styles
def test_first_episode_schedules_task_zero_with_the_input(orchestrator):
    history = HistoryBuilder().start("chain", input="seed")

    decision = replay(orchestrator, "i1", [], history.events)

    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == [
        TaskScheduled(event_id=0, timestamp=history.now, name="first", input="seed")
    ]


@styles
def test_completed_task_schedules_the_next_one_with_its_result(orchestrator):
    history = HistoryBuilder().start("chain", input="seed").scheduled(0, "first", "seed")
    history.episode().completed(0, "one")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.RUNNING
    assert decision.new_events == [
        TaskScheduled(event_id=1, timestamp=history.now, name="second", input="one")
    ]


@styles
def test_last_result_completes_the_execution_with_the_return_value(orchestrator):
    history = HistoryBuilder().start("chain", input="seed").scheduled(0, "first", "seed")
    history.episode().completed(0, "one").scheduled(1, "second", "one")
    history.episode().completed(1, "two")
    past, new = history.split()

    decision = replay(orchestrator, "i1", past, new)

    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == ["one", "two"]
    assert decision.new_events == [ExecutionCompleted(timestamp=history.now, result=["one", "two"])]


@styles
def test_replaying_the_full_history_produces_no_new_events(orchestrator):
    history = HistoryBuilder().start("chain", input="seed").scheduled(0, "first", "seed")
    history.episode().completed(0, "one").scheduled(1, "second", "one")
    history.episode().completed(1, "two").execution_completed(["one", "two"])

    decision = replay(orchestrator, "i1", history.events)

    assert decision.new_events == []
    assert decision.status is OrchestrationStatus.COMPLETED
    assert decision.output == ["one", "two"]
    assert decision.non_determinism is None


@styles
def test_replay_in_the_middle_schedules_nothing_already_recorded(orchestrator):
    history = HistoryBuilder().start("chain", input="seed").scheduled(0, "first", "seed")
    history.episode().completed(0, "one").scheduled(1, "second", "one")

    decision = replay(orchestrator, "i1", history.events)

    assert decision.new_events == []
    assert decision.status is OrchestrationStatus.RUNNING
