"""Driving the engine episode by episode, as the orchestrator service would, with canned
answers: to write golden histories and to test multi-step behaviour end to end in memory."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from contracts import (
    EventRaised,
    ExecutionStarted,
    FailureDetails,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from engine import OrchestrationExecutor
from tests.helpers.history import T0

Answer = Callable[[TaskScheduled], Any]
"""What an activity answers: a result, or a ``FailureDetails`` for a failure."""


def drive(
    orchestrator: Any,
    name: str,
    input_: Any,
    answer: Answer,
    *,
    version: str | None = None,
    events: Sequence[tuple[str, Any]] = (),
    most_episodes: int = 100,
) -> list[HistoryEvent]:
    """Run ``orchestrator`` to its end: every activity answered by ``answer`` one second
    after it is scheduled, every timer fired when due, ``events`` raised one at a time when
    it waits for nothing else; the whole history it leaves."""
    to_raise = list(events)
    executor = OrchestrationExecutor(orchestrator, "driven")
    now = T0
    start = ExecutionStarted(
        timestamp=now, name=name, execution_id="e1", input=input_, version=version
    )
    inbound: list[HistoryEvent] = [start]
    history: list[HistoryEvent] = []
    for _ in range(most_episodes):
        episode: list[HistoryEvent] = [OrchestratorStarted(timestamp=now), *inbound]
        decision = executor.execute(episode)
        history += episode + decision.new_events
        if executor.is_finished:
            return history
        inbound = []
        open_ids = executor.open_call_ids()
        actions = [e for e in history if isinstance(e, TaskScheduled | TimerCreated)]
        waiting = [e for e in actions if e.event_id in open_ids]
        timers = [e for e in waiting if isinstance(e, TimerCreated)]
        tasks = [e for e in waiting if isinstance(e, TaskScheduled)]
        if tasks:
            now += timedelta(seconds=1)
            for task in tasks:
                inbound.append(_answered(task, answer(task), now))
        elif timers:
            due = min(timers, key=lambda t: t.fire_at)
            now = max(now, due.fire_at)
            inbound.append(TimerFired(timestamp=now, timer_id=due.event_id, fire_at=due.fire_at))
        elif to_raise:
            now += timedelta(seconds=60)
            event_name, data = to_raise.pop(0)
            inbound.append(EventRaised(timestamp=now, name=event_name, input=data))
        else:
            raise AssertionError("the orchestrator waits for nothing the driver can answer")
    raise AssertionError(f"not finished after {most_episodes} episodes")


def _answered(task: TaskScheduled, outcome: Any, now: Any) -> HistoryEvent:
    if isinstance(outcome, FailureDetails):
        return TaskFailed(timestamp=now, task_scheduled_id=task.event_id, failure=outcome)
    return TaskCompleted(timestamp=now, task_scheduled_id=task.event_id, result=outcome)
