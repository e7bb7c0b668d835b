"""The Python client: start orchestrations, raise events, read and manage instances.

It talks to the event store and the broker directly, as the client service's HTTP API does on
a caller's behalf. What a caller needs besides the client is here too: the statuses it filters
by and the choices a start takes.
"""

from contracts import OrchestrationStatus
from durable.client.check_status import CheckStatusResponse
from durable.client.client import DurableClient, Started
from durable.client.entities import CleanEntityStorageResult, EntityPage, EntityStateResponse
from durable.client.errors import (
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceRunningError,
    StartOutcomeUnknownError,
)
from durable.client.paging import InstancePage
from durable.store.instances import ExistingInstancePolicy

__all__ = [
    "CheckStatusResponse",
    "CleanEntityStorageResult",
    "DurableClient",
    "EntityPage",
    "EntityStateResponse",
    "ExistingInstancePolicy",
    "InstanceEndedError",
    "InstanceExistsError",
    "InstanceNotFailedError",
    "InstanceNotFoundError",
    "InstancePage",
    "InstanceRunningError",
    "OrchestrationStatus",
    "StartOutcomeUnknownError",
    "Started",
]
