"""Acting on one instance from the dashboard, always in two steps: a confirmation page that says
what will happen (``GET /instance/confirm``), then the form it holds (``POST /instance/act``).

Each action is the ``DurableClient`` call the HTTP API's route makes, so it is refused in the
same cases; it needs a management key's login and the form's CSRF token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
from fastapi import APIRouter, Request
from fastapi.responses import Response

from contracts.limits import ValueRefusedError
from durable.broker import PublishFailedError
from durable.client import DurableClient
from durable.client.errors import (
    InstanceEndedError,
    InstanceExistsError,
    InstanceNotFailedError,
    InstanceNotFoundError,
    InstanceRunningError,
)
from services.client.dashboard.common import Actor, Client, Refused, read_form, redirect, render
from services.client.dashboard.instances import available_actions

router = APIRouter()

ACTIONS: dict[str, tuple[str, str]] = {
    "raise_event": (
        "Raise an event",
        "Sends the event to the instance; it keeps it until its code waits for that name.",
    ),
    "terminate": (
        "Terminate",
        "Ends the instance as Terminated; its pending work is dropped. "
        "This cannot be undone (restart starts it again from the beginning).",
    ),
    "suspend": (
        "Suspend",
        "Pauses the instance; what arrives meanwhile is kept until it is resumed.",
    ),
    "resume": ("Resume", "Resumes the instance; what arrived meanwhile is processed in order."),
    "restart": (
        "Restart",
        "Starts the same orchestrator again with the same input, under a "
        "new instance id (or this one, replacing it once it has ended).",
    ),
    "rewind": (
        "Rewind",
        "Sends the failed instance back to before its failures: failed "
        "activities run again, completed ones keep their results.",
    ),
    "purge": ("Purge", "Deletes the instance and its history for good."),
}
"""Each action's title and what it does, as the confirmation page says it."""

_REFUSALS: tuple[tuple[type[Exception], int], ...] = (
    (InstanceNotFoundError, 404),
    (InstanceEndedError, 410),
    (InstanceNotFailedError, 412),
    (InstanceRunningError, 412),
    (InstanceExistsError, 409),
    (ValueRefusedError, 400),
    (PublishFailedError, 503),
    (aiormq.exceptions.AMQPError, 503),
)


@router.get("/instance/confirm")
async def confirm(
    request: Request, session: Actor, durable: Client, id: str = "", action: str = ""
) -> Response:
    if action not in ACTIONS:
        raise Refused(400, f"There is no action {action!r}.")
    status = await durable.get_status(id)
    if status is None:
        raise Refused(404, f"There is no instance {id!r}.")
    title, effect = ACTIONS[action]
    return render(
        request,
        "confirm.html",
        session,
        page="instances",
        status=status,
        action=action,
        title=title,
        effect=effect,
        expected=action in available_actions(status),
    )


@router.post("/instance/act")
async def act(request: Request, session: Actor, durable: Client) -> Response:
    fields = await read_form(request, session)
    instance_id, action = fields.get("id", ""), fields.get("action", "")
    if action not in ACTIONS:
        raise Refused(400, f"There is no action {action!r}.")
    try:
        outcome = await _perform(durable, action, instance_id, fields)
    except tuple(error for error, _ in _REFUSALS) as error:
        code = next(code for kind, code in _REFUSALS if isinstance(error, kind))
        raise Refused(code, f"{ACTIONS[action][0]} was refused: {error}") from None
    if action == "purge":
        return redirect(request, "/", done=f"Purged {instance_id}.")
    return redirect(request, "/instance", id=outcome, done=f"{ACTIONS[action][0]}: sent.")


async def _perform(
    durable: DurableClient, action: str, instance_id: str, fields: dict[str, str]
) -> str:
    """Run the action; return the instance to show next (a restart's new one)."""
    reason = fields.get("reason") or None
    simple: dict[str, Callable[[str, Any], Awaitable[None]]] = {
        "terminate": durable.terminate,
        "suspend": durable.suspend,
        "resume": durable.resume,
        "rewind": durable.rewind,
    }
    if action in simple:
        await simple[action](instance_id, reason)
    elif action == "raise_event":
        name = fields.get("event", "").strip()
        if not name:
            raise ValueRefusedError("the event", "it needs a name")
        await durable.raise_event(instance_id, name, _event_data(fields.get("data", "")))
    elif action == "restart":
        return await durable.restart(instance_id, new_instance_id=fields.get("same_id") != "on")
    elif action == "purge":
        deleted = await durable.purge_instance_history(instance_id)
        if not deleted:
            raise InstanceNotFoundError(instance_id)
    return instance_id


def _event_data(text: str) -> Any:
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValueRefusedError("the event's data", f"{text[:80]!r} is not JSON") from None
