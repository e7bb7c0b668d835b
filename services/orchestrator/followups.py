"""What an episode sets off beyond its own events: starting child instances, answering the
parent, terminating children, and moving an instance on to its next execution."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import JsonValue

from contracts import (
    Envelope,
    ExecutionStarted,
    ExecutionTerminated,
    FailureDetails,
    InboundEvent,
    OrchestrationStatus,
    OrchestratorMessage,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    Topology,
    deterministic_message_id,
)
from durable.broker import OutgoingMessage
from durable.store.database import Connection
from durable.store.instances import (
    NewInstance,
    delete_ended_instance_txn,
    insert_instances_txn,
    move_execution_txn,
    running_children_txn,
)
from engine import Decision


@dataclass(frozen=True)
class ChildStart:
    """A sub-orchestration to start, on behalf of ``parent``."""

    parent: ParentInstance
    name: str
    instance_id: str
    input: JsonValue
    correlation_id: str
    version: str | None = None
    traceparent: str | None = None
    """The parent's episode that started it: the child's episodes join its trace."""


@dataclass(frozen=True)
class Continuation:
    """An instance moving to a new execution (continue-as-new, rewind): the row points at
    ``execution_id``, whose first event is ``first_seq``.

    Attributes:
        input: the new execution's input; ``keep_input`` leaves the row's as it is.
        drop_earlier: drop the earlier executions' events (continue-as-new does, unless
            configured otherwise; a rewind keeps the failed execution for the record).
    """

    instance_id: str
    execution_id: str
    input: JsonValue
    first_seq: int
    keep_input: bool = False
    drop_earlier: bool = True


def _message(
    topology: Topology,
    instance_id: str,
    execution_id: str | None,
    correlation_id: str,
    event: InboundEvent,
    message_id: uuid.UUID,
    now: datetime,
    traceparent: str | None = None,
) -> OutgoingMessage:
    message = OrchestratorMessage(
        envelope=Envelope(
            message_id=message_id,
            instance_id=instance_id,
            execution_id=execution_id,
            correlation_id=correlation_id,
            type=event.event_type,
            sent_at=now,
            traceparent=traceparent,
        ),
        body=event,
    )
    exchange, routing_key = topology.orchestrator_route(instance_id)
    return OutgoingMessage.of(message, exchange, routing_key)


def start_message(
    topology: Topology,
    instance_id: str,
    name: str,
    execution_id: str,
    input_: JsonValue,
    correlation_id: str,
    parent: ParentInstance | None,
    now: datetime,
    version: str | None = None,
    *,
    traceparent: str | None = None,
) -> OutgoingMessage:
    """The ``ExecutionStarted`` that starts ``execution_id`` of an instance (without a
    ``version``, the orchestrator that records it stamps its own), in the trace
    ``traceparent`` names, if any."""
    start = ExecutionStarted(
        timestamp=now,
        name=name,
        execution_id=execution_id,
        input=input_,
        parent=parent,
        version=version,
        traceparent=traceparent,
    )
    message_id = deterministic_message_id(instance_id, execution_id, "start")
    return _message(
        topology, instance_id, execution_id, correlation_id, start, message_id, now, traceparent
    )


async def start_children_txn(
    connection: Connection, topology: Topology, children: Sequence[ChildStart], now: datetime
) -> list[OutgoingMessage]:
    """Create the children's Pending rows and their start messages. A child id in use by an
    instance that has not ended is refused: the parent gets the child's failure instead. One
    that has ended is replaced (a retried sub-orchestration reuses its instance id)."""
    messages: list[OutgoingMessage] = []
    for child in children:
        await delete_ended_instance_txn(connection, child.instance_id)
        execution_id = deterministic_message_id(
            child.parent.instance_id,
            child.parent.execution_id,
            "child",
            child.parent.task_scheduled_id,
        ).hex
        row = NewInstance(
            instance_id=child.instance_id,
            name=child.name,
            execution_id=execution_id,
            correlation_id=child.correlation_id,
            input=child.input,
            created_at=now,
            parent_instance_id=child.parent.instance_id,
            version=child.version,
        )
        if await insert_instances_txn(connection, [row]):
            messages.append(
                start_message(
                    topology,
                    child.instance_id,
                    child.name,
                    execution_id,
                    child.input,
                    child.correlation_id,
                    child.parent,
                    now,
                    child.version,
                    traceparent=child.traceparent,
                )
            )
        else:
            failure = FailureDetails(
                error_type="InstanceExistsError",
                message=f"instance {child.instance_id!r} is already running",
                is_non_retriable=True,
            )
            messages.append(
                _answer_parent(topology, child.parent, child.correlation_id, None, failure, now)
            )
    return messages


def parent_answer(
    topology: Topology,
    parent: ParentInstance,
    correlation_id: str,
    decision: Decision,
    now: datetime,
) -> OutgoingMessage | None:
    """The message that tells the parent how its child ended (None while it has not)."""
    match decision.status:
        case OrchestrationStatus.COMPLETED:
            return _answer_parent(topology, parent, correlation_id, decision.output, None, now)
        case OrchestrationStatus.FAILED:
            failure = decision.failure or FailureDetails(error_type="Failed", message="failed")
            return _answer_parent(topology, parent, correlation_id, None, failure, now)
        case OrchestrationStatus.TERMINATED:
            failure = FailureDetails(
                error_type="TerminatedError",
                message=f"the sub-orchestration was terminated: {decision.output}",
                is_non_retriable=True,
            )
            return _answer_parent(topology, parent, correlation_id, None, failure, now)
        case _:
            return None


def _answer_parent(
    topology: Topology,
    parent: ParentInstance,
    correlation_id: str,
    result: JsonValue,
    failure: FailureDetails | None,
    now: datetime,
) -> OutgoingMessage:
    event: InboundEvent
    if failure is None:
        event = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=parent.task_scheduled_id, result=result
        )
    else:
        event = SubOrchestrationInstanceFailed(
            timestamp=now, task_scheduled_id=parent.task_scheduled_id, failure=failure
        )
    message_id = deterministic_message_id(
        parent.instance_id, parent.execution_id, "child-result", parent.task_scheduled_id
    )
    return _message(
        topology, parent.instance_id, parent.execution_id, correlation_id, event, message_id, now
    )


async def terminate_children_txn(
    connection: Connection,
    topology: Topology,
    parent_ids: Sequence[str],
    reason: JsonValue,
    now: datetime,
) -> list[OutgoingMessage]:
    """Termination messages for the running children of instances that were terminated
    (their children terminate theirs in turn)."""
    return [
        _message(
            topology,
            child.instance_id,
            None,
            child.correlation_id,
            ExecutionTerminated(timestamp=now, reason=reason),
            uuid.uuid4(),
            now,
        )
        for child in await running_children_txn(connection, parent_ids)
    ]


async def move_executions_txn(
    connection: Connection, continuations: Sequence[Continuation], keep_history: bool
) -> None:
    """Point each row at its new execution; for a continue-as-new, unless ``keep_history``,
    drop the events of the executions before it, as Durable Functions does (an eternal
    orchestration stays bounded)."""
    for moved in continuations:
        await move_execution_txn(
            connection,
            moved.instance_id,
            execution_id=moved.execution_id,
            first_seq=moved.first_seq,
            input=moved.input,
            keep_input=moved.keep_input,
            drop_earlier_events=moved.drop_earlier and not keep_history,
        )
