"""The Python client: start orchestrations, raise events, read and manage instances.

It talks to the event store and the broker directly, as the client service's HTTP API does on
a caller's behalf.
"""

from durable.client.check_status import CheckStatusResponse
from durable.client.client import DurableClient, Started
from durable.client.errors import (
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceRunningError,
    StartOutcomeUnknownError,
)
from durable.client.paging import InstancePage

__all__ = [
    "CheckStatusResponse",
    "DurableClient",
    "InstanceEndedError",
    "InstanceExistsError",
    "InstanceNotFailedError",
    "InstanceNotFoundError",
    "InstancePage",
    "InstanceRunningError",
    "StartOutcomeUnknownError",
    "Started",
]
