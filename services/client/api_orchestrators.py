"""Starting orchestrations over HTTP: ``POST /orchestrators/{functionName}[/{instanceId}]``.

Durable Functions' behaviour, step by step: the body (optional) must be JSON; the instance id
must be usable in a URL; the orchestrator must be registered; an instance id whose instance
is still Pending, Running or Suspended is a conflict, while one that has ended is replaced
(Durable Functions' default ``overridableExistingInstanceStates``). The answer is 202 with the
check-status payload, or, with ``timeout`` and ``pollingInterval``, the outcome if the
instance ends in time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import JsonValue

from services.client.api_common import (
    ApiError,
    BaseUrl,
    Client,
    SdkEncoded,
    error_responses,
    parse_json_body,
    parse_seconds,
)
from services.client.auth import IssuedKey
from services.client.check_status import START_RETRY_AFTER_SECONDS
from services.client.client import DurableClient, ExistingInstancePolicy
from services.client.errors import InstanceExistsError
from services.client.payloads import check_status_payload

MAX_INSTANCE_ID_LENGTH = 256

router = APIRouter(tags=["orchestrators"])


@dataclass(frozen=True)
class Links:
    """Where the links an answer hands out point (``DF_BASE_URL``), and the key they carry."""

    base_url: str
    access_key: str | None


FunctionName = Annotated[
    str, Path(alias="functionName", description="The orchestrator function to start.")
]
Timeout = Annotated[
    str | None,
    Query(
        description="Seconds to wait for the instance to end before answering (with "
        "pollingInterval). Completed: 200 with the output; Failed or Terminated: 200 with "
        "the status; still running: 202 with the check-status payload."
    ),
]
PollingInterval = Annotated[
    str | None,
    Query(alias="pollingInterval", description="Seconds between checks while waiting."),
]

_START_RESPONSES = {
    202: {"description": "Started: the check-status payload; Location is statusQueryGetUri."},
    200: {"description": "With timeout: the instance ended in time (output, or status)."},
    **error_responses(400, 409),
}
_JSON_BODY = {
    "requestBody": {
        "required": False,
        "description": "The orchestrator's input, any JSON value (optional).",
        "content": {"application/json": {"schema": {}}},
    }
}


@router.post(
    "/orchestrators/{functionName}",
    summary="Start an orchestration",
    status_code=202,
    responses=_START_RESPONSES,
    openapi_extra=_JSON_BODY,
)
async def start_orchestration(
    request: Request,
    durable: Client,
    base_url: BaseUrl,
    access_key: IssuedKey,
    sdk_encoded: SdkEncoded,
    function_name: FunctionName,
    timeout: Timeout = None,
    polling_interval: PollingInterval = None,
) -> Response:
    """Start a new instance of the orchestrator with a generated instance id."""
    links = Links(base_url, access_key)
    wait = (timeout, polling_interval)
    return await _start(request, durable, links, sdk_encoded, function_name, None, wait)


@router.post(
    "/orchestrators/{functionName}/{instanceId}",
    summary="Start an orchestration with a given instance id",
    status_code=202,
    responses=_START_RESPONSES,
    openapi_extra=_JSON_BODY,
)
async def start_orchestration_with_id(
    request: Request,
    durable: Client,
    base_url: BaseUrl,
    access_key: IssuedKey,
    sdk_encoded: SdkEncoded,
    function_name: FunctionName,
    instance_id: Annotated[str, Path(alias="instanceId", description="The instance id to use.")],
    timeout: Timeout = None,
    polling_interval: PollingInterval = None,
) -> Response:
    """Start a new instance under ``instanceId``; an ended instance with that id is replaced."""
    links = Links(base_url, access_key)
    wait = (timeout, polling_interval)
    return await _start(request, durable, links, sdk_encoded, function_name, instance_id, wait)


async def _start(
    request: Request,
    durable: DurableClient,
    links: Links,
    sdk_encoded: bool,
    function_name: str,
    instance_id: str | None,
    wait_parameters: tuple[str | None, str | None],
) -> Response:
    try:
        payload = parse_json_body(await request.body(), sdk_encoded=sdk_encoded)
        if instance_id is not None:
            check_instance_id(instance_id)
        wait = parse_wait(*wait_parameters)
        return await start_and_answer(durable, links, function_name, instance_id, payload, wait)
    except ApiError as error:
        # Durable Functions' SDKs read a refused start's reason from ExceptionMessage.
        error.exception_message = error.status_code == 400
        raise


def check_instance_id(instance_id: str) -> None:
    """Durable Functions' rules: ids are used in URLs and as storage keys."""
    if not instance_id:
        raise ApiError(400, "the instance id must not be empty")
    if instance_id.startswith("@"):
        raise ApiError(400, "instance ids must not start with @ (reserved for entities)")
    if any(c in "/\\?#" or unicodedata.category(c) == "Cc" for c in instance_id):
        raise ApiError(400, "instance ids must not contain /, \\, #, ? or control characters")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise ApiError(400, f"instance ids must not exceed {MAX_INSTANCE_ID_LENGTH} characters")


def parse_wait(timeout: str | None, polling_interval: str | None) -> tuple[float, float] | None:
    """``(timeout, interval)`` when both are given, as Durable Functions requires; else None."""
    total = parse_seconds(timeout, "timeout")
    interval = parse_seconds(polling_interval, "pollingInterval")
    if total is None or interval is None:
        return None
    if interval > total:
        raise ApiError(
            400, f"timeout ({total:g} s) must not be shorter than pollingInterval ({interval:g} s)"
        )
    return total, interval


async def start_and_answer(
    durable: DurableClient,
    links: Links,
    function_name: str,
    instance_id: str | None,
    payload: JsonValue,
    wait: tuple[float, float] | None,
) -> Response:
    """Start the instance (refusing unknown orchestrators and ids in use), then answer 202
    with the check-status payload, or wait for the outcome when asked to."""
    if function_name not in await durable.registered_orchestrators():
        raise ApiError(
            400, f"The function '{function_name}' doesn't exist or is not an orchestrator"
        )
    try:
        started = await durable.start_new(
            function_name, instance_id, payload, if_exists=ExistingInstancePolicy.REPLACE_ENDED
        )
    except InstanceExistsError as error:
        raise ApiError(409, f"{error}; an instance id can be reused once it has ended") from None
    if wait is None:
        return check_status_response(links, started)
    total, interval = wait
    answer = await durable.wait_for_completion_or_create_check_status_response(
        started, links.base_url, timeout=total, retry_interval=interval, access_key=links.access_key
    )
    return JSONResponse(answer.body, status_code=answer.status_code, headers=answer.headers)


def check_status_response(links: Links, instance_id: str) -> JSONResponse:
    body = check_status_payload(links.base_url, instance_id, links.access_key)
    return JSONResponse(
        body,
        status_code=202,
        headers={"Location": body["statusQueryGetUri"], "Retry-After": START_RETRY_AFTER_SECONDS},
    )
