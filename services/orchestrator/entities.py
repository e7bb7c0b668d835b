"""Running entities inside a partition's batch (ADR 38).

The handler gives the groups of messages addressed to entities (``@name@key``) to the
``EntityRunner``. A cached entity is run with no read; the others are locked and loaded in
the batch's transaction (their row, its state, their recorded requests). Each request not
seen before is appended to the entity's stream with its message id, run by the entity's
executor, and its effects become outbox messages: the answer to a call, a lock request
forwarded to the next entity of its set, or the grant to the orchestration. The entity's row
(state, lock holder, seq) is updated in the same statement as everything else the batch
writes, so a state change and its answer are committed together, or not at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog

from contracts import (
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    Envelope,
    InboundEvent,
    OrchestrationStatus,
    OrchestratorMessage,
    Topology,
    deterministic_message_id,
)
from contracts.entities import EntityId
from durable.app import FunctionApp
from durable.broker import OutgoingMessage
from durable.store.batch import InstanceUpdate, NewEvent
from durable.store.database import Connection
from durable.store.entities import entity_states_txn
from durable.store.events import load_histories_txn
from durable.store.instances import NewInstance, insert_instances_txn, lock_instances_txn
from engine import ENTITY_REQUESTS, EntityEffect, LockOutcome
from services.orchestrator.entity_state import ENTITY_EXECUTION_ID, EntityState, rehydrate_entity
from services.orchestrator.episode import Batch, RefusedMessage

log = structlog.get_logger(__name__)


class EntityRunner:
    """Runs the requests a batch holds for entities, adding what they write to the batch."""

    def __init__(self, functions: FunctionApp, topology: Topology) -> None:
        self._functions = functions
        self._topology = topology

    async def decide_txn(
        self,
        connection: Connection,
        groups: dict[str, list[OrchestratorMessage]],
        now: datetime,
        batch: Batch,
    ) -> None:
        """Lock, load (or create) and run the entities of ``groups``, none of them cached."""
        ids = sorted(groups)
        rows = await lock_instances_txn(connection, ids)
        missing = [
            NewInstance(
                instance_id=entity_id,
                name=EntityId.parse(entity_id).name.lower(),
                execution_id=ENTITY_EXECUTION_ID,
                correlation_id=groups[entity_id][0].envelope.correlation_id,
                input=None,
                created_at=now,
            )
            for entity_id in ids
            if entity_id not in rows
        ]
        if missing:
            await insert_instances_txn(connection, missing)
            rows |= await lock_instances_txn(connection, [m.instance_id for m in missing])
        states = await entity_states_txn(connection, ids)
        # A new entity (the first request, the common case here) has no events yet.
        stored = {
            i: rows[i].execution_start_seq
            for i in ids
            if rows[i].last_seq >= rows[i].execution_start_seq
        }
        histories = await load_histories_txn(connection, stored)
        for entity_id in ids:
            history = histories.get(entity_id, [])
            state = rehydrate_entity(
                self._functions, rows[entity_id], states.get(entity_id), history
            )
            self.run(state, groups[entity_id], now, batch)

    def run(
        self,
        state: EntityState,
        messages: Sequence[OrchestratorMessage],
        now: datetime,
        batch: Batch,
    ) -> None:
        """Record and run the new requests of ``messages`` on the entity ``state``."""
        bound = log.bind(instance_id=state.instance_id)
        expected = state.last_seq
        executor = state.executor
        recorded = False
        for message in messages:
            message_id = message.envelope.message_id
            body = message.body
            if not isinstance(body, ENTITY_REQUESTS):
                reason = f"{body.event_type} sent to entity {state.instance_id!r}"
                bound.warning("message.never_scheduled", reason=reason)
                batch.refused.append(RefusedMessage(message, reason))
                continue
            if message_id in state.message_ids:
                bound.debug("message.dropped", message_id=str(message_id), reason="duplicate")
                continue
            state.message_ids.add(message_id)
            state.last_seq += 1
            batch.events.append(
                NewEvent(state.instance_id, state.last_seq, ENTITY_EXECUTION_ID, body, message_id)
            )
            recorded = True
            for effect in executor.process(body):
                self._effect(state, effect, now, batch, bound)
        batch.entities.append(state)
        if not recorded:
            return
        batch.expected_seqs.setdefault(state.instance_id, expected)
        holder = executor.holder
        batch.put_update(
            InstanceUpdate(
                instance_id=state.instance_id,
                status=(
                    OrchestrationStatus.RUNNING
                    if executor.exists
                    else OrchestrationStatus.COMPLETED
                ),
                custom_status=(
                    None
                    if holder is None
                    else {
                        "lockedBy": holder.instance_id,
                        "criticalSection": holder.critical_section_id,
                    }
                ),
                output=executor.state,
                failure=None,
                last_seq=state.last_seq,
                updated_at=now,
                completed_at=None,
            )
        )

    def _effect(
        self,
        state: EntityState,
        effect: EntityEffect,
        now: datetime,
        batch: Batch,
        bound: structlog.typing.FilteringBoundLogger,
    ) -> None:
        if isinstance(effect, LockOutcome):
            batch.messages.append(self._lock_step(state, effect.request, now))
            return
        request = effect.request
        if not isinstance(request, EntityOperationCalled) or request.parent is None:
            if effect.failure is not None:
                bound.warning(
                    "entity.signal_failed",
                    operation=request.operation,
                    error=f"{effect.failure.error_type}: {effect.failure.message}",
                )
            return
        parent = request.parent
        answer: InboundEvent
        if effect.failure is None:
            answer = EntityOperationCompleted(
                timestamp=now, task_scheduled_id=parent.task_scheduled_id, result=effect.result
            )
        else:
            answer = EntityOperationFailed(
                timestamp=now, task_scheduled_id=parent.task_scheduled_id, failure=effect.failure
            )
        message_id = deterministic_message_id(
            parent.instance_id, parent.execution_id, "entity-answer", parent.task_scheduled_id
        )
        batch.messages.append(
            self._message(parent.instance_id, parent.execution_id, state, answer, message_id, now)
        )

    def _lock_step(
        self, state: EntityState, request: EntityLockRequested, now: datetime
    ) -> OutgoingMessage:
        """The lock request on to the next entity of its set, or the grant to its holder."""
        parent = request.parent
        assert parent is not None
        following = request.position + 1
        if following < len(request.lock_set):
            target = request.lock_set[following]
            forwarded = request.model_copy(update={"position": following, "timestamp": now})
            message_id = deterministic_message_id(
                parent.instance_id, request.critical_section_id, "lock", following
            )
            return self._message(target, None, state, forwarded, message_id, now)
        granted = EntityLockGranted(
            timestamp=now,
            task_scheduled_id=parent.task_scheduled_id,
            critical_section_id=request.critical_section_id,
        )
        message_id = deterministic_message_id(
            parent.instance_id, request.critical_section_id, "lock-granted"
        )
        return self._message(
            parent.instance_id, parent.execution_id, state, granted, message_id, now
        )

    def _message(
        self,
        instance_id: str,
        execution_id: str | None,
        state: EntityState,
        event: InboundEvent,
        message_id: uuid.UUID,
        now: datetime,
    ) -> OutgoingMessage:
        message = OrchestratorMessage(
            envelope=Envelope(
                message_id=message_id,
                instance_id=instance_id,
                execution_id=execution_id,
                correlation_id=state.correlation_id,
                type=event.event_type,
                sent_at=now,
            ),
            body=event,
        )
        exchange, routing_key = self._topology.orchestrator_route(instance_id)
        return OutgoingMessage.of(message, exchange, routing_key)
