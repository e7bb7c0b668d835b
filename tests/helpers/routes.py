"""Every route of the HTTP API, as a request the access-key tests can send, and what it answers
when a management key sends it.

Requests target a ``Scene``: a running instance, an ended one and an id nobody uses, so a
refused call can be checked to have changed none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.helpers.http import PREFIX

START = "start"
MANAGEMENT = "management"


@dataclass(frozen=True)
class Scene:
    """What the requests act on."""

    waiting: str
    """A ``waits_for_approval`` instance, Running."""
    ended: str
    """A Completed ``hello_cities`` instance."""
    unused: str
    """An instance id no instance has."""
    since: datetime
    """Just before ``ended`` was created."""
    until: datetime
    """Just after ``waiting`` was created."""


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    """The route as the OpenAPI document names it (under ``PREFIX``)."""
    scope: str
    """The narrowest key that opens it."""
    path: Callable[[Scene], str]
    accepted: int
    """What it answers a management key, on a fresh scene."""
    params: Callable[[Scene], dict[str, str]] = field(default=lambda scene: {})
    json: Any = None

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


def _window(scene: Scene) -> dict[str, str]:
    return {
        "createdTimeFrom": scene.since.isoformat(),
        "createdTimeTo": scene.until.isoformat(),
        "runtimeStatus": "Completed",
    }


ROUTES = [
    Route(
        "POST",
        "/orchestrators/{functionName}",
        START,
        lambda s: "/orchestrators/hello_cities",
        202,
        json=["Oslo"],
    ),
    Route(
        "POST",
        "/orchestrators/{functionName}/{instanceId}",
        START,
        lambda s: f"/orchestrators/hello_cities/{s.unused}",
        202,
        json=["Oslo"],
    ),
    Route(
        "POST",
        "/instances/{instanceId}/raiseEvent/{eventName}",
        START,
        lambda s: f"/instances/{s.waiting}/raiseEvent/Approval",
        202,
        json={"approved": True},
    ),
    Route("GET", "/instances/{instanceId}", MANAGEMENT, lambda s: f"/instances/{s.waiting}", 202),
    Route(
        "GET",
        "/instances",
        MANAGEMENT,
        lambda s: "/instances",
        200,
        params=lambda s: {"instanceIdPrefix": s.waiting},
    ),
    Route("DELETE", "/instances/{instanceId}", MANAGEMENT, lambda s: f"/instances/{s.ended}", 200),
    Route("DELETE", "/instances", MANAGEMENT, lambda s: "/instances", 200, params=_window),
    Route(
        "POST",
        "/instances/{instanceId}/terminate",
        MANAGEMENT,
        lambda s: f"/instances/{s.waiting}/terminate",
        202,
        params=lambda s: {"reason": "refused?"},
    ),
    Route(
        "POST",
        "/instances/{instanceId}/suspend",
        MANAGEMENT,
        lambda s: f"/instances/{s.waiting}/suspend",
        202,
    ),
    Route(
        "POST",
        "/instances/{instanceId}/resume",
        MANAGEMENT,
        lambda s: f"/instances/{s.waiting}/resume",
        202,
    ),
    Route(
        "POST",
        "/instances/{instanceId}/restart",
        MANAGEMENT,
        lambda s: f"/instances/{s.ended}/restart",
        202,
    ),
    Route(
        "POST",
        "/instances/{instanceId}/rewind",
        MANAGEMENT,
        lambda s: f"/instances/{s.ended}/rewind",
        412,  # only Failed instances can be rewound
    ),
    Route(
        "POST",
        "/entities/{entityName}/{entityKey}",
        MANAGEMENT,
        lambda s: f"/entities/counter/{s.unused}",
        202,
        params=lambda s: {"op": "add"},
        json=1,
    ),
    Route(
        "GET",
        "/entities/{entityName}/{entityKey}",
        MANAGEMENT,
        lambda s: f"/entities/counter/{s.ended}",
        404,  # never signalled: no state
    ),
    Route("GET", "/entities/{entityName}", MANAGEMENT, lambda s: "/entities/counter", 200),
    Route("GET", "/entities", MANAGEMENT, lambda s: "/entities", 200),
]


def request_of(route: Route, scene: Scene, prefix: str = PREFIX) -> dict[str, Any]:
    """``httpx.AsyncClient.request`` arguments for the route on ``scene``."""
    arguments: dict[str, Any] = {
        "method": route.method,
        "url": f"{prefix}{route.path(scene)}",
        "params": route.params(scene),
    }
    if route.json is not None:
        arguments["json"] = route.json
    return arguments
