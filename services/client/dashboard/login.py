"""Logging in to the dashboard with an access key, and out again (``sessions`` holds the how)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.client.dashboard.common import Viewer, dashboard_of, read_form, render, root
from services.client.dashboard.sessions import COOKIE_NAME

router = APIRouter()


@router.get("/login")
async def login_form(request: Request, next: str = "") -> Response:
    sessions = dashboard_of(request).sessions
    cookie = sessions.login_without_key()
    if cookie is not None:  # served without keys: nothing to ask
        return _logged_in(request, cookie, next)
    return render(request, "login.html", None, next=_safe_next(request, next))


@router.post("/login")
async def login(request: Request) -> Response:
    fields = dict(parse_qsl((await request.body()).decode(errors="replace")))
    next_page = fields.get("next", "")
    cookie = dashboard_of(request).sessions.login(fields.get("key", "").strip())
    if cookie is None:
        return render(
            request,
            "login.html",
            None,
            status_code=401,
            next=_safe_next(request, next_page),
            error="That key does not open the dashboard: a management key or a read key does.",
        )
    return _logged_in(request, cookie, next_page)


@router.post("/logout")
async def logout(request: Request, session: Viewer) -> Response:
    await read_form(request, session)
    response = RedirectResponse(f"{root(request)}/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path=root(request) or "/")
    return response


def _logged_in(request: Request, cookie: str, next_page: str) -> Response:
    dashboard = dashboard_of(request)
    response = RedirectResponse(_safe_next(request, next_page), status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        cookie,
        max_age=int(dashboard.settings.dashboard_session_hours * 3600),
        path=root(request) or "/",
        httponly=True,
        samesite="strict",
        secure=dashboard.secure_cookies,
    )
    return response


def _safe_next(request: Request, next_page: str) -> str:
    """Where to go after logging in: a dashboard page only, never another site."""
    base = root(request)
    if (
        next_page.startswith(base + "/")
        and not next_page.startswith("//")
        and "\\" not in next_page
    ):
        return next_page
    return base + "/"
