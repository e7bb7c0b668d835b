"""The dead-letter page: every dead-letter queue of the deployment with its depth, the first
messages of one with the reason they died, and redrive (a management key's login only).

The same code as ``durable-ops dlq`` (``services.common.dead_letters``): showing moves nothing
(every message taken is returned, in order), redriving publishes each message back to the
queue it came from, confirmed, before removing it. Each request opens its own broker
connection and closes it: the page is visited now and then, and must never disturb the
service's publisher.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aio_pika.abc import AbstractConnection
from fastapi import APIRouter, Request
from fastapi.responses import Response

from durable.broker import connect
from services.client.dashboard.common import (
    Actor,
    Client,
    Dashboard,
    Refused,
    Viewer,
    dashboard_of,
    read_form,
    redirect,
    render,
)
from services.common.dead_letters import (
    DeadLetter,
    DeadLetterError,
    DeadLetterHandler,
    DeadLetterQueue,
    dead_letter_queues,
    depth,
    find_queue,
)
from services.common.loader import load_entry_points

router = APIRouter()

SHOWN_MESSAGES = 20


async def _queues(dashboard: Dashboard, activities: set[str]) -> list[DeadLetterQueue]:
    topology = dashboard.settings.topology
    declared = load_entry_points(dashboard.settings)
    entry_queues = [topology.workflow_name(entry.queue) for entry in declared.entry_points]
    return dead_letter_queues(topology, activities, entry_queues)


@asynccontextmanager
async def _broker(dashboard: Dashboard) -> AsyncIterator[AbstractConnection]:
    try:
        connection = await connect(dashboard.settings.amqp_url, "client-dashboard.dead-letters")
    except (OSError, TimeoutError) as error:
        raise Refused(503, f"The broker cannot be reached: {error}") from None
    try:
        yield connection
    finally:
        await connection.close()


@router.get("/dead-letters")
async def dead_letters_page(
    request: Request, session: Viewer, durable: Client, queue: str = ""
) -> Response:
    dashboard = dashboard_of(request)
    queues = await _queues(dashboard, await durable.registered_activities())
    letters: list[DeadLetter] = []
    chosen = None
    async with _broker(dashboard) as connection:
        depths = [(item, await depth(connection, item.name)) for item in queues]
        if queue:
            chosen = _find(queues, queue)
            handler = DeadLetterHandler(connection, chosen)
            try:
                await handler.run("show", SHOWN_MESSAGES, letters.append, asyncio.Event())
            except DeadLetterError as error:
                raise Refused(404, str(error)) from None
    return render(
        request,
        "dead_letters.html",
        session,
        page="dead-letters",
        depths=depths,
        chosen=chosen,
        letters=letters,
        shown=SHOWN_MESSAGES,
    )


@router.get("/dead-letters/confirm")
async def confirm_redrive(
    request: Request, session: Actor, durable: Client, queue: str = ""
) -> Response:
    dashboard = dashboard_of(request)
    chosen = _find(await _queues(dashboard, await durable.registered_activities()), queue)
    async with _broker(dashboard) as connection:
        count = await depth(connection, chosen.name)
    return render(request, "redrive.html", session, page="dead-letters", chosen=chosen, count=count)


@router.post("/dead-letters/redrive")
async def redrive(request: Request, session: Actor, durable: Client) -> Response:
    fields = await read_form(request, session)
    dashboard = dashboard_of(request)
    chosen = _find(
        await _queues(dashboard, await durable.registered_activities()), fields.get("queue", "")
    )
    async with _broker(dashboard) as connection:
        handler = DeadLetterHandler(connection, chosen)
        try:
            count = await handler.run("redrive", None, lambda _: None, asyncio.Event())
        except DeadLetterError as error:
            raise Refused(409 if error.kind == "foreign" else 503, str(error)) from None
    return redirect(
        request,
        "/dead-letters",
        done=f"{count} message(s) re-driven from {chosen.name} to {chosen.source}.",
    )


def _find(queues: list[DeadLetterQueue], name: str) -> DeadLetterQueue:
    try:
        return find_queue(queues, name)
    except DeadLetterError as error:
        raise Refused(404, str(error)) from None
