"""Rewinding a Failed execution: the history it restarts from, and the work left open in it.

A rewound execution is the failed one's history without the failures that ended it: the
``ExecutionFailed`` event, and each ``TaskFailed`` / ``SubOrchestrationInstanceFailed`` whose
failure reached the code (failures a retry policy answered with another attempt stay, so the
retries replay as they happened). Replaying it leaves those calls open; running them again is
the rewind. Completed calls keep their results and are not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from contracts import (
    ExecutionFailed,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
)
from engine.executor import OrchestrationExecutor, OrchestratorFunction


def rewound_history(
    orchestrator: OrchestratorFunction,
    instance_id: str,
    history: Sequence[HistoryEvent],
    new_execution_id: str,
) -> list[HistoryEvent]:
    """The failed execution's ``history`` as a new execution's, without its final failures."""
    executor = OrchestrationExecutor(orchestrator, instance_id)
    executor.replay(history)
    final = executor.final_failures()
    rewound: list[HistoryEvent] = []
    for event in history:
        if isinstance(event, ExecutionFailed):
            continue
        if isinstance(event, TaskFailed | SubOrchestrationInstanceFailed) and (
            event.task_scheduled_id in final
        ):
            continue
        if isinstance(event, ExecutionStarted):
            event = event.model_copy(update={"execution_id": new_execution_id})
        rewound.append(event)
    return rewound


@dataclass
class OpenWork:
    """Calls a history has made that have no outcome in it yet."""

    activities: list[TaskScheduled] = field(default_factory=list)
    timers: list[TimerCreated] = field(default_factory=list)
    children: list[SubOrchestrationInstanceCreated] = field(default_factory=list)


def open_work(executor: OrchestrationExecutor, history: Sequence[HistoryEvent]) -> OpenWork:
    """The calls recorded in ``history`` that ``executor`` (replayed over it) still waits for:
    what to dispatch again for a rewound execution. Cancelled timers are left out."""
    waiting = executor.open_call_ids()
    work = OpenWork()
    for event in history:
        if event.event_id not in waiting:
            continue
        match event:
            case TaskScheduled():
                work.activities.append(event)
            case TimerCreated():
                work.timers.append(event)
            case SubOrchestrationInstanceCreated():
                work.children.append(event)
    return work
