"""The SDK: what user code imports to register functions and write orchestrators.

Orchestrator code receives an ``OrchestrationContext`` (azure-functions-durable's names); an
activity may ask for an ``ActivityContext``. The client that starts and manages instances is
``durable.client.DurableClient``, apart, so that code which only defines functions (and the
engine that runs it) loads no database or broker library. The package depends on
``contracts`` and its libraries only: the services run it, it never imports them.
"""

from contracts import FailureDetails
from contracts.entities import EntityId
from contracts.limits import ValueRefusedError
from contracts.typed import BoundaryError
from durable.activity import ActivityContext
from durable.app import ActivityDefinition, FunctionApp, RegistrationError
from durable.context import OrchestrationContext
from durable.entities import CriticalSection, DurableEntityContext, EntityContext
from durable.errors import (
    ActivityTimeoutError,
    EntityOperationFailedError,
    EventTimeoutError,
    LockingRulesViolationError,
    NonDeterminismError,
    TaskFailedError,
)
from durable.http import DurableHttpResponse
from durable.retry import RetryOptions
from durable.tasks import Task, TimerTask
from durable.versioning import compare_versions

DurableOrchestrationContext = OrchestrationContext
"""azure-functions-durable's name for the orchestration context."""

# BoundaryError (a value does not fit a function's types), ValueRefusedError (a value cannot
# be stored) and FailureDetails (what a failed task reports) are defined with the contracts
# the services share; user code catches and reads them from here.

__all__ = [
    "ActivityContext",
    "ActivityDefinition",
    "ActivityTimeoutError",
    "BoundaryError",
    "CriticalSection",
    "DurableEntityContext",
    "DurableHttpResponse",
    "DurableOrchestrationContext",
    "EntityContext",
    "EntityId",
    "EntityOperationFailedError",
    "EventTimeoutError",
    "FailureDetails",
    "FunctionApp",
    "LockingRulesViolationError",
    "NonDeterminismError",
    "OrchestrationContext",
    "RegistrationError",
    "RetryOptions",
    "Task",
    "TaskFailedError",
    "TimerTask",
    "ValueRefusedError",
    "compare_versions",
]
