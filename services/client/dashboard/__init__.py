"""The web dashboard: server-rendered pages for operators and approvers, at ``/dashboard``.

Mounted by the client service's app (``services.client.api``) as an app of its own, so its
pages, errors and headers never mix with the management API's JSON. Pages (Jinja2 templates,
htmx vendored in ``static/``, no build step):

- ``instances``: counts by status, the list with the HTTP API's filters, paging, auto-refresh;
- ``instance``: one instance's values, failure, timeline, family and actions;
- ``approvals``: proposals waiting for a decision, by assignee, and the decisions made;
- ``dead-letters``: the dead-letter queues, their messages' reasons, and redrive;
- ``entities``: durable entities by name, one entity's state and lock holder, and signalling
  an operation to it (ADR 38).

Access: the management API's keys, typed once into the login form (``sessions``); a read key
only looks. ADR 33 records the choices.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from durable.client import DurableClient
from services.client.auth import AccessKeys
from services.client.dashboard import (
    actions,
    approvals,
    dead_letters,
    entities,
    instances,
    login,
)
from services.client.dashboard.common import (
    Dashboard,
    LoginRequired,
    Refused,
    render,
    root,
    templates,
)
from services.client.dashboard.sessions import Sessions
from services.client.settings import ClientSettings

__all__ = ["DASHBOARD_PATH", "create_dashboard"]

DASHBOARD_PATH = "/dashboard"
_HEADERS = {
    # Scripts only from the dashboard itself; styles inline too (the timeline's bars are
    # placed with style attributes). No framing, no referrer (URLs hold instance ids).
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_dashboard(
    settings: ClientSettings, keys: AccessKeys, client: Callable[[], DurableClient]
) -> FastAPI:
    """The dashboard's app, to mount at ``DASHBOARD_PATH``; ``client`` gives the service's
    ``DurableClient`` once it is connected."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = Dashboard(
        settings=settings,
        sessions=Sessions(keys, settings.dashboard_session_hours * 3600),
        templates=templates(),
        client=client,
        secure_cookies=settings.public_base_url.startswith("https://"),
    )
    app.mount(
        "/static",
        StaticFiles(packages=[("services.client.dashboard", "static")]),
        name="static",
    )
    for router in (login.router, instances.router, actions.router, approvals.router):
        app.include_router(router)
    app.include_router(dead_letters.router)
    app.include_router(entities.router)
    app.add_exception_handler(LoginRequired, _to_login)
    app.add_exception_handler(Refused, _refused)
    app.add_middleware(BaseHTTPMiddleware, dispatch=_security_headers)
    return app


async def _security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _to_login(request: Request, error: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login_url = f"{root(request)}/login?next={quote(target, safe='')}"
    if request.headers.get("hx-request"):
        # htmx follows this header with a full page load; a 303 would be swapped in.
        return Response(status_code=401, headers={"HX-Redirect": login_url})
    return RedirectResponse(login_url, status_code=303)


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, Refused)
    return render(request, "refused.html", None, status_code=error.status_code, error=error)
