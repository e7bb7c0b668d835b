"""What every dashboard page shares: the login it was opened with, rendering, forms, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from durable.client import DurableClient
from services.client.dashboard.sessions import (
    COOKIE_NAME,
    DashboardSession,
    Sessions,
    csrf_matches,
)
from services.client.dashboard.timeline import format_duration
from services.client.settings import ClientSettings


@dataclass(frozen=True)
class Dashboard:
    """The dashboard app's state: settings, logins, templates and the service's client."""

    settings: ClientSettings
    sessions: Sessions
    templates: Jinja2Templates
    client: Callable[[], DurableClient]
    secure_cookies: bool


class LoginRequired(Exception):
    """No valid login: the page answers with the login form instead."""


class Refused(Exception):
    """A request the login may not make, or cannot be done: shown as a page with a message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def templates() -> Jinja2Templates:
    environment = Environment(
        loader=PackageLoader("services.client.dashboard", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["time"] = _time
    environment.filters["duration"] = format_duration
    environment.filters["pretty"] = _pretty
    return Jinja2Templates(env=environment)


def _time(moment: datetime | None) -> str:
    """UTC to the millisecond, readable: ``2026-01-31 09:00:00.123Z``."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def dashboard_of(request: Request) -> Dashboard:
    state: Dashboard = request.app.state.dashboard
    return state


def _session(request: Request) -> DashboardSession:
    session = dashboard_of(request).sessions.check(request.cookies.get(COOKIE_NAME))
    if session is None:
        raise LoginRequired
    return session


def _acting_session(request: Request) -> DashboardSession:
    session = _session(request)
    if not session.may_act:
        raise Refused(403, "This login may only look: acting needs a management key.")
    return session


def _client(request: Request) -> DurableClient:
    return dashboard_of(request).client()


Viewer = Annotated[DashboardSession, Depends(_session)]
"""The login of a page that only reads."""
Actor = Annotated[DashboardSession, Depends(_acting_session)]
"""The login of an action: a management key's."""
Client = Annotated[DurableClient, Depends(_client)]


def root(request: Request) -> str:
    """Where the dashboard is mounted (``/dashboard``): links are built from it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    session: DashboardSession | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return dashboard_of(request).templates.TemplateResponse(
        request,
        template,
        {"root": root(request), "session": session, **context},
        status_code=status_code,
    )


async def read_form(request: Request, session: DashboardSession) -> dict[str, str]:
    """An urlencoded form's fields, once its CSRF token has been checked (``Refused`` else)."""
    fields = dict(parse_qsl((await request.body()).decode(errors="replace")))
    if not csrf_matches(session, fields.get("csrf")):
        raise Refused(403, "The form has expired or did not come from this dashboard: reload it.")
    return fields


def redirect(request: Request, path: str, **query: str) -> Response:
    """303 to a dashboard page (the answer to a POST, so a reload does not repeat it)."""
    suffix = f"?{urlencode(query)}" if query else ""
    return RedirectResponse(f"{root(request)}{path}{suffix}", status_code=303)
