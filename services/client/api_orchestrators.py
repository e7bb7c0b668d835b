"""Starting orchestrations over HTTP: ``POST /orchestrators/{functionName}[/{instanceId}]``.

Durable Functions' behaviour, step by step: the body (optional) must be JSON; the instance id
must be usable in a URL; the orchestrator must be registered; an instance id whose instance
is still Pending, Running or Suspended is a conflict, while one that has ended is replaced
(Durable Functions' default ``overridableExistingInstanceStates``). The answer is 202 with the
check-status payload, or, with ``timeout`` and ``pollingInterval``, the outcome if the
instance ends in time.

Beyond Durable Functions: ``ifExists=useExisting`` makes a start idempotent (an existing
instance is kept whatever its state, and answered with its status), and a wait is never
longer than ``DF_HTTP_MAX_WAIT_SECONDS``, nor outlives its caller or the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import JsonValue

from contracts.limits import ValueRefusedError
from durable.client import DurableClient, ExistingInstancePolicy
from durable.client.check_status import START_RETRY_AFTER_SECONDS
from durable.client.errors import InstanceExistsError
from durable.client.payloads import check_status_payload, status_payload
from services.client.api_common import (
    ApiError,
    BaseUrl,
    Client,
    SdkEncoded,
    error_responses,
    parse_json_body,
    parse_seconds,
)
from services.client.api_schemas import LOCATION, RETRY_AFTER, CheckStatusPayload
from services.client.auth import IssuedKey, has_management_access
from services.client.traces import answered, new_instance_id, start_span
from services.common import metrics
from services.common.tracing import traceparent_of

log = structlog.get_logger(__name__)

router = APIRouter(tags=["orchestrators"])


@dataclass(frozen=True)
class Links:
    """Where the links an answer hands out point (``DF_BASE_URL``), the key they carry, and
    whether that key may read instances (a start key may not: it is answered an existing
    instance's links, never its status, input or output)."""

    base_url: str
    access_key: str | None
    reads_instances: bool = True


@dataclass(frozen=True)
class Wait:
    """How long a start waits for its instance to end, how often it looks, and when it gives
    up early (the caller has gone, the service is stopping)."""

    timeout: float
    interval: float
    give_up: Callable[[], Awaitable[bool]]


def _giving_up(request: Request) -> Callable[[], Awaitable[bool]]:
    async def give_up() -> bool:
        stopping: Callable[[], bool] = request.app.state.stopping
        if stopping():
            log.info("http.wait_ended", reason="the service is stopping", path=request.url.path)
            return True
        if await request.is_disconnected():
            log.info("http.wait_ended", reason="the caller disconnected", path=request.url.path)
            return True
        return False

    return give_up


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
IfExists = Annotated[
    str | None,
    Query(
        alias="ifExists",
        description="What to do when the instance id is in use (beyond Durable Functions). "
        "replaceEnded (default, Durable Functions' behaviour): replace an instance that has "
        "ended, 409 for one that has not. useExisting: start nothing and answer 200 with the "
        "existing instance's status, whatever its state, so that retrying a start is safe. "
        "error: 409 whatever its state.",
    ),
]

Version = Annotated[
    str | None,
    Query(
        description="The app version the instance runs under (context.version), as Durable "
        "Functions' start_new(..., version=) sends it; without it, the orchestrator's "
        "DF_APP_VERSION. At most 100 characters.",
    ),
]

_START_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Started: the check-status payload; Location is statusQueryGetUri.",
        "model": CheckStatusPayload,
        "headers": {"Location": LOCATION, "Retry-After": RETRY_AFTER},
    },
    200: {
        "description": "With timeout: the instance ended in time (output, or status). With "
        "ifExists=useExisting: the instance existed, nothing was started (its status)."
    },
    **error_responses(400, 409, 413, 503),
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
    version: Version = None,
) -> Response:
    """Start a new instance of the orchestrator with a generated instance id."""
    links = Links(base_url, access_key, has_management_access(request))
    wait = (timeout, polling_interval)
    return await _start(
        request, durable, links, sdk_encoded, function_name, None, wait, None, version
    )


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
    if_exists: IfExists = None,
    version: Version = None,
) -> Response:
    """Start a new instance under ``instanceId``; an ended instance with that id is replaced
    (unless ``ifExists`` says otherwise)."""
    links = Links(base_url, access_key, has_management_access(request))
    wait = (timeout, polling_interval)
    return await _start(
        request, durable, links, sdk_encoded, function_name, instance_id, wait, if_exists, version
    )


