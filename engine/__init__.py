"""The pure orchestration engine: replays history through orchestrator code, decides actions.

No I/O, no clock, no randomness: everything it knows comes from the history it is given. It
implements the SDK's orchestration context (``durable.context``) and completes the SDK's
tasks (``durable.tasks``); orchestrator code never imports it.
"""

from engine.context import ReplayContext
from engine.decision import ContinueAsNewRequest, Decision
from engine.entity_executor import (
    ENTITY_REQUESTS,
    EntityEffect,
    EntityExecutor,
    EntityRequest,
    LockOutcome,
    OperationOutcome,
)
from engine.executor import (
    OrchestrationExecutor,
    OrchestratorFunction,
    replay,
)
from engine.refusal import Refusal

__all__ = [
    "ENTITY_REQUESTS",
    "ContinueAsNewRequest",
    "Decision",
    "EntityEffect",
    "EntityExecutor",
    "EntityRequest",
    "LockOutcome",
    "OperationOutcome",
    "OrchestrationExecutor",
    "OrchestratorFunction",
    "Refusal",
    "ReplayContext",
    "replay",
]
