"""History events: what an orchestration instance's event stream is made of.

Names and meaning follow the Durable Task Framework. Events that record an action the
orchestrator took (``TaskScheduled``, ``TimerCreated``, ``SubOrchestrationInstanceCreated``,
``EventSent``) carry ``event_id``: the action's sequence number within its execution, which is
how replay matches code to history. Events that answer an action point back at it:
``TaskCompleted.task_scheduled_id`` is the ``TaskScheduled`` event id and ``TimerFired.timer_id``
is the ``TimerCreated`` event id. Every other event has ``event_id = -1``.

Entities (ADR 38) speak the ``Entity*`` events: an orchestration records its requests to them
as actions, the entity records the same requests as its inbox, and the answers come back as
``EntityOperationCompleted``, ``EntityOperationFailed`` and ``EntityLockGranted``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.envelope import TraceParent, trace_field
from contracts.failure import FailureDetails
from contracts.limits import ShortString, StorableJson


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: int = -1
    timestamp: datetime


class ParentInstance(BaseModel):
    """Where a sub-orchestration reports back to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: ShortString
    execution_id: ShortString
    task_scheduled_id: int
    name: ShortString


class ExecutionStarted(_Event):
    """Starts an execution. ``version`` is the app version the instance runs under
    (``context.version``): a sub-orchestration's comes from its parent, a start without one
    is stamped by the orchestrator that records it with its ``DF_APP_VERSION``.
    ``traceparent``: the trace the instance's work joins (its HTTP start, or the parent's
    episode for a sub-orchestration), kept in the history so that every later episode, after
    any restart, joins it too (ADR 32); absent without tracing."""

    event_type: Literal["ExecutionStarted"] = "ExecutionStarted"
    name: ShortString
    execution_id: ShortString
    input: StorableJson = None
    parent: ParentInstance | None = None
    scheduled_start_at: datetime | None = None
    version: ShortString | None = None
    traceparent: TraceParent | None = trace_field()


class OrchestratorStarted(_Event):
    """Opens each episode; its timestamp is the orchestrator's ``current_utc_datetime``."""

    event_type: Literal["OrchestratorStarted"] = "OrchestratorStarted"


class TaskScheduled(_Event):
    """An activity call. ``attempt`` counts retries under a retry policy (1 for the first);
    ``timeout_seconds`` is its start-to-close time-out, when it has one."""

    event_type: Literal["TaskScheduled"] = "TaskScheduled"
    name: ShortString
    input: StorableJson = None
    attempt: int = 1
    timeout_seconds: float | None = None


class TaskStarted(_Event):
    """A worker started an activity that has a time-out; its clock starts here."""

    event_type: Literal["TaskStarted"] = "TaskStarted"
    task_scheduled_id: int


class TaskCompleted(_Event):
    event_type: Literal["TaskCompleted"] = "TaskCompleted"
    task_scheduled_id: int
    result: StorableJson = None


class TaskFailed(_Event):
    event_type: Literal["TaskFailed"] = "TaskFailed"
    task_scheduled_id: int
    failure: FailureDetails


class TimerCreated(_Event):
    event_type: Literal["TimerCreated"] = "TimerCreated"
    fire_at: datetime


class TimerFired(_Event):
    event_type: Literal["TimerFired"] = "TimerFired"
    timer_id: int
    fire_at: datetime


class EventRaised(_Event):
    event_type: Literal["EventRaised"] = "EventRaised"
    name: ShortString
    input: StorableJson = None


class EventSent(_Event):
    event_type: Literal["EventSent"] = "EventSent"
    instance_id: ShortString
    name: ShortString
    input: StorableJson = None


class SubOrchestrationInstanceCreated(_Event):
    """A child instance started; ``version`` is the one it runs under (the parent's unless
    the call named one)."""

    event_type: Literal["SubOrchestrationInstanceCreated"] = "SubOrchestrationInstanceCreated"
    name: ShortString
    instance_id: ShortString
    input: StorableJson = None
    version: ShortString | None = None


class SubOrchestrationInstanceCompleted(_Event):
    event_type: Literal["SubOrchestrationInstanceCompleted"] = "SubOrchestrationInstanceCompleted"
    task_scheduled_id: int
    result: StorableJson = None


class SubOrchestrationInstanceFailed(_Event):
    event_type: Literal["SubOrchestrationInstanceFailed"] = "SubOrchestrationInstanceFailed"
    task_scheduled_id: int
    failure: FailureDetails


class ExecutionCompleted(_Event):
    event_type: Literal["ExecutionCompleted"] = "ExecutionCompleted"
    result: StorableJson = None


class ExecutionFailed(_Event):
    event_type: Literal["ExecutionFailed"] = "ExecutionFailed"
    failure: FailureDetails


class ExecutionTerminated(_Event):
    event_type: Literal["ExecutionTerminated"] = "ExecutionTerminated"
    reason: StorableJson = None


class ContinueAsNew(_Event):
    event_type: Literal["ContinueAsNew"] = "ContinueAsNew"
    input: StorableJson = None
    new_execution_id: ShortString


