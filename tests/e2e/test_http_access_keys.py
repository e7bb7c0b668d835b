"""Access keys on the real client service: every route refuses a missing or wrong key with 401
and changes nothing, accepts the right key, and a start key opens only starts and events.

The session's services run with two management keys (``MANAGEMENT_KEY`` and, as during a
rotation, ``ROTATED_MANAGEMENT_KEY``) and a start key (``START_KEY``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from contracts import EventRaised, OrchestrationStatus
from durable.client import DurableClient, InstanceEndedError
from durable.client.payloads import RPC_PREFIX
from tests.conftest import MANAGEMENT_KEY, ROTATED_MANAGEMENT_KEY, START_KEY, unique
from tests.helpers.http import PREFIX, poll_until_status
from tests.helpers.routes import MANAGEMENT, ROUTES, START, Route, Scene, request_of
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e

WRONG_KEY = "not-a-key-of-this-deployment"


async def make_scene(client: DurableClient) -> Scene:
    prefix = unique("keys-")
    since = datetime.now(UTC)
    ended = f"{prefix}-ended"
    await client.start_new("hello_cities", ended, ["Oslo"])
    await client.wait_for_completion(ended, timeout=30)
    waiting = f"{prefix}-waiting"
    await client.start_new("waits_for_approval", waiting, 60)

    async def running() -> bool:
        status = await client.get_status(waiting)
        assert status is not None
        return status.runtime_status is OrchestrationStatus.RUNNING

    await assert_eventually(running, timeout=30)
    created = await client.get_status(waiting)
    assert created is not None
    return Scene(waiting, ended, f"{prefix}-unused", since, created.created_at)


async def tear_down(client: DurableClient, scene: Scene) -> None:
    with contextlib.suppress(InstanceEndedError):
        await client.terminate(scene.waiting, "test done")


@pytest.fixture(scope="module")
async def shared_scene(services: object, client: DurableClient) -> AsyncIterator[Scene]:
    """One scene for every refused call: none of them may change it."""
    scene = await make_scene(client)
    yield scene
    await tear_down(client, scene)


@pytest.fixture
async def bare(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that presents no key unless a request does."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as bare:
        yield bare


async def assert_unchanged(http: httpx.AsyncClient, client: DurableClient, scene: Scene) -> None:
    """Nothing was started, sent, suspended, terminated or purged.

    A marker event raised with a good key now is published after anything the refused call
    could have published, to the same partition: once the marker is in the history, anything
    the refused call had sent would be there before it.
    """
    marker = unique("marker-")
    sent = await http.post(f"{PREFIX}/instances/{scene.waiting}/raiseEvent/{marker}", json=1)
    assert sent.status_code == 202, sent.text

    async def marker_recorded() -> list[object]:
        history = [stored.event for stored in await client.get_history(scene.waiting)]
        assert any(isinstance(e, EventRaised) and e.name == marker for e in history)
        return history

    history = await assert_eventually(marker_recorded, timeout=30)
    raised = [e.name for e in history if isinstance(e, EventRaised)]
    assert all(name.startswith("marker-") for name in raised), raised
    kinds = {type(event).__name__ for event in history}
    assert not kinds & {"ExecutionSuspended", "ExecutionResumed", "ExecutionTerminated"}
    waiting = await client.get_status(scene.waiting)
    assert waiting is not None
    assert waiting.runtime_status is OrchestrationStatus.RUNNING
    ended = await client.get_status(scene.ended)
    assert ended is not None
    assert ended.runtime_status is OrchestrationStatus.COMPLETED
    assert await client.get_status(scene.unused) is None
    started = await client.count_instances(name="hello_cities", created_time_from=scene.since)
    assert started == 1, "a start or restart went through"


REFUSALS = [
    pytest.param(route, refusal, id=f"{route.name} {refusal}")
    for route in ROUTES
    for refusal in ("no key", "wrong header", "wrong code", "rpc prefix", "start key")
    if refusal != "start key" or route.scope == MANAGEMENT
]


@pytest.mark.parametrize(("route", "refusal"), REFUSALS)
async def test_a_route_refuses_a_missing_wrong_or_too_narrow_key_and_changes_nothing(
    bare: httpx.AsyncClient,
    http: httpx.AsyncClient,
    client: DurableClient,
    shared_scene: Scene,
    route: Route,
    refusal: str,
) -> None:
    request = request_of(route, shared_scene, RPC_PREFIX if refusal == "rpc prefix" else PREFIX)
    match refusal:
        case "wrong header":
            request["headers"] = {"x-functions-key": WRONG_KEY}
        case "wrong code":
            request["params"] = {**request["params"], "code": WRONG_KEY}
        case "start key":
            request["headers"] = {"x-functions-key": START_KEY}

    response = await bare.request(**request)

    assert response.status_code == 401, response.text
    message = response.json()["message"]
    expected = {"no key": "required", "rpc prefix": "required", "start key": "management"}
    assert expected.get(refusal, "not valid") in message
    await assert_unchanged(http, client, shared_scene)


@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
async def test_a_route_accepts_a_management_key_in_the_code_parameter(
    bare: httpx.AsyncClient, client: DurableClient, route: Route
) -> None:
    scene = await make_scene(client)
    request = request_of(route, scene)
    request["params"] = {**request["params"], "code": MANAGEMENT_KEY}

    response = await bare.request(**request)

    assert response.status_code == route.accepted, response.text
    await tear_down(client, scene)


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.scope == START],
    ids=[r.name for r in ROUTES if r.scope == START],
)
async def test_a_start_key_starts_orchestrations_and_raises_events(
    bare: httpx.AsyncClient, client: DurableClient, route: Route
) -> None:
    scene = await make_scene(client)
    request = request_of(route, scene)
    request["headers"] = {"x-functions-key": START_KEY}

    response = await bare.request(**request)

    assert response.status_code == route.accepted, response.text
    await tear_down(client, scene)


async def test_the_links_of_a_start_carry_its_key_and_work_when_followed(
    bare: httpx.AsyncClient, client: DurableClient
) -> None:
    started = await bare.post(
        f"{PREFIX}/orchestrators/waits_for_approval", params={"code": MANAGEMENT_KEY}, json=60
    )
    assert started.status_code == 202, started.text
    links = started.json()
    assert all(f"code={MANAGEMENT_KEY}" in url for key, url in links.items() if key != "id")

    running = await poll_until_status(bare, links["statusQueryGetUri"], "Running")
    assert f"code={MANAGEMENT_KEY}" in running.headers["Location"]
    suspended = await bare.post(links["suspendPostUri"].replace("{text}", "pause"))
    await poll_until_status(bare, links["statusQueryGetUri"], "Suspended")
    resumed = await bare.post(links["resumePostUri"].replace("{text}", "go+on"))
    await poll_until_status(bare, links["statusQueryGetUri"], "Running")
    approval = links["sendEventPostUri"].replace("{eventName}", "Approval")
    raised = await bare.post(approval, json={"approved": True})
    done = await poll_until_status(bare, links["statusQueryGetUri"], "Completed")
    restarted = await bare.post(links["restartPostUri"])
    purged = await bare.delete(links["purgeHistoryDeleteUri"])

    assert [suspended.status_code, resumed.status_code, raised.status_code] == [202, 202, 202]
    assert done.json()["output"] == {"answer": {"approved": True}}
    assert restarted.status_code == 202, restarted.text
    assert purged.json() == {"instancesDeleted": 1}
    again = restarted.json()
    assert f"code={MANAGEMENT_KEY}" in again["terminatePostUri"]
    terminated = await bare.post(again["terminatePostUri"].replace("{text}", "done"))
    assert terminated.status_code == 202, terminated.text
    ended = await client.wait_for_completion(again["id"], timeout=30)
    assert ended.runtime_status is OrchestrationStatus.TERMINATED


async def test_a_start_keys_links_carry_it_and_open_only_its_events(
    bare: httpx.AsyncClient, client: DurableClient
) -> None:
    started = await bare.post(
        f"{PREFIX}/orchestrators/waits_for_approval",
        headers={"x-functions-key": START_KEY},
        json=60,
    )
    assert started.status_code == 202, started.text
    links = started.json()

    status = await bare.get(links["statusQueryGetUri"])
    terminate = await bare.post(links["terminatePostUri"].replace("{text}", "no"))
    purge = await bare.delete(links["purgeHistoryDeleteUri"])
    raised = await bare.post(links["sendEventPostUri"].replace("{eventName}", "Approval"), json=7)

    assert all(f"code={START_KEY}" in url for key, url in links.items() if key != "id")
    assert [status.status_code, terminate.status_code, purge.status_code] == [401, 401, 401]
    assert raised.status_code == 202, raised.text
    ended = await client.wait_for_completion(links["id"], timeout=30)
    assert ended.output == {"answer": 7}


async def test_a_rotated_management_key_opens_every_route_too(bare: httpx.AsyncClient) -> None:
    response = await bare.get(
        f"{PREFIX}/instances", headers={"x-functions-key": ROTATED_MANAGEMENT_KEY}
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("header", "code", "expected"),
    [(MANAGEMENT_KEY, WRONG_KEY, 200), (WRONG_KEY, MANAGEMENT_KEY, 401)],
    ids=["good header, wrong code", "wrong header, good code"],
)
async def test_the_header_key_counts_when_both_are_given(
    bare: httpx.AsyncClient, header: str, code: str, expected: int
) -> None:
    response = await bare.get(
        f"{PREFIX}/instances", params={"code": code}, headers={"x-functions-key": header}
    )

    assert response.status_code == expected, response.text


async def test_health_and_the_openapi_documents_need_no_key(bare: httpx.AsyncClient) -> None:
    health = await bare.get("/healthz")
    spec = await bare.get("/openapi.json")
    docs = await bare.get("/docs")

    assert [health.status_code, spec.status_code, docs.status_code] == [200, 200, 200]
    schemes = spec.json()["components"]["securitySchemes"]
    assert {scheme["name"] for scheme in schemes.values()} == {"code", "x-functions-key"}
    for path, operations in spec.json()["paths"].items():
        for method, operation in operations.items():
            assert "401" in operation["responses"], f"{method} {path}"
            assert operation["security"], f"{method} {path}"
