"""The pure orchestration engine: replays history through orchestrator code, decides actions.

No I/O, no clock, no randomness: everything it knows comes from the history it is given.
"""

from services.orchestrator.engine.context import OrchestrationContext, function_name
from services.orchestrator.engine.decision import ContinueAsNewRequest, Decision
from services.orchestrator.engine.errors import (
    ActivityTimeoutError,
    EventTimeoutError,
    NonDeterminismError,
    OrchestratorYieldError,
    TaskFailedError,
)
from services.orchestrator.engine.executor import (
    OrchestrationExecutor,
    OrchestratorFunction,
    replay,
)
from services.orchestrator.engine.refusal import Refusal
from services.orchestrator.engine.retry import RetryOptions
from services.orchestrator.engine.tasks import (
    CompletableTask,
    ExternalEventTask,
    Task,
    TimerTask,
    WhenAllTask,
    WhenAnyTask,
)

__all__ = [
    "ActivityTimeoutError",
    "CompletableTask",
    "ContinueAsNewRequest",
    "Decision",
    "EventTimeoutError",
    "ExternalEventTask",
    "NonDeterminismError",
    "OrchestrationContext",
    "OrchestrationExecutor",
    "OrchestratorFunction",
    "OrchestratorYieldError",
    "Refusal",
    "RetryOptions",
    "Task",
    "TaskFailedError",
    "TimerTask",
    "WhenAllTask",
    "WhenAnyTask",
    "function_name",
    "replay",
]