async def _start(
    request: Request,
    durable: DurableClient,
    links: Links,
    sdk_encoded: bool,
    function_name: str,
    instance_id: str | None,
    wait_parameters: tuple[str | None, str | None],
    if_exists: str | None,
    version: str | None,
) -> Response:
    try:
        policy = parse_if_exists(if_exists)
        wait = parse_wait(request, *wait_parameters)
        payload = parse_json_body(await request.body(), "the input", sdk_encoded=sdk_encoded)
        with start_span(request, function_name, instance_id) as span:
            return answered(
                span,
                await start_and_answer(
                    durable,
                    links,
                    function_name,
                    instance_id or new_instance_id(span),
                    payload,
                    wait,
                    policy,
                    version=version,
                    traceparent=traceparent_of(span),
                ),
            )
    except ValueRefusedError as error:  # the instance id or the version (the client checks)
        raise ApiError(400, str(error), exception_message=True) from None
    except ApiError as error:
        # Durable Functions' SDKs read a refused start's reason from ExceptionMessage.
        error.exception_message = error.status_code == 400
        raise


_IF_EXISTS = {
    "replaceended": ExistingInstancePolicy.REPLACE_ENDED,
    "useexisting": ExistingInstancePolicy.USE_EXISTING,
    "error": ExistingInstancePolicy.ERROR,
}


def parse_if_exists(value: str | None) -> ExistingInstancePolicy:
    """``ifExists``: replaceEnded (Durable Functions' default), useExisting or error, in any
    letter case, with or without underscores (the Python client's and CLI's spelling)."""
    if value is None or not value.strip():
        return ExistingInstancePolicy.REPLACE_ENDED
    policy = _IF_EXISTS.get(value.strip().replace("_", "").casefold())
    if policy is None:
        raise ApiError(
            400, f"ifExists must be replaceEnded, useExisting or error, not {value[:40]!r}"
        )
    return policy


def parse_wait(request: Request, timeout: str | None, polling_interval: str | None) -> Wait | None:
    """How long to wait when both ``timeout`` and ``pollingInterval`` are given, as Durable
    Functions requires; else None. A timeout over ``DF_HTTP_MAX_WAIT_SECONDS`` is shortened
    to it (and the interval with it): the answer is then the check-status payload, as when
    any wait runs out, and no request holds a connection and a task for longer."""
    total = parse_seconds(timeout, "timeout")
    interval = parse_seconds(polling_interval, "pollingInterval")
    if total is None or interval is None:
        return None
    if interval > total:
        raise ApiError(
            400, f"timeout ({total:g} s) must not be shorter than pollingInterval ({interval:g} s)"
        )
    most: float = request.app.state.max_wait_seconds
    total = min(total, most)
    return Wait(total, min(interval, total), _giving_up(request))


async def start_and_answer(
    durable: DurableClient,
    links: Links,
    function_name: str,
    instance_id: str | None,
    payload: JsonValue,
    wait: Wait | None,
    policy: ExistingInstancePolicy = ExistingInstancePolicy.REPLACE_ENDED,
    *,
    version: str | None = None,
    traceparent: str | None = None,
) -> Response:
    """Start the instance (refusing unknown orchestrators and ids in use), then answer 202
    with the check-status payload, or wait for the outcome when asked to. An instance kept
    by ``USE_EXISTING`` is answered with its status (200), or waited for like a new one;
    to a key that may not read instances, with its links only (200)."""
    if function_name not in await durable.registered_orchestrators():
        raise ApiError(
            400, f"The function '{function_name}' doesn't exist or is not an orchestrator"
        )
    try:
        started = await durable.start(
            function_name,
            instance_id,
            payload,
            if_exists=policy,
            version=version,
            traceparent=traceparent,
        )
    except InstanceExistsError as error:
        hint = "an instance id can be reused once it has ended"
        if policy is ExistingInstancePolicy.ERROR:
            hint = "ifExists=error refuses an id in use whatever its state"
        elif policy is ExistingInstancePolicy.USE_EXISTING:
            hint = f"ifExists=useExisting keeps only an instance of {function_name!r}"
        raise ApiError(409, f"{error}; {hint}") from None
    if started.created:
        metrics.CLIENT_STARTS.labels(function_name, "http").inc()
    if not started.created and not links.reads_instances:
        return links_response(links, started.instance_id, 200)
    if wait is not None:
        answer = await durable.wait_for_completion_or_create_check_status_response(
            started.instance_id,
            links.base_url,
            timeout=wait.timeout,
            retry_interval=wait.interval,
            access_key=links.access_key,
            give_up=wait.give_up,
        )
        return JSONResponse(answer.body, status_code=answer.status_code, headers=answer.headers)
    if started.kept is not None:
        # 200 with the status of the instance the start kept instead of starting one.
        location = check_status_payload(links.base_url, started.instance_id, links.access_key)
        headers = {"Location": location["statusQueryGetUri"]}
        return JSONResponse(status_payload(started.kept), status_code=200, headers=headers)
    return links_response(links, started.instance_id, 202)


def links_response(links: Links, instance_id: str, status_code: int) -> JSONResponse:
    """The check-status payload; 202 for an instance just started (with ``Retry-After``)."""
    body = check_status_payload(links.base_url, instance_id, links.access_key)
    headers = {"Location": body["statusQueryGetUri"]}
    if status_code == 202:
        headers["Retry-After"] = START_RETRY_AFTER_SECONDS
    return JSONResponse(body, status_code=status_code, headers=headers)
