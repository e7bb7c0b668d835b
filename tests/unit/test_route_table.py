"""The README's and the HTTP API guide's route tables list exactly the routes the app serves:
a route added to the app but not documented, or documented but not served, fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.client.payloads import PREFIX, RPC_PREFIX
from services.client.api import create_app
from tests.helpers.route_docs import route_table, routes_in_cell, served_routes
from tests.unit.test_access_keys import MANAGEMENT, settings

ROOT = Path(__file__).resolve().parents[2]
TABLES = [
    (ROOT / "README.md", "## HTTP API"),
    (ROOT / "docs" / "guide" / "http-api.md", "## Routes"),
]

ALIASES = {"GET /instances/", "DELETE /instances/"}
"""Spellings served for azure-functions-durable's client, which lists and purges at
``instances/`` (ADR 8); the tables name them once, without the slash."""

PAGES = {
    "GET /healthz",
    "GET /livez",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "GET /docs",
    "GET /redoc",
}
"""The service's own pages; ``/docs/oauth2-redirect`` is Swagger UI's, not ours to document."""


def _served() -> dict[str, bool]:
    return served_routes(create_app(settings(management_keys=MANAGEMENT)))


def _api_routes(prefix: str) -> set[str]:
    return {
        f"{method} {path.removeprefix(prefix)}"
        for method, _, path in (name.partition(" ") for name in _served())
        if path.startswith(f"{prefix}/")
    }


@pytest.mark.parametrize(("page", "heading"), TABLES, ids=[page.name for page, _ in TABLES])
def test_the_route_table_lists_every_route_the_api_serves_and_no_other(
    page: Path, heading: str
) -> None:
    documented = route_table(page, heading)
    served = _api_routes(PREFIX) - ALIASES

    assert sorted(served - documented) == [], f"served but not in {page.name}'s table"
    assert sorted(documented - served) == [], f"in {page.name}'s table but not served"


def test_the_routes_hidden_from_the_openapi_document_are_the_known_aliases() -> None:
    hidden = {name for name, in_schema in _served().items() if not in_schema}
    under_prefix = {
        name.replace(f" {PREFIX}/", " /", 1) for name in hidden if f" {PREFIX}/" in name
    }

    assert under_prefix == ALIASES


def test_the_sdks_prefix_serves_the_same_routes() -> None:
    assert _api_routes(RPC_PREFIX) == _api_routes(PREFIX)


def test_the_service_serves_no_page_the_guide_does_not_name() -> None:
    guide = (ROOT / "docs" / "guide" / "http-api.md").read_text(encoding="utf-8")
    pages = {
        name
        for name in _served()
        if not name.split(" ", 1)[1].startswith((f"{PREFIX}/", f"{RPC_PREFIX}/"))
        and name != "GET /docs/oauth2-redirect"
    }

    assert pages == PAGES
    for page in PAGES:
        assert f"`{page.split(' ', 1)[1]}`" in guide, f"{page} is not in the HTTP API guide"


@pytest.mark.parametrize(
    ("cell", "routes"),
    [
        (
            "`POST /orchestrators/{functionName}[/{instanceId}]`",
            {
                "POST /orchestrators/{functionName}",
                "POST /orchestrators/{functionName}/{instanceId}",
            },
        ),
        (
            "`POST /instances/{instanceId}/terminate\\|suspend\\|resume?reason=`",
            {
                "POST /instances/{instanceId}/terminate",
                "POST /instances/{instanceId}/suspend",
                "POST /instances/{instanceId}/resume",
            },
        ),
        (
            "`POST /instances/{instanceId}/suspend?reason=…`, `/resume?reason=…`",
            {"POST /instances/{instanceId}/suspend", "POST /instances/{instanceId}/resume"},
        ),
        (
            "`DELETE /instances?createdTimeFrom=…[&createdTimeTo=…][&runtimeStatus=…]`",
            {"DELETE /instances"},
        ),
    ],
)
def test_the_table_reader_understands_how_the_tables_write_routes(
    cell: str, routes: set[str]
) -> None:
    assert routes_in_cell(cell) == routes
