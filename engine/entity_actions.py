"""The actions orchestrator code takes towards entities, and how replay matches them.

Each becomes one history event, sent on to the entity as a message (ADR 38): a call, a
signal, a critical section's lock request (to the first entity of its set) and its unlocks.
On replay the kind, the entity and the operation identify a step; inputs are not compared,
as for activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from contracts import HistoryEvent
from contracts.history import (
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityUnlockSent,
)

EntityActionEvent = (
    EntityOperationCalled | EntityOperationSignaled | EntityLockRequested | EntityUnlockSent
)
ENTITY_ACTION_EVENTS = (
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityLockRequested,
    EntityUnlockSent,
)


@dataclass(frozen=True)
class CallEntity:
    id: int
    target: str
    operation: str
    input: JsonValue

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityOperationCalled(
            event_id=self.id,
            timestamp=timestamp,
            target=self.target,
            operation=self.operation,
            input=self.input,
        )

    def describe(self) -> str:
        return f"call_entity({self.target!r}, {self.operation!r})"


@dataclass(frozen=True)
class SignalEntity:
    id: int
    target: str
    operation: str
    input: JsonValue

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityOperationSignaled(
            event_id=self.id,
            timestamp=timestamp,
            target=self.target,
            operation=self.operation,
            input=self.input,
        )

    def describe(self) -> str:
        return f"signal_entity({self.target!r}, {self.operation!r})"


@dataclass(frozen=True)
class RequestLocks:
    id: int
    critical_section_id: str
    lock_set: tuple[str, ...]

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityLockRequested(
            event_id=self.id,
            timestamp=timestamp,
            critical_section_id=self.critical_section_id,
            lock_set=list(self.lock_set),
        )

    def describe(self) -> str:
        return f"lock({list(self.lock_set)!r})"


@dataclass(frozen=True)
class SendUnlock:
    id: int
    critical_section_id: str
    target: str

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityUnlockSent(
            event_id=self.id,
            timestamp=timestamp,
            critical_section_id=self.critical_section_id,
            target=self.target,
        )

    def describe(self) -> str:
        return f"the release of {self.target!r}"


EntityAction = CallEntity | SignalEntity | RequestLocks | SendUnlock


def describe_entity_event(event: EntityActionEvent) -> str:
    """A recorded entity action, in the words ``describe`` uses."""
    match event:
        case EntityOperationCalled(target=target, operation=operation):
            what = f"call_entity({target!r}, {operation!r})"
        case EntityOperationSignaled(target=target, operation=operation):
            what = f"signal_entity({target!r}, {operation!r})"
        case EntityLockRequested(lock_set=lock_set):
            what = f"lock({lock_set!r})"
        case EntityUnlockSent(target=target):
            what = f"the release of {target!r}"
    return f"{event.event_type} #{event.event_id} {what}"


def entity_action_matches(action: object, event: HistoryEvent) -> bool:
    """Whether the recorded ``event`` is what the entity ``action`` would have recorded."""
    match action, event:
        case CallEntity(target=t, operation=o), EntityOperationCalled(target=rt, operation=ro):
            return (t, o) == (rt, ro)
        case SignalEntity(target=t, operation=o), EntityOperationSignaled(target=rt, operation=ro):
            return (t, o) == (rt, ro)
        case RequestLocks(lock_set=lock_set), EntityLockRequested(lock_set=recorded):
            return list(lock_set) == recorded
        case SendUnlock(target=target), EntityUnlockSent(target=recorded):
            return target == recorded
        case _:
            return False
