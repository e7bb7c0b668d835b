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
from durable.store.queries import InstanceStatus

PREFIX = "/runtime/webhooks/durabletask"
"""Where Durable Functions mounts its management API."""

RPC_PREFIX = "/durabletask"
"""The same routes for Durable Functions' out-of-process SDKs, where the Functions host serves
them to its workers (``rpcBaseUrl``). The only difference: those SDKs send an orchestration's
input and an event's data as a JSON string holding the value's JSON text, and the API reads
them that way here (ADR 8)."""


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


def _link(path: str, *query: str, access_key: str | None) -> str:
    """``path`` with its query: the given parameters, then ``code`` when there is a key
    (where Durable Functions puts the key in the links it issues)."""
    parameters = [*query, f"code={quote(access_key, safe='')}"] if access_key else list(query)
    return f"{path}?{'&'.join(parameters)}" if parameters else path


def check_status_payload(
    base_url: str, instance_id: str, access_key: str | None = None
) -> dict[str, str]:
    """The links Durable Functions' ``CreateCheckStatusResponse`` returns for an instance.

    With ``access_key``, every link carries it as ``code=…``, so whoever holds the payload can
    follow its links (as far as that key allows). ``rewindPostUri`` is not among them: Durable
    Functions only puts it in the management payload its clients build, not in this response.
    """
    url = instance_url(base_url, instance_id)
    return {
        "id": instance_id,
        "statusQueryGetUri": _link(url, access_key=access_key),
        "sendEventPostUri": _link(f"{url}/raiseEvent/{{eventName}}", access_key=access_key),
        "terminatePostUri": _link(f"{url}/terminate", "reason={text}", access_key=access_key),
        "purgeHistoryDeleteUri": _link(url, access_key=access_key),
        "restartPostUri": _link(f"{url}/restart", access_key=access_key),
        "suspendPostUri": _link(f"{url}/suspend", "reason={text}", access_key=access_key),
        "resumePostUri": _link(f"{url}/resume", "reason={text}", access_key=access_key),
    }


def durable_client_binding(
    base_url: str, access_key: str | None = None, *, task_hub_name: str = "default"
) -> dict[str, Any]:
    """The client binding Durable Functions hands its SDKs, pointing at this service.

    azure-functions-durable's ``DurableOrchestrationClient(json.dumps(binding))`` then works
    against this API: it sends every call to ``rpcBaseUrl`` (``RPC_PREFIX``, where request
    bodies are read as that SDK encodes them) and builds check-status payloads from
    ``managementUrls``. Its HTTP calls carry no key: give its session the key as an
    ``x-functions-key`` header (README, "HTTP API").
    """
    placeholder = "INSTANCEID"
    management: dict[str, str] = check_status_payload(base_url, placeholder, access_key)
    management["rewindPostUri"] = _link(
        f"{instance_url(base_url, placeholder)}/rewind", "reason={text}", access_key=access_key
    )
    start = f"{base_url}{PREFIX}/orchestrators/{{functionName}}[/{{instanceId}}]"
    wait = ("timeout={timeoutInSeconds}", "pollingInterval={intervalInSeconds}")
    return {
        "taskHubName": task_hub_name,
        "creationUrls": {
            "createNewInstancePostUri": _link(start, access_key=access_key),
            "createAndWaitOnNewInstancePostUri": _link(start, *wait, access_key=access_key),
        },
        "managementUrls": management,
        "baseUrl": f"{base_url}{PREFIX}",
        "requiredQueryStringParameters": _link("", access_key=access_key).lstrip("?"),
        "rpcBaseUrl": f"{base_url}{RPC_PREFIX}/",
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
    which leaves the field out unless the history was asked for; ``version`` only when the
    instance started under one.
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
    if status.version is not None:
        # Beyond Durable Functions' shape; its clients keep unknown fields (docs/adr/0034).
        payload["version"] = status.version
    if history_events is not None:
        payload["historyEvents"] = history_events
    return payload
