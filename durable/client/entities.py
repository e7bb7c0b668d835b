"""The client's side of entities (ADR 38): signal them, read their state, list them, and
clean their storage. Names follow azure-functions-durable's ``DurableOrchestrationClient``."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts import (
    EntityOperationSignaled,
    EntityUnlockSent,
    Envelope,
    OrchestratorMessage,
    Topology,
)
from contracts.entities import EntityId
from contracts.limits import check_short_string
from contracts.values import to_json_value
from durable.broker import OutgoingMessage, Publisher
from durable.store.database import in_transaction
from durable.store.entities import (
    EntityRecord,
    list_entities,
    orphaned_locks,
    read_entity,
    remove_empty_entities_txn,
)

SIGNAL_PATIENCE_SECONDS = 10.0


@dataclass(frozen=True)
class EntityStateResponse:
    """``read_entity_state``'s answer (azure-functions-durable's ``EntityStateResponse``)."""

    entity_exists: bool
    entity_state: Any = None


@dataclass(frozen=True)
class EntityPage:
    """A page of entities; pass ``continuation_token`` back for the next one."""

    entities: list[EntityRecord]
    continuation_token: str | None


@dataclass(frozen=True)
class CleanEntityStorageResult:
    """What ``clean_entity_storage`` did."""

    num_of_empty_entities_removed: int
    num_of_orphaned_locks_removed: int


def encode_entity_token(entity_id: str) -> str:
    return base64.urlsafe_b64encode(entity_id.encode()).decode()


def decode_entity_token(token: str) -> str:
    """Raises ``ValueError`` for a token this client did not produce."""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"invalid continuation token {token!r}") from error


class EntityClient:
    """Entity operations of ``DurableClient`` (which provides the pool, publisher and
    topology)."""

    _pool: asyncpg.Pool
    _publisher: Publisher
    _topology: Topology

    async def signal_entity(
        self, entity_id: Any, operation_name: str, operation_input: Any = None
    ) -> None:
        """Send ``operation_name`` with ``operation_input`` to the entity (``EntityId``),
        one-way; the entity is created by its first operation. Returns once the broker has
        the signal."""
        entity = EntityId.of(entity_id)
        check_short_string(operation_name, "the operation name")
        target = entity.instance_id
        data = to_json_value(operation_input, f"the input of operation {operation_name!r}")
        now = datetime.now(UTC)
        signal = EntityOperationSignaled(
            timestamp=now, target=target, operation=operation_name, input=data
        )
        message = OrchestratorMessage(
            envelope=Envelope(
                message_id=uuid.uuid4(),
                instance_id=target,
                correlation_id=uuid.uuid4().hex,
                type=signal.event_type,
                sent_at=now,
            ),
            body=signal,
        )
        exchange, routing_key = self._topology.orchestrator_route(target)
        await self._publisher.publish_patiently(
            OutgoingMessage.of(message, exchange, routing_key), within=SIGNAL_PATIENCE_SECONDS
        )

    async def read_entity_state(self, entity_id: Any) -> EntityStateResponse:
        """The entity's state, or ``entity_exists=False`` when it has none."""
        record = await read_entity(self._pool, EntityId.of(entity_id))
        if record is None:
            return EntityStateResponse(False)
        return EntityStateResponse(True, record.state)

    async def get_entity(self, entity_id: Any) -> EntityRecord | None:
        """The entity's record (state, lock holder, last change), or None without state."""
        return await read_entity(self._pool, EntityId.of(entity_id))

    async def list_entities(
        self,
        name: str | None = None,
        *,
        page_size: int = 100,
        continuation_token: str | None = None,
        include_deleted: bool = False,
    ) -> EntityPage:
        """A page of entities (of entity function ``name``, or all), in id order."""
        after = decode_entity_token(continuation_token) if continuation_token else None
        records = await list_entities(
            self._pool,
            name,
            after=after,
            limit=page_size + 1,
            include_deleted=include_deleted,
        )
        more = len(records) > page_size
        records = records[:page_size]
        token = encode_entity_token(records[-1].entity_id.instance_id) if more else None
        return EntityPage(records, token)

    async def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        """Delete entities without state that nobody holds, and free entities held by a
        critical section whose orchestration has ended (it cannot release them any more)."""
        removed = 0
        if remove_empty_entities:
            removed = await in_transaction(self._pool, remove_empty_entities_txn)
        released = 0
        if release_orphaned_locks:
            for lock in await orphaned_locks(self._pool):
                now = datetime.now(UTC)
                unlock = EntityUnlockSent(
                    timestamp=now,
                    critical_section_id=lock.critical_section_id,
                    target=lock.entity_id,
                    sender=lock.holder,
                )
                message = OrchestratorMessage(
                    envelope=Envelope(
                        message_id=uuid.uuid4(),
                        instance_id=lock.entity_id,
                        correlation_id=lock.correlation_id,
                        type=unlock.event_type,
                        sent_at=now,
                    ),
                    body=unlock,
                )
                exchange, routing_key = self._topology.orchestrator_route(lock.entity_id)
                await self._publisher.publish_patiently(
                    OutgoingMessage.of(message, exchange, routing_key),
                    within=SIGNAL_PATIENCE_SECONDS,
                )
                released += 1
        return CleanEntityStorageResult(removed, released)
