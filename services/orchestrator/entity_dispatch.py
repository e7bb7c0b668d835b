"""What an orchestration's entity actions send: each recorded request, addressed to its
entity's partition, with where to answer (ADR 38)."""

from __future__ import annotations

from datetime import datetime

from contracts import (
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityUnlockSent,
    Envelope,
    OrchestratorMessage,
    ParentInstance,
    Topology,
    deterministic_message_id,
)
from durable.broker import OutgoingMessage
from services.orchestrator.cache import InstanceState

EntityActionEvent = (
    EntityOperationCalled | EntityOperationSignaled | EntityLockRequested | EntityUnlockSent
)


def entity_request(
    topology: Topology, state: InstanceState, event: EntityActionEvent, now: datetime
) -> OutgoingMessage:
    """The message that carries a recorded entity action to its entity."""
    parent = ParentInstance(
        instance_id=state.instance_id,
        execution_id=state.execution_id,
        task_scheduled_id=event.event_id,
        name=state.name,
    )
    body: EntityActionEvent
    match event:
        case EntityOperationCalled():
            target, body = event.target, event.model_copy(update={"parent": parent})
        case EntityOperationSignaled():
            target, body = event.target, event.model_copy(update={"sender": state.instance_id})
        case EntityLockRequested():
            target = event.lock_set[0]
            body = event.model_copy(update={"parent": parent, "position": 0})
        case EntityUnlockSent():
            target, body = event.target, event.model_copy(update={"sender": state.instance_id})
    message = OrchestratorMessage(
        envelope=Envelope(
            message_id=deterministic_message_id(
                state.instance_id, state.execution_id, "entity", event.event_id
            ),
            instance_id=target,
            correlation_id=state.correlation_id,
            type=body.event_type,
            sent_at=now,
        ),
        body=body,
    )
    exchange, routing_key = topology.orchestrator_route(target)
    return OutgoingMessage.of(message, exchange, routing_key)
