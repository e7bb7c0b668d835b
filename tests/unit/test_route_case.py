"""Routes matched in any letter case, without a network: which segments are respelt, which keep
the case they were sent in, and what the app's router then sees."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.client.api import create_app
from services.client.api_route_case import CaseInsensitiveRoutes, RouteSpellings, RouteTemplate
from tests.unit.test_access_keys import MANAGEMENT, NoBackend, settings

SPELLINGS = RouteSpellings(
    [
        "/runtime/webhooks/durabletask/instances/{instanceId}",
        "/runtime/webhooks/durabletask/instances/{instanceId}/raiseEvent/{eventName}",
        "/runtime/webhooks/durabletask/instances/",
        "/runtime/webhooks/durabletask/orchestrators/{functionName}/{instanceId}",
    ]
)


@pytest.mark.parametrize(
    ("sent", "routed"),
    [
        (
            "/RUNTIME/webhooks/DurableTask/Instances/MyId-Ä",
            "/runtime/webhooks/durabletask/instances/MyId-Ä",
        ),
        (
            "/runtime/webhooks/durabletask/INSTANCES/Order-7/RAISEEVENT/Approval",
            "/runtime/webhooks/durabletask/instances/Order-7/raiseEvent/Approval",
        ),
        (
            "/runtime/webhooks/durabletask/Orchestrators/Hello_Cities/Instances",
            "/runtime/webhooks/durabletask/orchestrators/Hello_Cities/Instances",
        ),
        ("/runtime/webhooks/durabletask/Instances/", "/runtime/webhooks/durabletask/instances/"),
    ],
)
def test_literal_segments_are_respelt_and_parameters_keep_their_case(
    sent: str, routed: str
) -> None:
    assert SPELLINGS.canonical(sent) == routed


@pytest.mark.parametrize(
    "sent",
    [
        "/runtime/webhooks/durabletask/instances/MyId",  # already the route's spelling
        "/runtime/webhooks/durabletask/instancez/MyId",  # no route
        "/runtime/webhooks/durabletask/instances/MyId/terminate",  # no such template here
        "/runtime/webhooks/durabletask/instances//raiseEvent/X",  # an empty id
        "/runtime/webhooks/durabletas\u212a/instances/MyId",  # Kelvin sign lowercases to k
    ],
)
def test_a_path_no_template_matches_but_for_ascii_case_is_left_as_sent(sent: str) -> None:
    assert SPELLINGS.canonical(sent) == sent


def test_a_template_with_more_literal_segments_is_preferred_as_aspnet_core_does() -> None:
    spellings = RouteSpellings(["/items/{id}", "/items/latest"])

    assert spellings.canonical("/Items/Latest") == "/items/latest"
    assert spellings.canonical("/Items/Other") == "/items/Other"


def test_a_parameter_that_may_span_segments_cannot_be_matched_segment_by_segment() -> None:
    with pytest.raises(ValueError, match="whole-segment"):
        RouteTemplate.parse("/files/{rest:path}")
    with pytest.raises(ValueError, match="whole-segment"):
        RouteTemplate.parse("/files/{name}.json")


async def test_the_middleware_respells_path_and_raw_path_and_keeps_escapes_in_parameters() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    middleware = CaseInsensitiveRoutes(app, SPELLINGS)
    scope = {
        "type": "http",
        "path": "/Runtime/Webhooks/DurableTask/Instances/caf\u00e9 1",
        "raw_path": b"/Runtime/Webhooks/DurableTask/Instances/caf%C3%A9%201",
        "root_path": "",
    }
    await middleware(scope, None, None)  # type: ignore[arg-type]

    assert seen[0]["path"] == "/runtime/webhooks/durabletask/instances/caf\u00e9 1"
    assert seen[0]["raw_path"] == b"/runtime/webhooks/durabletask/instances/caf%C3%A9%201"
    assert scope["path"].startswith("/Runtime")  # the caller's scope is not changed


async def test_a_path_under_a_root_path_is_respelt_after_it() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    scope = {
        "type": "http",
        "path": "/API/runtime/webhooks/durabletask/Instances/X",
        "root_path": "/API",
    }
    await CaseInsensitiveRoutes(app, SPELLINGS)(scope, None, None)  # type: ignore[arg-type]

    assert seen[0]["path"] == "/API/runtime/webhooks/durabletask/instances/X"


@pytest.mark.parametrize(
    ("method", "path", "reached"),
    [
        ("GET", "/RUNTIME/webhooks/DurableTask/Instances/AbC", "get_status"),
        ("POST", "/runtime/webhooks/durabletask/Instances/AbC/TERMINATE", "terminate"),
        ("GET", "/DurableTask/INSTANCES/", "get_status_by"),
        ("DELETE", "/Runtime/Webhooks/DurableTask/Instances/AbC", "purge_instance_history"),
    ],
)
def test_the_app_routes_mixed_case_literal_segments_to_the_same_handler(
    method: str, path: str, reached: str
) -> None:
    app = create_app(settings(management_keys=MANAGEMENT), NoBackend())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.request(method, path, headers={"x-functions-key": MANAGEMENT})

    assert response.status_code == 418, response.text
    assert reached in response.json()["message"]


def test_a_method_not_served_names_the_allowed_ones_in_any_case_too() -> None:
    app = create_app(settings(management_keys=MANAGEMENT), NoBackend())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.put(
            "/runtime/webhooks/DurableTask/Instances/AbC", headers={"x-functions-key": MANAGEMENT}
        )

    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET"


@pytest.mark.parametrize(
    "path",
    [
        "/runtime/webhooks/DurableTask/Instances/a%2Fb",
        "/runtime/webhooks/DurableTask/Instances/a%00b",
    ],
)
def test_an_escaped_slash_or_nul_is_still_refused_in_any_case(path: str) -> None:
    app = create_app(settings(management_keys=MANAGEMENT), NoBackend())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get(path, headers={"x-functions-key": MANAGEMENT})

    assert response.status_code == 400
