"""Reading and purging instances: ``GET``/``DELETE /instances[/{instanceId}]``.

The status of one instance answers 202 (with ``Location`` and ``Retry-After``) while it is
Pending, Running or Suspended, and 200 once it has ended, so polling clients follow it the way
they follow Durable Functions. Lists page with the ``x-ms-continuation-token`` header.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import JsonValue

from contracts import OrchestrationStatus
from durable.client.errors import InstanceRunningError
from durable.client.payloads import instance_url, status_payload
from services.client.api_common import (
    ApiError,
    BaseUrl,
    Client,
    error_responses,
    parse_bool,
    parse_json,
    parse_optional_time,
    parse_runtime_statuses,
)
from services.client.api_schemas import (
    LOCATION,
    RETRY_AFTER,
    InstanceStatusPayload,
    PurgeResult,
    header,
)
from services.client.history_view import history_events

STATUS_RETRY_AFTER_SECONDS = "5"
CONTINUATION_HEADER = "x-ms-continuation-token"
TOTAL_COUNT_HEADER = "x-ms-total-count"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
"""Larger ``top`` values get pages of this size; Durable Functions allows fewer than ``top``
results per page, and clients must follow the continuation token either way."""

router = APIRouter(tags=["instances"])

InstanceId = Annotated[str, Path(alias="instanceId", description="The instance id.")]
ShowInput = Annotated[
    str | None,
    Query(alias="showInput", description="false leaves the input out (default true)."),
]
CreatedTimeFrom = Annotated[
    str | None,
    Query(alias="createdTimeFrom", description="Created at or after this ISO 8601 time."),
]
CreatedTimeTo = Annotated[
    str | None,
    Query(alias="createdTimeTo", description="Created at or before this ISO 8601 time."),
]
RuntimeStatus = Annotated[
    str | None,
    Query(
        alias="runtimeStatus",
        description="Comma-separated runtime statuses: "
        + ", ".join(status.value for status in OrchestrationStatus),
    ),
]


@router.get(
    "/instances/{instanceId}",
    summary="Get an instance's status",
    responses={
        200: {
            "description": "The instance has ended (Completed, Failed or Terminated).",
            "model": InstanceStatusPayload,
        },
        202: {
            "description": "The instance is Pending, Running or Suspended; poll Location.",
            "model": InstanceStatusPayload,
            "headers": {"Location": LOCATION, "Retry-After": RETRY_AFTER},
        },
        500: {
            "description": "The instance Failed (only with returnInternalServerErrorOnFailure).",
            "model": InstanceStatusPayload,
        },
        **error_responses(400, 404),
    },
)
async def get_instance_status(
    request: Request,
    durable: Client,
    base_url: BaseUrl,
    instance_id: InstanceId,
    show_history: Annotated[
        str | None,
        Query(alias="showHistory", description="true adds historyEvents (default false)."),
    ] = None,
    show_history_output: Annotated[
        str | None,
        Query(
            alias="showHistoryOutput",
            description="true adds results to historyEvents (default false).",
        ),
    ] = None,
    show_input: ShowInput = None,
    return_500_on_failure: Annotated[
        str | None,
        Query(
            alias="returnInternalServerErrorOnFailure",
            description="true answers 500 instead of 200 for a Failed instance.",
        ),
    ] = None,
) -> Response:
    """The instance's status, optionally with its history in Durable Functions' shape."""
    with_history = parse_bool(show_history, "showHistory", False)
    with_output = parse_bool(show_history_output, "showHistoryOutput", False)
    with_input = parse_bool(show_input, "showInput", True)
    fail_with_500 = parse_bool(return_500_on_failure, "returnInternalServerErrorOnFailure", False)
    status = await durable.get_status(instance_id)
    if status is None:
        raise ApiError(404, f"no instance {instance_id!r}")
    events = None
    # A Pending instance has no history yet; Durable Functions leaves the field out then.
    if with_history and status.runtime_status is not OrchestrationStatus.PENDING:
        stored = await durable.get_history(instance_id)
        events = history_events(
            [s.event for s in stored], show_output=with_output, execution_id=status.execution_id
        )
    body = status_payload(status, show_input=with_input, history_events=events)
    if not status.runtime_status.is_terminal:
        # Durable Functions points Location at the request's own URL (query included).
        location = instance_url(base_url, instance_id)
        if request.url.query:
            location += f"?{request.url.query}"
        return JSONResponse(
            body,
            status_code=202,
            headers={"Location": location, "Retry-After": STATUS_RETRY_AFTER_SECONDS},
        )
    failed = status.runtime_status is OrchestrationStatus.FAILED
    return JSONResponse(body, status_code=500 if failed and fail_with_500 else 200)


@router.get(
    "/instances",
    summary="List instances",
    responses={
        200: {
            "description": "One page of instances, oldest first.",
            "model": list[InstanceStatusPayload],
            "headers": {
                CONTINUATION_HEADER: header("The token for the next page, when more remain."),
                TOTAL_COUNT_HEADER: header(
                    "With showTotalCount=true: how many instances match, on every page together."
                ),
            },
        },
        **error_responses(400),
    },
)
# Durable Functions' clients ask for the list as ``instances/`` (the extension's route
# template allows both); so does purging by filter below.
@router.get("/instances/", include_in_schema=False)
async def list_instances(
    durable: Client,
    created_time_from: CreatedTimeFrom = None,
    created_time_to: CreatedTimeTo = None,
    runtime_status: RuntimeStatus = None,
    instance_id_prefix: Annotated[
        str | None,
        Query(alias="instanceIdPrefix", description="Instance ids starting with this."),
    ] = None,
    name: Annotated[
        str | None, Query(description="The orchestrator's name (exact, case-sensitive).")
    ] = None,
    custom_status: Annotated[
        str | None,
        Query(
            alias="customStatus",
            description="JSON; instances whose custom status contains it (Postgres jsonb "
            'containment: {"stage": "manager"} matches every custom status object with that '
            "key and value, an array matches arrays holding its elements, a scalar equal "
            "values).",
        ),
    ] = None,
    show_total_count: Annotated[
        str | None,
        Query(
            alias="showTotalCount",
            description=f"true adds the {TOTAL_COUNT_HEADER} header: how many instances match, "
            "on every page together (default false: counting costs a query).",
        ),
    ] = None,
    show_input: ShowInput = None,
    top: Annotated[
        str | None,
        Query(description=f"Page size (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE})."),
    ] = None,
    continuation_token: Annotated[
        str | None,
        Header(
            alias=CONTINUATION_HEADER,
            description="The token from the previous page's response header.",
        ),
    ] = None,
) -> Response:
    """Instances matching every given filter, a page at a time."""
    with_input = parse_bool(show_input, "showInput", True)
    with_count = parse_bool(show_total_count, "showTotalCount", False)
    filters: dict[str, Any] = {
        "created_time_from": parse_optional_time(created_time_from, "createdTimeFrom"),
        "created_time_to": parse_optional_time(created_time_to, "createdTimeTo"),
        "runtime_status": parse_runtime_statuses(runtime_status),
        "instance_id_prefix": instance_id_prefix or None,
        "name": name or None,
        "custom_status_contains": _custom_status(custom_status),
    }
    try:
        page = await durable.get_status_by(
            **filters, top=_page_size(top), continuation_token=continuation_token or None
        )
    except ValueError as error:  # a continuation token this service did not issue
        raise ApiError(400, str(error)) from None
    body = [status_payload(status, show_input=with_input) for status in page.instances]
    headers = {CONTINUATION_HEADER: page.continuation_token} if page.continuation_token else {}
    if with_count:
        headers[TOTAL_COUNT_HEADER] = str(await durable.count_instances(**filters))
    return JSONResponse(body, status_code=200, headers=headers)


def _custom_status(value: str | None) -> JsonValue:
    if value is None or not value.strip():
        return None
    parsed = parse_json(value, "the customStatus filter")
    if parsed is None:
        raise ApiError(400, "customStatus must be a JSON value other than null")
    return parsed


def _page_size(top: str | None) -> int:
    if top is None or not top.strip():
        return DEFAULT_PAGE_SIZE
    try:
        size = int(top)
    except ValueError:
        raise ApiError(400, f"top must be a whole number, not {top!r}") from None
    if size < 1:
        raise ApiError(400, f"top must be at least 1, not {size}")
    return min(size, MAX_PAGE_SIZE)


@router.delete(
    "/instances/{instanceId}",
    summary="Purge an instance's history",
    responses={
        200: {"description": "The instance is gone.", "model": PurgeResult},
        **error_responses(404, 412),
    },
)
async def purge_instance(durable: Client, instance_id: InstanceId) -> Response:
    """Delete an ended instance with its history. An instance that has not ended is refused
    with 412, as Durable Functions does: terminate it first."""
    try:
        deleted = await durable.purge_instance_history(instance_id)
    except InstanceRunningError as error:
        raise ApiError(
            412,
            f"only instances that have ended can be purged; {instance_id!r} is "
            f"{error.status.value}",
        ) from None
    if not deleted:
        raise ApiError(404, f"no instance {instance_id!r}")
    return JSONResponse({"instancesDeleted": deleted}, status_code=200)


@router.delete(
    "/instances",
    summary="Purge the histories of many instances",
    responses={
        200: {"description": "How many instances are gone.", "model": PurgeResult},
        **error_responses(400, 404),
    },
)
@router.delete("/instances/", include_in_schema=False)
async def purge_instances(
    durable: Client,
    created_time_from: CreatedTimeFrom = None,
    created_time_to: CreatedTimeTo = None,
    runtime_status: RuntimeStatus = None,
) -> Response:
    """Delete every ended instance created in the time range (``createdTimeFrom`` is required;
    ``createdTimeTo`` defaults to now) with one of the given statuses. Instances that have
    not ended are never purged."""
    created_from = parse_optional_time(created_time_from, "createdTimeFrom")
    if created_from is None:
        raise ApiError(400, "Please provide a value for the 'createdTimeFrom' parameter.")
    created_to = parse_optional_time(created_time_to, "createdTimeTo") or datetime.now(UTC)
    deleted = await durable.purge_instance_history_by(
        created_from, created_to, parse_runtime_statuses(runtime_status)
    )
    if not deleted:
        raise ApiError(404, "no ended instances match the filters")
    return JSONResponse({"instancesDeleted": deleted}, status_code=200)
