"""An orchestration's side of entities: its calls and signals, and its critical section.

Calls are open calls like activities (answered by ``EntityOperationCompleted`` or
``EntityOperationFailed``); a signal is an action and nothing more. A critical section asks
for its locks in the global order of entity ids (ADR 38), holds them until released, and is
released by the engine when the execution ends, so no ended orchestration keeps an entity
locked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.entities import EntityId
from contracts.values import to_json_value
from durable.entities import CriticalSection
from durable.errors import LockingRulesViolationError
from durable.tasks import EntityCallTask, LockTask, Task
from engine.actions import PendingActions
from engine.entity_actions import CallEntity, RequestLocks, SendUnlock, SignalEntity
from engine.open_calls import OpenCalls

_CRITICAL_SECTION_NAMESPACE = uuid.UUID("5b0f3f8e-9a57-4c1e-8d2a-2f4b7e6c9d10")


@dataclass
class _Section:
    id: str
    lock_set: tuple[str, ...]


class EntityCalls:
    """Turns the code's entity requests into actions and open calls."""

    def __init__(
        self,
        actions: PendingActions,
        calls: OpenCalls,
        identity: Callable[[], tuple[str, str]],
    ) -> None:
        self._actions = actions
        self._calls = calls
        self._identity = identity  # (instance id, execution id)
        self._held: _Section | None = None

    @property
    def is_locked(self) -> bool:
        return self._held is not None

    def call(self, entity: Any, operation: str, input_: Any) -> Task[Any]:
        target = EntityId.of(entity).instance_id
        data = to_json_value(input_, f"the input of operation {operation!r} on {target!r}")
        if self._held is not None and target not in self._held.lock_set:
            raise LockingRulesViolationError(
                f"call_entity({target!r}) inside a critical section that holds "
                f"{list(self._held.lock_set)}: only locked entities may be called"
            )
        task_id = self._actions.next_id()
        description = f"entity operation {operation!r} on {target!r}"
        task: EntityCallTask[Any] = EntityCallTask(task_id, description, target)
        self._actions.add(CallEntity(task_id, target, operation, data))
        self._calls.add(task)
        return task

    def signal(self, entity: Any, operation: str, input_: Any) -> Task[None]:
        target = EntityId.of(entity).instance_id
        data = to_json_value(input_, f"the input of operation {operation!r} on {target!r}")
        self._actions.add(SignalEntity(self._actions.next_id(), target, operation, data))
        sent: Task[None] = Task()
        sent._complete(None)
        return sent

    def lock(self, entities: Sequence[Any]) -> Task[Any]:
        if self._held is not None:
            raise LockingRulesViolationError(
                f"lock() inside a critical section that holds {list(self._held.lock_set)}: "
                "release it first"
            )
        if isinstance(entities, str) or not isinstance(entities, Sequence):
            entities = [entities]
        lock_set = tuple(sorted({EntityId.of(entity).instance_id for entity in entities}))
        if not lock_set:
            raise LockingRulesViolationError("lock() needs at least one entity")
        task_id = self._actions.next_id()
        instance_id, execution_id = self._identity()
        section = _Section(
            uuid.uuid5(_CRITICAL_SECTION_NAMESPACE, f"{instance_id}|{execution_id}|{task_id}").hex,
            lock_set,
        )
        task: LockTask[CriticalSection] = LockTask(task_id, f"lock on {list(lock_set)}")
        handle = CriticalSection(
            [EntityId.parse(target) for target in lock_set], lambda: self._release(section)
        )
        task.converter = lambda _: handle
        self._held = section
        self._actions.add(RequestLocks(task_id, section.id, lock_set))
        self._calls.add(task)
        return task

    def release_on_end(self) -> None:
        """The execution ends: unlock whatever it holds (or has asked to lock)."""
        if self._held is not None:
            self._release(self._held)

    def _release(self, section: _Section) -> None:
        if self._held is not section:
            return
        self._held = None
        for target in section.lock_set:
            self._actions.add(SendUnlock(self._actions.next_id(), section.id, target))
