"""History factories for engine tests: build an instance's event stream step by step.

history = HistoryBuilder()
history.start("hello_cities", input=None)
history.scheduled(0, "say_hello", "Tokyo")
history.episode().completed(0, "Hello Tokyo!")
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    FailureDetails,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class HistoryBuilder:
    """Appends events with a clock that advances one second per episode."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.events: list[HistoryEvent] = []

    def add(self, event: HistoryEvent) -> HistoryBuilder:
        self.events.append(event)
        return self

    def episode(self, seconds: float = 1.0) -> HistoryBuilder:
        """Open a new episode (an ``OrchestratorStarted``), ``seconds`` after the last."""
        if self.events:
            self.now += timedelta(seconds=seconds)
        return self.add(OrchestratorStarted(timestamp=self.now))

    def start(self, name: str, input: Any = None, execution_id: str = "e1") -> HistoryBuilder:
        self.episode()
        return self.add(
            ExecutionStarted(timestamp=self.now, name=name, execution_id=execution_id, input=input)
        )

    def scheduled(self, event_id: int, name: str, input: Any = None) -> HistoryBuilder:
        return self.add(
            TaskScheduled(timestamp=self.now, event_id=event_id, name=name, input=input)
        )

    def completed(self, task_id: int, result: Any = None) -> HistoryBuilder:
        return self.add(TaskCompleted(timestamp=self.now, task_scheduled_id=task_id, result=result))

    def failed(
        self, task_id: int, error_type: str = "ValueError", message: str = "boom"
    ) -> HistoryBuilder:
        return self.add(
            TaskFailed(
                timestamp=self.now,
                task_scheduled_id=task_id,
                failure=FailureDetails(error_type=error_type, message=message),
            )
        )

    def timer_created(self, event_id: int, fire_at: datetime) -> HistoryBuilder:
        return self.add(TimerCreated(timestamp=self.now, event_id=event_id, fire_at=fire_at))

    def timer_fired(self, timer_id: int, fire_at: datetime) -> HistoryBuilder:
        return self.add(TimerFired(timestamp=self.now, timer_id=timer_id, fire_at=fire_at))

    def raised(self, name: str, data: Any = None) -> HistoryBuilder:
        return self.add(EventRaised(timestamp=self.now, name=name, input=data))

    def execution_completed(self, result: Any = None) -> HistoryBuilder:
        return self.add(ExecutionCompleted(timestamp=self.now, result=result))

    def terminated(self, reason: Any = None) -> HistoryBuilder:
        return self.add(ExecutionTerminated(timestamp=self.now, reason=reason))

    def split(self) -> tuple[list[HistoryEvent], list[HistoryEvent]]:
        """(everything before the last episode, the last episode): past and new events."""
        last = max(i for i, e in enumerate(self.events) if isinstance(e, OrchestratorStarted))
        return self.events[:last], self.events[last:]
