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
    ExecutionRewound,
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
    TaskStarted,
    TimerCreated,
    TimerFired,
)
from contracts.messages import (
    ACTIVITY_TASK_BATCH,
    ORCHESTRATOR_MESSAGE_BATCH,
    ActivityTask,
    ActivityTaskBatch,
    ActivityTaskMessage,
    OrchestratorMessage,
    OrchestratorMessageBatch,
    batch_body,
)
from contracts.status import OrchestrationStatus
from contracts.topology import Topology

__all__ = [
    "ACTIVITY_TASK_BATCH",
    "ORCHESTRATOR_MESSAGE_BATCH",
    "SCHEMA_VERSION",
    "ActivityTask",
    "ActivityTaskBatch",
    "ActivityTaskMessage",
    "ContinueAsNew",
    "Envelope",
    "EventRaised",
    "EventSent",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionResumed",
    "ExecutionRewound",
    "ExecutionStarted",
    "ExecutionSuspended",
    "ExecutionTerminated",
    "FailureDetails",
    "HistoryEvent",
    "InboundEvent",
    "OrchestrationStatus",
    "OrchestratorMessage",
    "OrchestratorMessageBatch",
    "OrchestratorStarted",
    "ParentInstance",
    "SubOrchestrationInstanceCompleted",
    "SubOrchestrationInstanceCreated",
    "SubOrchestrationInstanceFailed",
    "TaskCompleted",
    "TaskFailed",
    "TaskScheduled",
    "TaskStarted",
    "TimerCreated",
    "TimerFired",
    "Topology",
    "batch_body",
    "deterministic_message_id",
]
