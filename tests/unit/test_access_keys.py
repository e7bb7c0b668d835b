"""Access keys without a network: which settings are refused, what a key opens, how links
carry keys, and that every route of the app asks for one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from durable.client.payloads import (
    PREFIX,
    RPC_PREFIX,
    check_status_payload,
    durable_client_binding,
)
from services.client.api import create_app
from services.client.api_common import ApiError, parse_json_body
from services.client.auth import AccessKeys, AccessKeysError, KeyScope
from services.client.settings import ClientSettings
from tests.helpers.routes import ROUTES, Scene

MANAGEMENT = "management-key-0123456789"
OLD_MANAGEMENT = "management-key-old-0123456789"
START = "start-key-0123456789"


def settings(**values: Any) -> ClientSettings:
    # Every key setting explicit, so the test environment's DF_* variables do not count.
    defaults: dict[str, Any] = {"management_keys": "", "start_keys": "", "auth_disabled": False}
    merged = {**defaults, **values}
    return ClientSettings(
        management_keys=SecretStr(merged["management_keys"]),
        start_keys=SecretStr(merged["start_keys"]),
        auth_disabled=merged["auth_disabled"],
    )


def keys() -> AccessKeys:
    return AccessKeys.from_settings(
        settings(management_keys=f"{MANAGEMENT}, {OLD_MANAGEMENT}", start_keys=START)
    )


def test_a_deployment_without_keys_is_refused_unless_keys_are_disabled_explicitly() -> None:
    with pytest.raises(AccessKeysError, match="DF_AUTH_DISABLED=true"):
        AccessKeys.from_settings(settings())

    assert AccessKeys.from_settings(settings(auth_disabled=True)).disabled


def test_keys_together_with_disabled_keys_are_refused_as_contradictory() -> None:
    with pytest.raises(AccessKeysError, match="both"):
        AccessKeys.from_settings(settings(management_keys=MANAGEMENT, auth_disabled=True))


def test_a_short_key_is_refused() -> None:
    with pytest.raises(AccessKeysError, match="at least 16"):
        AccessKeys.from_settings(settings(management_keys=f"{MANAGEMENT},short"))


def test_each_key_opens_its_scope_and_nothing_else() -> None:
    access = keys()

    assert access.scope_of(MANAGEMENT) is KeyScope.MANAGEMENT
    assert access.scope_of(OLD_MANAGEMENT) is KeyScope.MANAGEMENT
    assert access.scope_of(START) is KeyScope.START
    assert access.scope_of(MANAGEMENT + "x") is None
    assert access.scope_of(MANAGEMENT[:-1]) is None
    assert access.scope_of("") is None


def test_settings_do_not_show_keys_in_their_repr() -> None:
    assert MANAGEMENT not in repr(settings(management_keys=MANAGEMENT))


def test_the_app_refuses_to_be_built_without_keys() -> None:
    with pytest.raises(AccessKeysError):
        create_app(settings())


class NoBackend:
    """Stands in for the client: no database or broker behind the app. A route that gets past
    the key check answers 418 when it reaches for it (or 400 for its parameters), not 401."""

    def __getattr__(self, name: str) -> Any:
        raise ApiError(418, f"no backend in this test ({name})")


def _requests() -> list[tuple[str, str, str]]:
    """(method, path, narrowest scope) of every route, under both prefixes, with the
    ``instances/`` spellings Durable Functions' SDKs use."""
    scene = Scene("w", "e", "u", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    found = []
    for prefix in (PREFIX, RPC_PREFIX):
        for route in ROUTES:
            found.append((route.method, f"{prefix}{route.path(scene)}", route.scope))
        found += [("GET", f"{prefix}/instances/", "management")]
        found += [("DELETE", f"{prefix}/instances/", "management")]
    return found


@pytest.mark.parametrize(("method", "path", "scope"), _requests())
def test_every_route_checks_the_key_before_doing_anything(
    method: str, path: str, scope: str
) -> None:
    app = create_app(settings(management_keys=MANAGEMENT, start_keys=START), NoBackend())  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as http:
        missing = http.request(method, path)
        wrong = http.request(method, path, headers={"x-functions-key": "x" * 20})
        narrow = http.request(method, path, headers={"x-functions-key": START})
        good = http.request(method, path, params={"code": MANAGEMENT})

    assert [missing.status_code, wrong.status_code] == [401, 401]
    assert "message" in missing.json()
    assert (narrow.status_code == 401) is (scope == "management")
    assert good.status_code != 401


def test_the_route_list_of_the_access_key_tests_covers_every_documented_route() -> None:
    app = create_app(settings(management_keys=MANAGEMENT))
    documented = {
        f"{method.upper()} {path.removeprefix(PREFIX)}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }

    assert documented == {route.name for route in ROUTES}


def test_check_status_links_carry_the_key_they_were_issued_with_url_encoded() -> None:
    links = check_status_payload("http://api", "id 1", "k+y/=")

    assert links == {
        "id": "id 1",
        "statusQueryGetUri": f"http://api{PREFIX}/instances/id%201?code=k%2By%2F%3D",
        "sendEventPostUri": f"http://api{PREFIX}/instances/id%201/raiseEvent/{{eventName}}"
        "?code=k%2By%2F%3D",
        "terminatePostUri": f"http://api{PREFIX}/instances/id%201/terminate?reason={{text}}"
        "&code=k%2By%2F%3D",
        "purgeHistoryDeleteUri": f"http://api{PREFIX}/instances/id%201?code=k%2By%2F%3D",
        "restartPostUri": f"http://api{PREFIX}/instances/id%201/restart?code=k%2By%2F%3D",
        "suspendPostUri": f"http://api{PREFIX}/instances/id%201/suspend?reason={{text}}"
        "&code=k%2By%2F%3D",
        "resumePostUri": f"http://api{PREFIX}/instances/id%201/resume?reason={{text}}"
        "&code=k%2By%2F%3D",
    }
    assert "code" not in check_status_payload("http://api", "x")["statusQueryGetUri"]


def test_the_durable_functions_binding_points_its_sdk_at_the_rpc_prefix() -> None:
    binding = durable_client_binding("http://api", START)

    assert binding["rpcBaseUrl"] == f"http://api{RPC_PREFIX}/"
    assert binding["baseUrl"] == f"http://api{PREFIX}"
    assert binding["requiredQueryStringParameters"] == f"code={START}"
    assert binding["managementUrls"]["id"] == "INSTANCEID"
    assert binding["managementUrls"]["rewindPostUri"] == (
        f"http://api{PREFIX}/instances/INSTANCEID/rewind?reason={{text}}&code={START}"
    )
    assert binding["creationUrls"]["createAndWaitOnNewInstancePostUri"] == (
        f"http://api{PREFIX}/orchestrators/{{functionName}}[/{{instanceId}}]"
        f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&code={START}"
    )
    assert durable_client_binding("http://api")["requiredQueryStringParameters"] == ""


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b'"[\\"Oslo\\"]"', ["Oslo"]),
        (b'"\\"text\\""', "text"),
        (b'"null"', None),
        (b'{"already": "plain"}', {"already": "plain"}),
        (b"", None),
    ],
)
def test_values_sent_the_sdks_way_are_decoded_twice(body: bytes, value: object) -> None:
    assert parse_json_body(body, "the input", sdk_encoded=True) == value


def test_a_plain_json_string_stays_a_string_on_the_public_prefix() -> None:
    assert parse_json_body(b'"[1]"', "the input") == "[1]"
    with pytest.raises(ApiError, match="Invalid JSON"):
        parse_json_body(b'"not json"', "the input", sdk_encoded=True)
