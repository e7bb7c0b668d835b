"""The dashboard's logins without a browser or services: which keys open it, what a read key
may not do, and that forged cookies and forms are refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.client.auth import AccessKeys, AccessKeysError, KeyScope
from services.client.dashboard import DASHBOARD_PATH, create_dashboard
from services.client.dashboard.sessions import COOKIE_NAME, Sessions, csrf_matches
from services.client.settings import ClientSettings

MANAGEMENT = "management-key-0123456789"
START = "start-key-0123456789"
READ = "read-key-0123456789"


def settings(**keys: str) -> ClientSettings:
    values: dict[str, Any] = {"management_keys": "", "start_keys": "", "read_keys": "", **keys}
    return ClientSettings(
        **{name: SecretStr(value) for name, value in values.items()}, auth_disabled=False
    )


def access_keys(**keys: str) -> AccessKeys:
    return AccessKeys.from_settings(
        settings(**({"management_keys": MANAGEMENT, "start_keys": START, "read_keys": READ} | keys))
    )


@pytest.fixture
def browser() -> TestClient:
    """The dashboard app alone; no page here reaches the client (a refusal comes first)."""
    app = FastAPI()
    app.mount(
        DASHBOARD_PATH,
        create_dashboard(settings(), access_keys(), client=lambda: None),  # type: ignore[arg-type,return-value]
    )
    return TestClient(app, follow_redirects=False)


def log_in(browser: TestClient, key: str) -> Any:
    return browser.post(
        "/dashboard/login",
        content=f"key={key}&next=/dashboard/approvals",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


def test_a_read_key_is_a_scope_of_its_own_and_each_key_has_one_kind() -> None:
    keys = access_keys()
    assert keys.scope_of(READ) is KeyScope.READ
    assert keys.scope_of(MANAGEMENT) is KeyScope.MANAGEMENT
    with pytest.raises(AccessKeysError, match="listed twice"):
        access_keys(read_keys=START)


def test_pages_send_a_visitor_without_a_login_to_the_login_form(browser: TestClient) -> None:
    answer = browser.get("/dashboard/approvals?days=3")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fapprovals%3Fdays%3D3"
    htmx = browser.get("/dashboard/instances/rows", headers={"hx-request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["hx-redirect"].startswith("/dashboard/login?next=")


@pytest.mark.parametrize("key", ["", "wrong-key-0123456789", START])
def test_a_wrong_key_or_a_start_key_does_not_log_in(browser: TestClient, key: str) -> None:
    answer = log_in(browser, key)
    assert answer.status_code == 401
    assert "does not open the dashboard" in answer.text
    assert COOKIE_NAME not in answer.cookies


def test_a_management_key_logs_in_with_a_strict_http_only_cookie(browser: TestClient) -> None:
    answer = log_in(browser, MANAGEMENT)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/approvals"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/dashboard" in cookie
    assert MANAGEMENT not in cookie


def test_after_login_only_dashboard_pages_are_gone_to(browser: TestClient) -> None:
    answer = browser.post(
        "/dashboard/login",
        content=f"key={MANAGEMENT}&next=//evil.example/x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.headers["location"] == "/dashboard/"


def test_a_read_key_may_look_but_not_act(browser: TestClient) -> None:
    log_in(browser, READ)
    confirm = browser.get("/dashboard/instance/confirm?id=x&action=terminate")
    assert confirm.status_code == 403
    assert "may only look" in confirm.text
    act = browser.post("/dashboard/instance/act", content="id=x&action=terminate")
    assert act.status_code == 403
    assert browser.post("/dashboard/dead-letters/redrive", content="queue=x").status_code == 403


def test_an_action_without_the_forms_csrf_token_is_refused(browser: TestClient) -> None:
    log_in(browser, MANAGEMENT)
    answer = browser.post(
        "/dashboard/instance/act",
        content="id=x&action=terminate&csrf=guessed",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403
    assert "did not come from this dashboard" in answer.text


def test_a_tampered_cookie_is_no_login(browser: TestClient) -> None:
    cookie = log_in(browser, READ).cookies[COOKIE_NAME]
    browser.cookies.clear()
    browser.cookies.set(COOKIE_NAME, cookie.replace(".read.", ".management."))
    answer = browser.get("/dashboard/instance/confirm?id=x&action=terminate")
    assert answer.status_code == 303


def test_pages_forbid_framing_and_scripts_from_elsewhere(browser: TestClient) -> None:
    answer = browser.get("/dashboard/login")
    assert answer.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert browser.get("/dashboard/static/htmx.min.js").status_code == 200


def test_a_login_ends_when_it_expires_or_its_key_is_removed() -> None:
    now = [1_000_000.0]
    sessions = Sessions(access_keys(), lifetime_seconds=60, clock=lambda: now[0])
    cookie = sessions.login(MANAGEMENT)
    assert cookie is not None
    session = sessions.check(cookie)
    assert session is not None
    assert session.may_act
    assert csrf_matches(session, session.csrf_token)
    assert not csrf_matches(session, None)

    rotated = Sessions(access_keys(management_keys="another-management-key-0123"), 60)
    assert rotated.check(cookie) is None
    now[0] += 61
    assert sessions.check(cookie) is None


def test_without_keys_the_dashboard_is_open_and_forms_still_carry_tokens() -> None:
    open_keys = AccessKeys.from_settings(ClientSettings(auth_disabled=True))
    sessions = Sessions(open_keys, 60)
    cookie = sessions.login_without_key()
    assert cookie is not None
    session = sessions.check(cookie)
    assert session is not None
    assert session.may_act
    assert session.csrf_token
