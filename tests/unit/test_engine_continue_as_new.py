"""continue_as_new: the execution ends and names its successor, carrying events if asked."""

from __future__ import annotations

from contracts import ContinueAsNew, OrchestrationStatus
from engine import OrchestrationExecutor
from tests.helpers.history import HistoryBuilder


def counter(preserve: bool):
    def orchestrator(ctx):
        count = ctx.get_input() or 0
        yield ctx.call_activity("tick", count)
        ctx.continue_as_new(count + 1, preserve_unprocessed_events=preserve)

    return orchestrator


def run(preserve: bool):
    history = HistoryBuilder().start("counter", input=3).scheduled(0, "tick", 3)
    # Two events arrive that the code never waits for: one before the result, one with it.
    history.episode().raised("Note", "first")
    history.episode().completed(0).raised("Note", "second")
    past, new = history.split()
    executor = OrchestrationExecutor(counter(preserve), "c-1")
    executor.replay(past)
    return executor.execute(new), executor


def test_the_execution_ends_as_continued_as_new_with_the_next_input():
    decision, executor = run(preserve=False)

    assert decision.status is OrchestrationStatus.CONTINUED_AS_NEW
    assert isinstance(decision.new_events[-1], ContinueAsNew)
    assert decision.continue_as_new is not None
    assert decision.continue_as_new.input == 4
    assert decision.continue_as_new.new_execution_id == decision.new_events[-1].new_execution_id
    assert executor.is_finished


def test_unprocessed_events_are_dropped_unless_kept():
    dropped, _ = run(preserve=False)
    kept, _ = run(preserve=True)

    assert dropped.continue_as_new is not None
    assert dropped.continue_as_new.carried_events == ()
    assert kept.continue_as_new is not None
    assert kept.continue_as_new.carried_events == (("Note", "first"), ("Note", "second"))


def test_the_next_execution_id_is_the_same_on_every_replay():
    first, _ = run(preserve=False)
    second, _ = run(preserve=False)

    assert first.continue_as_new == second.continue_as_new


def test_events_raised_after_the_execution_continued_can_still_be_carried():
    decision, executor = run(preserve=True)
    late = HistoryBuilder().episode().raised("Note", "late").events[-1]

    assert executor.accepts(late)
    executor.apply_new(late)
    assert decision.continue_as_new is not None