class ExecutionRewound(_Event):
    """Asks a Failed instance to go back to before its failures (and, once applied, records
    that it did): failed activities run again, completed ones keep their results."""

    event_type: Literal["ExecutionRewound"] = "ExecutionRewound"
    reason: StorableJson = None
    new_execution_id: ShortString | None = None


class ExecutionSuspended(_Event):
    event_type: Literal["ExecutionSuspended"] = "ExecutionSuspended"
    reason: StorableJson = None


class ExecutionResumed(_Event):
    event_type: Literal["ExecutionResumed"] = "ExecutionResumed"
    reason: StorableJson = None


class EntityOperationSignaled(_Event):
    """A one-way operation request to the entity ``target`` (``@name@key``). Recorded by the
    orchestration that signals (``event_id``: its action id) and, as the message it sends or a
    client's, by the entity that receives it. ``sender``: the signalling orchestration's
    instance id (None from a client), by which a locked entity knows its holder's signals."""

    event_type: Literal["EntityOperationSignaled"] = "EntityOperationSignaled"
    target: ShortString
    operation: ShortString
    input: StorableJson = None
    sender: ShortString | None = None


class EntityOperationCalled(_Event):
    """A two-way operation request to the entity ``target``: the orchestration records it
    (``event_id``: its action id); the message to the entity carries ``parent``, where the
    ``EntityOperationCompleted`` or ``EntityOperationFailed`` goes."""

    event_type: Literal["EntityOperationCalled"] = "EntityOperationCalled"
    target: ShortString
    operation: ShortString
    input: StorableJson = None
    parent: ParentInstance | None = None


class EntityLockRequested(_Event):
    """A critical section's request for the locks of ``lock_set`` (entity ids, in the global
    order), travelling from entity to entity: the one at ``position`` grants it, then forwards
    it to the next; the last answers ``EntityLockGranted`` to ``parent``."""

    event_type: Literal["EntityLockRequested"] = "EntityLockRequested"
    critical_section_id: ShortString
    lock_set: list[ShortString]
    position: int = 0
    parent: ParentInstance | None = None


class EntityUnlockSent(_Event):
    """The end of a critical section, sent to each entity it locked (``target``)."""

    event_type: Literal["EntityUnlockSent"] = "EntityUnlockSent"
    critical_section_id: ShortString
    target: ShortString
    sender: ShortString | None = None


class EntityOperationCompleted(_Event):
    """An entity's answer to ``call_entity`` #``task_scheduled_id``: the operation's result."""

    event_type: Literal["EntityOperationCompleted"] = "EntityOperationCompleted"
    task_scheduled_id: int
    result: StorableJson = None


class EntityOperationFailed(_Event):
    """An entity's answer to ``call_entity`` #``task_scheduled_id``: the operation raised, and
    the entity kept the state it had before it."""

    event_type: Literal["EntityOperationFailed"] = "EntityOperationFailed"
    task_scheduled_id: int
    failure: FailureDetails


class EntityLockGranted(_Event):
    """Every entity of critical section ``critical_section_id`` is locked for the
    orchestration (the answer to its ``EntityLockRequested`` #``task_scheduled_id``)."""

    event_type: Literal["EntityLockGranted"] = "EntityLockGranted"
    task_scheduled_id: int
    critical_section_id: ShortString


HistoryEvent = Annotated[
    ExecutionStarted
    | OrchestratorStarted
    | TaskScheduled
    | TaskStarted
    | TaskCompleted
    | TaskFailed
    | TimerCreated
    | TimerFired
    | EventRaised
    | EventSent
    | SubOrchestrationInstanceCreated
    | SubOrchestrationInstanceCompleted
    | SubOrchestrationInstanceFailed
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionTerminated
    | ContinueAsNew
    | ExecutionRewound
    | ExecutionSuspended
    | ExecutionResumed
    | EntityOperationSignaled
    | EntityOperationCalled
    | EntityLockRequested
    | EntityUnlockSent
    | EntityOperationCompleted
    | EntityOperationFailed
    | EntityLockGranted,
    Field(discriminator="event_type"),
]
"""Any event of an instance's stream."""

InboundEvent = Annotated[
    ExecutionStarted
    | TaskStarted
    | TaskCompleted
    | TaskFailed
    | TimerFired
    | EventRaised
    | SubOrchestrationInstanceCompleted
    | SubOrchestrationInstanceFailed
    | ExecutionTerminated
    | ExecutionRewound
    | ExecutionSuspended
    | ExecutionResumed
    | EntityOperationSignaled
    | EntityOperationCalled
    | EntityLockRequested
    | EntityUnlockSent
    | EntityOperationCompleted
    | EntityOperationFailed
    | EntityLockGranted,
    Field(discriminator="event_type"),
]
"""The events that reach an orchestrator as messages (everything else it writes itself)."""

HISTORY_EVENT_ADAPTER: TypeAdapter[HistoryEvent] = TypeAdapter(HistoryEvent)
