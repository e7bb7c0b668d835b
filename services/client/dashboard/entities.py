"""The entities pages (ADR 38): the entities by name, paged in id order; one entity's state
and the critical section holding it; and signalling an operation to it, confirmed first
(a management key's login only), as the instance actions are.

Entities are left out of the instances page (as of ``GET /instances``); this is where they
are listed.
"""

from __future__ import annotations

import json
from typing import Any

import aiormq
from fastapi import APIRouter, Request
from fastapi.responses import Response

from contracts.entities import EntityId
from contracts.limits import ValueRefusedError
from durable.broker import PublishFailedError
from services.client.dashboard.common import (
    Actor,
    Client,
    Refused,
    Viewer,
    read_form,
    redirect,
    render,
)
from services.client.dashboard.instances import DEFAULT_PAGE_SIZE, PAGE_SIZES

router = APIRouter()


def _entity_id(name: str, key: str) -> EntityId:
    try:
        return EntityId.of(EntityId(name, key))
    except ValueError as error:
        raise Refused(400, f"There is no entity {name!r} {key!r}: {error}") from None


@router.get("/entities")
async def entities_page(
    request: Request,
    session: Viewer,
    durable: Client,
    name: str = "",
    top: str = "",
    after: str = "",
) -> Response:
    size = int(top) if top.isdigit() and int(top) in PAGE_SIZES else DEFAULT_PAGE_SIZE
    try:
        page = await durable.list_entities(
            name.strip() or None, page_size=size, continuation_token=after or None
        )
    except ValueError:  # a continuation token this service did not issue: start over
        after = ""
        page = await durable.list_entities(name.strip() or None, page_size=size)
    return render(
        request,
        "entities.html",
        session,
        page="entities",
        entities=page.entities,
        next_token=page.continuation_token,
        name=name.strip(),
        top=size,
        after=after,
        page_sizes=PAGE_SIZES,
        registered=sorted(await durable.registered_entities()),
    )


@router.get("/entity")
async def entity_page(
    request: Request, session: Viewer, durable: Client, name: str = "", key: str = ""
) -> Response:
    entity = _entity_id(name, key)
    record = await durable.get_entity(entity)
    return render(
        request,
        "entity.html",
        session,
        page="entities",
        entity=entity,
        name=entity.name.lower(),
        record=record,
        status_code=200 if record is not None else 404,
    )


@router.get("/entity/confirm")
async def confirm_signal(
    request: Request, session: Actor, durable: Client, name: str = "", key: str = ""
) -> Response:
    entity = _entity_id(name, key)
    registered = entity.name.lower() in await durable.registered_entities()
    return render(
        request,
        "entity_signal.html",
        session,
        page="entities",
        entity=entity,
        name=entity.name.lower(),
        registered=registered,
    )


@router.post("/entity/signal")
async def signal(request: Request, session: Actor, durable: Client) -> Response:
    fields = await read_form(request, session)
    entity = _entity_id(fields.get("name", ""), fields.get("key", ""))
    operation = fields.get("operation", "").strip()
    if not operation:
        raise Refused(400, "The signal was refused: it needs an operation.")
    if entity.name.lower() not in await durable.registered_entities():
        raise Refused(
            404, f"The signal was refused: no entity named {entity.name!r} is registered."
        )
    try:
        await durable.signal_entity(entity, operation, _input(fields.get("input", "")))
    except ValueRefusedError as error:
        raise Refused(400, f"The signal was refused: {error}") from None
    except (PublishFailedError, aiormq.exceptions.AMQPError) as error:
        raise Refused(503, f"The signal was refused: {error}") from None
    return redirect(
        request,
        "/entity",
        name=entity.name.lower(),
        key=entity.key,
        done=f"Signal {operation}: sent.",
    )


def _input(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValueRefusedError("the operation's input", f"{text[:80]!r} is not JSON") from None
