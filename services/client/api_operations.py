"""Acting on an instance: ``POST /instances/{instanceId}/raiseEvent/{eventName}``, ``terminate``,
``suspend``, ``resume``, ``restart`` and ``rewind``.

As in Durable Functions: 404 for an unknown instance, 410 once it has ended, and 202 when the
request was accepted. Acceptance means the message is on its way: suspending a suspended
instance (or resuming a running one) is accepted and changes nothing.

Beyond Durable Functions: an event its orchestrator declares protected
(``@app.orchestrator(protected_events=[...])``) is refused to a start key with 403, before
anything is read or sent (ADR 20).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from durable.client import DurableClient
from durable.client.errors import (
    InstanceEndedError,
    InstanceNotFailedError,
    InstanceNotFoundError,
)
from durable.store.queries import InstanceStatus
from services.client.api_common import (
    ApiError,
    BaseUrl,
    Client,
    ErrorBody,
    SdkEncoded,
    error_responses,
    parse_bool,
    parse_json_body,
)
from services.client.api_orchestrators import (
    Links,
    PollingInterval,
    Timeout,
    parse_wait,
    start_and_answer,
)
from services.client.api_schemas import LOCATION, RETRY_AFTER, CheckStatusPayload
from services.client.auth import IssuedKey, opens_protected_events
from services.common import metrics

log = structlog.get_logger(__name__)

router = APIRouter(tags=["instance operations"])
"""Operations that need a management key."""

events_router = APIRouter(tags=["instance operations"])
"""Raising events, which a start key may do too."""

InstanceId = Annotated[str, Path(alias="instanceId", description="The instance id.")]
Reason = Annotated[str | None, Query(description="Why (recorded in the history).")]

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Accepted: the request is on its way to the instance."}
}
_PROTECTED: dict[int | str, dict[str, Any]] = {
    403: {
        "description": "Forbidden: the instance's orchestrator declares this event protected, "
        "and only a management key may raise it. Nothing was sent.",
        "model": ErrorBody,
    }
}


@events_router.post(
    "/instances/{instanceId}/raiseEvent/{eventName}",
    response_class=Response,
    summary="Send an event to an instance",
    status_code=202,
    responses={**_ACCEPTED, **_PROTECTED, **error_responses(400, 404, 410)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The event's data: any JSON value (Content-Type: application/json).",
            "content": {"application/json": {"schema": {}}},
        }
    },
)
async def raise_event(
    request: Request,
    durable: Client,
    sdk_encoded: SdkEncoded,
    instance_id: InstanceId,
    event_name: Annotated[str, Path(alias="eventName", description="The event's name.")],
) -> Response:
    """Deliver an external event; the instance keeps it until its code waits for the name.

    An event the instance's orchestrator declares protected needs a management key."""
    status = await _require_active(durable, instance_id)
    # Event names are matched case-insensitively, so the protection is too.
    if not opens_protected_events(request) and (
        event_name.casefold() in await durable.protected_events(status.name)
    ):
        log.warning(
            "http.refused",
            path=request.url.path,
            refusal="protected_event",
            instance_id=instance_id,
            event_name=event_name,
        )
        raise ApiError(
            403,
            f"event {event_name!r} is protected by orchestrator {status.name!r}: raising it "
            "needs a management key, not a start key",
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().casefold()
    if media_type != "application/json":
        raise ApiError(400, "Only application/json request content is supported")
    raw = await request.body()
    if not raw.strip():
        raise ApiError(400, "Invalid JSON content: the body is empty (send null for no data)")
    data = parse_json_body(raw, "the event's data", sdk_encoded=sdk_encoded)
    await _perform(durable.raise_event(instance_id, event_name, data), instance_id)
    metrics.CLIENT_EVENTS_RAISED.labels("http").inc()
    return Response(status_code=202)


_OPERATION_RESPONSES = {**_ACCEPTED, **error_responses(404, 410)}


@router.post(
    "/instances/{instanceId}/terminate",
    response_class=Response,
    summary="Terminate an instance",
    status_code=202,
    responses=_OPERATION_RESPONSES,
)
async def terminate_instance(
    durable: Client, instance_id: InstanceId, reason: Reason = None
) -> Response:
    """End a Pending, Running or Suspended instance as Terminated; its output is the reason."""
    await _perform(durable.terminate(instance_id, reason), instance_id)
    return Response(status_code=202)


@router.post(
    "/instances/{instanceId}/suspend",
    response_class=Response,
    summary="Suspend an instance",
    status_code=202,
    responses=_OPERATION_RESPONSES,
)
async def suspend_instance(
    durable: Client, instance_id: InstanceId, reason: Reason = None
) -> Response:
    """Pause an instance; what arrives meanwhile is kept until it is resumed."""
    await _perform(durable.suspend(instance_id, reason), instance_id)
    return Response(status_code=202)


@router.post(
    "/instances/{instanceId}/resume",
    response_class=Response,
    summary="Resume an instance",
    status_code=202,
    responses=_OPERATION_RESPONSES,
)
async def resume_instance(
    durable: Client, instance_id: InstanceId, reason: Reason = None
) -> Response:
    """Resume a suspended instance; what arrived meanwhile is processed in order."""
    await _perform(durable.resume(instance_id, reason), instance_id)
    return Response(status_code=202)


@router.post(
    "/instances/{instanceId}/restart",
    summary="Restart an instance",
    status_code=202,
    responses={
        202: {
            "description": "Started: the check-status payload of the new instance.",
            "model": CheckStatusPayload,
            "headers": {"Location": LOCATION, "Retry-After": RETRY_AFTER},
        },
        200: {"description": "With timeout: the new instance ended in time."},
        **error_responses(400, 409),
    },
)
async def restart_instance(
    request: Request,
    durable: Client,
    base_url: BaseUrl,
    access_key: IssuedKey,
    instance_id: InstanceId,
    restart_with_new_instance_id: Annotated[
        str | None,
        Query(
            alias="restartWithNewInstanceId",
            description="false restarts under the same id (the instance must have ended); "
            "default true.",
        ),
    ] = None,
    timeout: Timeout = None,
    polling_interval: PollingInterval = None,
) -> Response:
    """Start the instance's orchestrator again with the same input. As in Durable Functions,
    an unknown instance is a bad request (400)."""
    new_id = parse_bool(restart_with_new_instance_id, "restartWithNewInstanceId", True)
    wait = parse_wait(request, timeout, polling_interval)
    status = await durable.get_status(instance_id)
    if status is None:
        raise ApiError(400, f"InstanceId {instance_id!r} does not match a valid instance")
    links = Links(base_url, access_key)
    restarted_id = None if new_id else instance_id
    return await start_and_answer(durable, links, status.name, restarted_id, status.input, wait)


@router.post(
    "/instances/{instanceId}/rewind",
    response_class=Response,
    summary="Rewind a failed instance",
    status_code=202,
    responses=error_responses(404, 412),
)
async def rewind_instance(
    durable: Client, instance_id: InstanceId, reason: Reason = None
) -> Response:
    """Send a Failed instance back to before its failures: failed activities run again,
    completed ones keep their results. 404 for an unknown instance, 412 unless it Failed."""
    try:
        await durable.rewind(instance_id, reason)
    except InstanceNotFoundError:
        raise ApiError(404, f"no instance {instance_id!r}") from None
    except InstanceNotFailedError as error:
        raise ApiError(412, str(error)) from None
    return Response(status_code=202)


async def _require_active(durable: DurableClient, instance_id: str) -> InstanceStatus:
    status = await durable.get_status(instance_id)
    if status is None:
        raise ApiError(404, f"no instance {instance_id!r}")
    if status.runtime_status.is_terminal:
        raise ApiError(410, f"instance {instance_id!r} has ended ({status.runtime_status.value})")
    return status


async def _perform(operation: Awaitable[None], instance_id: str) -> None:
    """Await a client call, answering its refusals with Durable Functions' codes."""
    try:
        await operation
    except InstanceNotFoundError:
        raise ApiError(404, f"no instance {instance_id!r}") from None
    except InstanceEndedError as error:
        raise ApiError(410, str(error)) from None
