"""Durable Functions' JSON shapes: the check-status payload and an instance's status.

Field names, casing and time formats are the ones Durable Functions' HTTP API uses, so its
clients read ours unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import JsonValue

from contracts import OrchestrationStatus
from services.common.instances import InstanceStatus

PREFIX = "/runtime/webhooks/durabletask"
"""Where Durable Functions mounts its management API."""


def format_time(value: datetime) -> str:
    """An instance's created and updated times: ISO 8601, UTC, whole seconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_timestamp(value: datetime) -> str:
    """A history event's time: ISO 8601, UTC, the fraction without trailing zeros, ``Z``.

    That is how .NET writes round-trip times, so history timestamps look the same as in
    Durable Functions (``2026-01-31T09:00:01.25Z``; no fraction at all on a whole second).
    """
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{utc.microsecond:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def instance_url(base_url: str, instance_id: str) -> str:
    return f"{base_url}{PREFIX}/instances/{quote(instance_id, safe='')}"


def check_status_payload(base_url: str, instance_id: str) -> dict[str, str]:
    """The links Durable Functions' ``CreateCheckStatusResponse`` returns for an instance.

    ``rewindPostUri`` is not among them: Durable Functions only puts it in the management
    payload its clients build, not in this response.
    """
    url = instance_url(base_url, instance_id)
    return {
        "id": instance_id,
        "statusQueryGetUri": url,
        "sendEventPostUri": f"{url}/raiseEvent/{{eventName}}",
        "terminatePostUri": f"{url}/terminate?reason={{text}}",
        "purgeHistoryDeleteUri": url,
        "restartPostUri": f"{url}/restart",
        "suspendPostUri": f"{url}/suspend?reason={{text}}",
        "resumePostUri": f"{url}/resume?reason={{text}}",
    }


def output_of(status: InstanceStatus) -> JsonValue:
    """The ``output`` field: the result, the termination reason, or, for a failed instance,
    the failure as one string (Durable Functions reports failures that way)."""
    if status.runtime_status is OrchestrationStatus.FAILED and status.failure is not None:
        return f"Orchestrator function '{status.name}' failed: {status.failure.message}"
    return status.output


def status_payload(
    status: InstanceStatus,
    *,
    show_input: bool = True,
    history_events: list[dict[str, JsonValue]] | None = None,
) -> dict[str, Any]:
    """An instance's status in Durable Functions' JSON shape.

    ``historyEvents`` is present only when ``history_events`` is given, as in Durable Functions,
    which leaves the field out unless the history was asked for.
    """
    payload: dict[str, Any] = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status.value,
        "input": status.input if show_input else None,
        "customStatus": status.custom_status,
        "output": output_of(status),
        "createdTime": format_time(status.created_at),
        "lastUpdatedTime": format_time(status.last_updated_at),
    }
    if history_events is not None:
        payload["historyEvents"] = history_events
    return payload
