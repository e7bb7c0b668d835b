"""What the orchestrator keeps of one entity between batches (ADR 38): its executor (state,
lock holder, queue), its seq, and the message ids of the requests it has recorded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contracts import OrchestrationStatus
from contracts.entities import EntityId
from durable.app import FunctionApp
from durable.store.events import StoredEvent
from engine import ENTITY_REQUESTS, EntityExecutor

if TYPE_CHECKING:  # the store's module imports the cache's, through the timers
    from durable.store.instances import InstanceRecord

ENTITY_EXECUTION_ID = "entity"
"""An entity has no executions: its row and its events all carry this one."""


@dataclass
class EntityState:
    """A cached entity. ``last_seq`` is its stream's last seq, which the row must still have
    when the next batch writes it; ``message_ids`` are the requests it has recorded (the
    duplicates it drops)."""

    instance_id: str
    name: str
    correlation_id: str
    last_seq: int
    executor: EntityExecutor
    message_ids: set[uuid.UUID] = field(default_factory=set)


def rehydrate_entity(
    functions: FunctionApp,
    row: InstanceRecord,
    state: object,
    history: list[StoredEvent],
) -> EntityState:
    """Rebuild an entity from its locked row, the state it holds and its recorded requests."""
    entity = EntityId.parse(row.instance_id)
    exists = row.status is OrchestrationStatus.RUNNING
    executor = EntityExecutor(
        functions.entities.get(entity.name.lower()),
        entity,
        state if exists else None,  # type: ignore[arg-type]
        exists,
    )
    requests = [stored.event for stored in history if isinstance(stored.event, ENTITY_REQUESTS)]
    executor.replay(requests)
    return EntityState(
        instance_id=row.instance_id,
        name=entity.name.lower(),
        correlation_id=row.correlation_id,
        last_seq=row.last_seq,
        executor=executor,
        message_ids={s.message_id for s in history if s.message_id is not None},
    )
