"""Actions: what orchestrator code asks for, before the history records it.

Each action has a sequence number (its ``event_id``) and becomes exactly one history event.
During replay the engine matches each recorded event to the action of the same id and checks
that the code still asks for the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from contracts import (
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from durable.errors import NonDeterminismError
from engine.entity_actions import (
    ENTITY_ACTION_EVENTS,
    EntityAction,
    EntityActionEvent,
    describe_entity_event,
    entity_action_matches,
)


@dataclass(frozen=True)
class ScheduleTask:
    id: int
    name: str
    input: JsonValue
    attempt: int = 1
    timeout_seconds: float | None = None

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return TaskScheduled(
            event_id=self.id,
            timestamp=timestamp,
            name=self.name,
            input=self.input,
            attempt=self.attempt,
            timeout_seconds=self.timeout_seconds,
        )

    def describe(self) -> str:
        return f"call_activity({self.name!r})"


@dataclass(frozen=True)
class CreateTimer:
    id: int
    fire_at: datetime

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return TimerCreated(event_id=self.id, timestamp=timestamp, fire_at=self.fire_at)

    def describe(self) -> str:
        return f"create_timer({self.fire_at.isoformat()})"


@dataclass(frozen=True)
class CreateSubOrchestration:
    id: int
    name: str
    instance_id: str
    input: JsonValue
    version: str | None = None

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return SubOrchestrationInstanceCreated(
            event_id=self.id,
            timestamp=timestamp,
            name=self.name,
            instance_id=self.instance_id,
            input=self.input,
            version=self.version,
        )

    def describe(self) -> str:
        return f"call_sub_orchestrator({self.name!r})"


Action = ScheduleTask | CreateTimer | CreateSubOrchestration | EntityAction
RecordedAction = TaskScheduled | TimerCreated | SubOrchestrationInstanceCreated | EntityActionEvent


def describe_event(event: HistoryEvent) -> str:
    """A short description of a recorded action event, in the words ``Action.describe`` uses."""
    match event:
        case TaskScheduled(name=name):
            return f"TaskScheduled #{event.event_id} call_activity({name!r})"
        case TimerCreated(fire_at=fire_at):
            return f"TimerCreated #{event.event_id} create_timer({fire_at.isoformat()})"
        case SubOrchestrationInstanceCreated(name=name):
            return (
                f"SubOrchestrationInstanceCreated #{event.event_id} call_sub_orchestrator({name!r})"
            )
        case _ if isinstance(event, ENTITY_ACTION_EVENTS):
            return describe_entity_event(event)
        case _:
            return f"{event.event_type} #{event.event_id}"


def matches(action: Action, event: HistoryEvent) -> bool:
    """Whether the recorded ``event`` is what ``action`` would have recorded.

    Inputs are not compared: an input may legitimately differ on replay (e.g. it was built
    from a value whose formatting changed); the kind and the name are what identify a step.
    Timers compare only the kind, because fire times are often computed from the clock.
    """
    match action, event:
        case ScheduleTask(name=name), TaskScheduled(name=recorded):
            return name == recorded
        case CreateTimer(), TimerCreated():
            return True
        case CreateSubOrchestration(name=name), SubOrchestrationInstanceCreated(name=recorded):
            return name == recorded
        case _:
            return entity_action_matches(action, event)


class PendingActions:
    """The actions the code has asked for that the history does not hold yet, numbered in
    the order they were asked for (the numbering is what replay matches against), and the
    timers the code has cancelled since the last decision."""

    def __init__(self) -> None:
        self._next_id = 0
        self._pending: dict[int, Action] = {}
        self._cancelled_timers: list[int] = []

    def next_id(self) -> int:
        action_id = self._next_id
        self._next_id += 1
        return action_id

    def add(self, action: Action) -> None:
        self._pending[action.id] = action

    def holds(self, action_id: int) -> bool:
        """Whether ``action_id`` was asked for and is not recorded yet."""
        return action_id in self._pending

    def match(
        self,
        instance_id: str,
        event: RecordedAction,
    ) -> None:
        """Settle the action a recorded ``event`` stands for; ``NonDeterminismError`` if the
        code did not ask for it, or asked for something else at that point."""
        action = self._pending.pop(event.event_id, None)
        if action is None:
            raise NonDeterminismError(
                instance_id,
                event.event_id,
                describe_event(event),
                "nothing at that point (the code did not schedule it)",
            )
        if not matches(action, event):
            raise NonDeterminismError(
                instance_id, event.event_id, describe_event(event), action.describe()
            )

    def take_events(self, timestamp: datetime) -> list[HistoryEvent]:
        """The events that record the actions still pending; none is pending afterwards."""
        events = [action.to_event(timestamp) for action in self._pending.values()]
        self._pending.clear()
        return events

    def drop(self) -> None:
        """Forget the actions not recorded: a failed execution dispatches nothing more."""
        self._pending.clear()

    def timer_cancelled(self, timer_id: int) -> None:
        self._cancelled_timers.append(timer_id)

    def take_cancelled_timers(self) -> list[int]:
        cancelled, self._cancelled_timers = self._cancelled_timers, []
        return cancelled
