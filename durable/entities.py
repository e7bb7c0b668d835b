"""Durable entities in the SDK: the context an entity function receives, and the critical
section an orchestration holds while it has entities locked (ADR 38).

Names follow azure-functions-durable (``DurableEntityContext``, ``EntityId``), so entity
functions written for it run unchanged::

    @app.entity
    def counter(ctx: EntityContext) -> None:
        value = ctx.get_state(lambda: 0)
        if ctx.operation_name == "add":
            ctx.set_state(value + ctx.get_input())
        elif ctx.operation_name == "get":
            ctx.set_result(value)
        elif ctx.operation_name == "delete":
            ctx.destruct_on_exit()

An entity function runs one operation at a time, inside the orchestrator's batch: it must be
quick and do no I/O. An operation that raises leaves the state as it found it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from pydantic import TypeAdapter

from contracts.entities import EntityId
from contracts.typed import adapter_for, checked

_UNSET: Any = object()


class EntityContext:
    """What an entity function receives for one operation (azure-functions-durable's
    ``DurableEntityContext``)."""

    def __init__(
        self, entity: EntityId, state: Any, exists: bool, operation: str, input_: Any
    ) -> None:
        self._entity = entity
        # A copy: an operation that changes the state in place and then raises must leave
        # the entity's state as it was.
        self._state = copy.deepcopy(state) if exists else None
        self._exists = exists
        self._operation = operation
        self._input = input_
        self._result: Any = _UNSET
        self._written = False
        self._destructed = False

    @property
    def entity_name(self) -> str:
        """The entity function's name (as the entity id spells it: lower-cased)."""
        return self._entity.name.lower()

    @property
    def entity_key(self) -> str:
        return self._entity.key

    @property
    def entity_id(self) -> EntityId:
        return self._entity

    @property
    def operation_name(self) -> str:
        """The operation asked for (``signal_entity``'s or ``call_entity``'s ``operation``)."""
        return self._operation

    @property
    def is_newly_constructed(self) -> bool:
        """True when the entity had no state before this operation."""
        return not self._exists

    def get_input(self, expected_type: Any = None) -> Any:
        """The operation's input, or validated into ``expected_type`` (a pydantic model, or a
        type involving one) when given."""
        if expected_type is None:
            return self._input
        adapter = adapter_for(expected_type) or TypeAdapter(expected_type)
        return checked(adapter, self._input, f"entity {self.entity_name!r}", "input")

    def get_state(self, initializer: Callable[[], Any] | None = None) -> Any:
        """The entity's state; when it has none, ``initializer()`` (or None without one)."""
        if self._state is None and initializer is not None:
            if not callable(initializer):
                raise TypeError("get_state's initializer must be callable")
            return initializer()
        return self._state

    def set_state(self, state: Any) -> None:
        """Replace the entity's state (a JSON value), kept once the operation returns."""
        self._state = state
        self._written = True
        self._destructed = False

    def set_result(self, result: Any) -> None:
        """What ``call_entity`` answers with (a JSON value)."""
        self._result = result

    def destruct_on_exit(self) -> None:
        """Delete the entity (its state) when the operation returns."""
        self._destructed = True

    # --- read by the runtime ------------------------------------------------------------

    @property
    def outcome_state(self) -> tuple[Any, bool]:
        """The state the operation leaves, and whether the entity still exists."""
        if self._destructed:
            return None, False
        return self._state, self._exists or self._written

    def outcome_result(self, returned: Any) -> Any:
        """The operation's result: what ``set_result`` was given, else what it returned."""
        return returned if self._result is _UNSET else self._result


DurableEntityContext = EntityContext
"""azure-functions-durable's name for the entity context."""


class CriticalSection:
    """The locks an orchestration holds on a set of entities, from ``context.lock`` until
    ``release()``, the end of a ``with`` block, or the end of the orchestration::

        with (yield ctx.lock([source, target])):
            balance = yield ctx.call_entity(source, "get")
            ...
    """

    def __init__(self, entities: Sequence[EntityId], release: Callable[[], None]) -> None:
        self.entities = tuple(entities)
        self._release = release

    def release(self) -> None:
        """Unlock every entity of the section (no effect after the first time)."""
        self._release()

    def __enter__(self) -> CriticalSection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
