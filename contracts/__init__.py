"""The wire language shared by every service: history events, messages, statuses, topology.

Pydantic v2 models only; nothing here performs I/O. Other languages read the generated JSON
Schema in ``contracts/schema/``.
"""

from contracts.approval import (
    ApprovalProgress,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalRequestMessage,
    ApprovalResponse,
    ApprovalResponseMessage,
    Escalation,
    IgnoredResponse,
    ProposalOutcome,
    ProposalOutcomeMessage,
    ProposalSubmitted,
    ProposalSubmittedMessage,
)
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
    "ApprovalProgress",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalRequestMessage",
    "ApprovalResponse",
    "ApprovalResponseMessage",
    "ContinueAsNew",
    "Envelope",
    "Escalation",
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
    "IgnoredResponse",
    "InboundEvent",
    "OrchestrationStatus",
    "OrchestratorMessage",
    "OrchestratorStarted",
    "ParentInstance",
    "ProposalOutcome",
    "ProposalOutcomeMessage",
    "ProposalSubmitted",
    "ProposalSubmittedMessage",
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
