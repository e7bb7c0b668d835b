"""Durable Functions' entity routes (ADR 38): ``POST /entities/{entityName}/{entityKey}?op=``
signals an entity (202), ``GET /entities/{entityName}/{entityKey}`` answers its state (200, or
404 when it has none), ``GET /entities/{entityName}`` lists them (paged with
``x-ms-continuation-token``, as ``GET /instances``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from contracts.entities import EntityId
from contracts.limits import ValueRefusedError
from durable.store.entities import EntityRecord
from services.client.api_common import (
    ApiError,
    Client,
    SdkEncoded,
    error_responses,
    parse_json_body,
)

router = APIRouter(tags=["entities"])

EntityName = Annotated[str, Path(alias="entityName", description="The entity function's name.")]
EntityKey = Annotated[str, Path(alias="entityKey", description="Which entity of that name.")]
CONTINUATION = "x-ms-continuation-token"


def _entity(name: str, key: str) -> EntityId:
    try:
        return EntityId.of(EntityId(name, key))
    except (ValueError, ValueRefusedError) as error:
        raise ApiError(400, str(error)) from error


@router.post(
    "/entities/{entityName}/{entityKey}",
    response_class=Response,
    summary="Signal an entity",
    status_code=202,
    responses={
        202: {"description": "Accepted: the operation is on its way."},
        **error_responses(404),
    },
)
async def signal_entity(
    request: Request,
    durable: Client,
    sdk_encoded: SdkEncoded,
    name: EntityName,
    key: EntityKey,
    op: Annotated[str, Query(description="The operation to run.")] = "",
) -> Response:
    """Send the operation ``op`` with the body (JSON, optional) as its input; one-way.
    404 when no deployment registered an entity of that name: nothing would ever run it."""
    entity = _entity(name, key)
    if entity.name.lower() not in await durable.registered_entities():
        raise ApiError(404, f"The function '{name}' doesn't exist or is not an entity")
    data = parse_json_body(await request.body(), "the operation's input", sdk_encoded=sdk_encoded)
    await durable.signal_entity(entity, op, data)
    return Response(status_code=202)


@router.get(
    "/entities/{entityName}/{entityKey}",
    summary="Read an entity's state",
    responses={200: {"description": "The state."}, **error_responses(404)},
)
async def read_entity_state(durable: Client, name: EntityName, key: EntityKey) -> Any:
    """The entity's state as JSON; 404 when it has none (never had, or was deleted)."""
    response = await durable.read_entity_state(_entity(name, key))
    if not response.entity_exists:
        raise ApiError(404, f"entity {name}@{key} has no state")
    return JSONResponse(response.entity_state)


def _listed(record: EntityRecord, fetch_state: bool) -> dict[str, Any]:
    listed: dict[str, Any] = {
        "entityId": {"name": record.entity_id.name, "key": record.entity_id.key},
        "lastOperationTime": record.last_modified.isoformat().replace("+00:00", "Z"),
    }
    if fetch_state:
        listed["state"] = record.state
    if record.locked_by is not None:
        listed["lockedBy"] = record.locked_by
    return listed


FetchState = Annotated[bool, Query(alias="fetchState", description="Include each state.")]
Top = Annotated[int, Query(ge=1, le=1000, description="At most this many per page.")]
Token = Annotated[str | None, Header(alias=CONTINUATION)]


@router.get("/entities", summary="List entities")
async def list_all_entities(
    durable: Client, fetch_state: FetchState = False, top: Top = 100, token: Token = None
) -> Response:
    """A page of entities of every name, in id order."""
    return await _page(durable, None, fetch_state, top, token)


@router.get("/entities/{entityName}", summary="List the entities of one name")
async def list_entities(
    durable: Client,
    name: EntityName,
    fetch_state: FetchState = False,
    top: Top = 100,
    token: Token = None,
) -> Response:
    """A page of the entities of ``entityName``, in id order; ``x-ms-continuation-token``
    leads to the next."""
    return await _page(durable, name, fetch_state, top, token)


async def _page(
    durable: Any, name: str | None, fetch_state: bool, top: int, token: str | None
) -> Response:
    try:
        page = await durable.list_entities(name, page_size=top, continuation_token=token)
    except ValueError as error:
        raise ApiError(400, str(error)) from error
    headers = {CONTINUATION: page.continuation_token} if page.continuation_token else {}
    return JSONResponse([_listed(r, fetch_state) for r in page.entities], headers=headers)
