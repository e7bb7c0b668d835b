"""The user-facing SDK: register functions, write orchestrators, call them from a client.

Orchestrator code receives an ``OrchestrationContext`` (azure-functions-durable's names); an
activity may ask for an ``ActivityContext``.
"""

from durable.activity import ActivityContext
from durable.app import ActivityDefinition, FunctionApp, RegistrationError
from durable.client import DurableClient
from durable.settings import CommonSettings
from services.orchestrator.engine import (
    ActivityTimeoutError,
    EventTimeoutError,
    NonDeterminismError,
    OrchestrationContext,
    RetryOptions,
    Task,
    TaskFailedError,
    TimerTask,
)

DurableOrchestrationContext = OrchestrationContext
"""azure-functions-durable's name for the orchestration context."""

__all__ = [
    "ActivityContext",
    "ActivityDefinition",
    "ActivityTimeoutError",
    "CommonSettings",
    "DurableClient",
    "DurableOrchestrationContext",
    "EventTimeoutError",
    "FunctionApp",
    "NonDeterminismError",
    "OrchestrationContext",
    "RegistrationError",
    "RetryOptions",
    "Task",
    "TaskFailedError",
    "TimerTask",
]
