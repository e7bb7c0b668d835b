"""The wire language shared by every service: history events, messages, statuses, topology.

Pydantic v2 models only; nothing here performs I/O. Other languages read the generated JSON
Schema in ``contracts/schema/``.
"""

from contracts.envelope import SCHEMA_VERSION, Envelope, deterministic_message_id
from contracts.failure import FailureDetails
from contracts.history import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    InboundEvent,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from contracts.messages import ActivityTask, ActivityTaskMessage, OrchestratorMessage
from contracts.status import OrchestrationStatus
from contracts.topology import Topology

__all__ = [
    "SCHEMA_VERSION",
    "ActivityTask",
    "ActivityTaskMessage",
    "ContinueAsNew",
    "Envelope",
    "EventRaised",
    "EventSent",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionResumed",
    "ExecutionStarted",
    "ExecutionSuspended",
    "ExecutionTerminated",
    "FailureDetails",
    "HistoryEvent",
    "InboundEvent",
    "OrchestrationStatus",
    "OrchestratorMessage",
    "OrchestratorStarted",
    "ParentInstance",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceCreated",
    "SubOrchestrationInstanceFailed",
    "TaskCompleted",
    "TaskFailed",
    "TaskScheduled",
    "TimerCreated",
    "TimerFired",
    "Topology",
    "deterministic_message_id",
]
