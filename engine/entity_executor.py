"""An entity's side: which of its requests run now, and running them (ADR 38).

An entity takes requests one at a time, in the order they arrive. While a critical section
holds it, it takes only that section's requests (its holder's calls and signals, and its
unlock) and queues the others, in order; the unlock frees it and the queue runs until a
lock request grants again. Which requests run, and when, follows from the order of the
requests alone, so an entity rebuilt from its recorded requests (``replay``) has the same
holder and queue it had, without running any operation again: their effects are in its
row, committed with their record.

Pure, like the orchestration engine: no I/O, clock or randomness. An operation runs on a copy
of the state; one that raises, or leaves a state or result that is not JSON, keeps the state
it found and answers with its failure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import JsonValue

from contracts import FailureDetails
from contracts.entities import EntityId
from contracts.history import (
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityUnlockSent,
)
from contracts.values import to_json_value
from durable.entities import EntityContext

EntityFunction = Callable[[EntityContext], Any]
EntityRequest = (
    EntityOperationSignaled | EntityOperationCalled | EntityLockRequested | EntityUnlockSent
)
ENTITY_REQUESTS = (
    EntityOperationSignaled,
    EntityOperationCalled,
    EntityLockRequested,
    EntityUnlockSent,
)


@dataclass(frozen=True)
class OperationOutcome:
    """An operation ran: its result, or why it failed (the state is then unchanged)."""

    request: EntityOperationSignaled | EntityOperationCalled
    result: JsonValue = None
    failure: FailureDetails | None = None


@dataclass(frozen=True)
class LockOutcome:
    """This entity's part of a lock request is done: forward it to the next entity of its
    set, or tell the orchestration that it holds them all."""

    request: EntityLockRequested


EntityEffect = OperationOutcome | LockOutcome


@dataclass(frozen=True)
class LockHolder:
    critical_section_id: str
    instance_id: str


class EntityExecutor:
    """One entity: its state, its lock holder and its queue, driven by its requests."""

    def __init__(
        self, function: EntityFunction | None, entity: EntityId, state: JsonValue, exists: bool
    ) -> None:
        self._function = function
        self.entity = entity
        self.state = state if exists else None
        self.exists = exists
        self.holder: LockHolder | None = None
        self.queue: deque[EntityRequest] = deque()
        # Sections that ended before their lock request reached this entity (the
        # orchestration ended while it waited): their request is passed on, not granted.
        self._released_early: set[str] = set()

    def replay(self, requests: Iterable[EntityRequest]) -> None:
        """Rebuild the holder and the queue from the recorded requests (no operation runs:
        the state they left is the row's)."""
        for request in requests:
            self._take(request, run=False)

    def process(self, request: EntityRequest) -> list[EntityEffect]:
        """Take a new request: what it, and whatever it frees from the queue, lead to."""
        return self._take(request, run=True)

    def _take(self, request: EntityRequest, *, run: bool) -> list[EntityEffect]:
        effects: list[EntityEffect] = []
        if self.holder is not None and not self._from_holder(request):
            if isinstance(request, EntityUnlockSent):
                self._released_early.add(request.critical_section_id)
            else:
                self.queue.append(request)
            return effects
        self._handle(request, run, effects)
        return effects

    def _from_holder(self, request: EntityRequest) -> bool:
        assert self.holder is not None
        match request:
            case EntityUnlockSent(critical_section_id=section):
                return section == self.holder.critical_section_id
            case EntityOperationCalled(parent=parent):
                return parent is not None and parent.instance_id == self.holder.instance_id
            case EntityOperationSignaled(sender=sender):
                return sender == self.holder.instance_id
            case _:
                return False

    def _handle(self, request: EntityRequest, run: bool, effects: list[EntityEffect]) -> None:
        match request:
            case EntityUnlockSent(critical_section_id=section):
                if self.holder is None or self.holder.critical_section_id != section:
                    self._released_early.add(section)
                    return
                self.holder = None
                while self.queue and self.holder is None:
                    self._handle(self.queue.popleft(), run, effects)
            case EntityLockRequested(critical_section_id=section, parent=parent):
                if section in self._released_early:
                    self._released_early.discard(section)
                elif parent is not None:
                    self.holder = LockHolder(section, parent.instance_id)
                effects.append(LockOutcome(request))
            case EntityOperationSignaled() | EntityOperationCalled():
                if run:
                    effects.append(self._run(request))

    def _run(self, request: EntityOperationSignaled | EntityOperationCalled) -> OperationOutcome:
        entity_id = self.entity.instance_id
        if self._function is None:
            return OperationOutcome(
                request,
                failure=FailureDetails(
                    error_type="EntityNotFoundError",
                    message=f"no entity function {self.entity.name!r} is registered "
                    "in this deployment",
                    is_non_retriable=True,
                ),
            )
        context = EntityContext(
            self.entity, self.state, self.exists, request.operation, request.input
        )
        try:
            returned = self._function(context)
            state, exists = context.outcome_state
            state = to_json_value(state, f"the state of entity {entity_id!r}")
            result = to_json_value(
                context.outcome_result(returned),
                f"the result of operation {request.operation!r} on {entity_id!r}",
            )
        except Exception as error:
            return OperationOutcome(request, failure=FailureDetails.from_exception(error))
        self.state, self.exists = state, exists
        return OperationOutcome(request, result)
