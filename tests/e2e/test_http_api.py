"""The client service's HTTP API (Durable Functions' management routes) on the real services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from deploy.processes import ServiceGroup
from services.client.client import DurableClient
from tests.conftest import unique
from tests.helpers.waiting import assert_eventually
from workflows.samples import CITIES

pytestmark = pytest.mark.e2e

PREFIX = "/runtime/webhooks/durabletask"
CHECK_STATUS_FIELDS = {
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "suspendPostUri",
    "resumePostUri",
    "restartPostUri",
}


@pytest.fixture
def base_url(services: ServiceGroup) -> str:
    host = services.env.get("DF_HTTP_HOST", "127.0.0.1")
    return f"http://{host}:{services.env['DF_HTTP_PORT']}"


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as http:
        yield http


async def test_start_answers_202_with_the_check_status_payload_and_location(
    http: httpx.AsyncClient, base_url: str
) -> None:
    response = await http.post(f"{PREFIX}/orchestrators/hello_cities")

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == CHECK_STATUS_FIELDS
    instance_url = f"{base_url}{PREFIX}/instances/{body['id']}"
    assert body["statusQueryGetUri"] == instance_url
    assert body["sendEventPostUri"] == f"{instance_url}/raiseEvent/{{eventName}}"
    assert body["terminatePostUri"] == f"{instance_url}/terminate?reason={{text}}"
    assert body["purgeHistoryDeleteUri"] == instance_url
    assert response.headers["Location"] == instance_url
    assert int(response.headers["Retry-After"]) > 0


async def test_status_is_202_while_running_and_200_with_the_output_once_completed(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/slow_chain", json={"steps": 1, "delay": 1.0})
    assert started.status_code == 202, started.text
    status_url = started.json()["statusQueryGetUri"]

    # Its one activity takes a second, so the instance cannot have finished yet.
    running = await http.get(status_url)

    assert running.status_code == 202, running.text
    assert running.json()["runtimeStatus"] in {"Pending", "Running"}
    assert running.json()["output"] is None
    assert running.headers["Location"] == status_url
    assert int(running.headers["Retry-After"]) > 0

    async def completed() -> httpx.Response:
        response = await http.get(status_url)
        assert response.status_code in {200, 202}, response.text
        assert response.status_code == 200, f"still {response.json()['runtimeStatus']}"
        return response

    done = await assert_eventually(completed, timeout=30, interval=0.1)
    body = done.json()
    assert body["runtimeStatus"] == "Completed"
    assert [result["step"] for result in body["output"]] == [0]
    assert body["input"] == {"steps": 1, "delay": 1.0}
    assert body["name"] == "slow_chain"
    assert body["instanceId"] == started.json()["id"]
    assert "Location" not in done.headers


async def test_hello_cities_started_over_http_completes_with_its_greetings(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/hello_cities")
    status_url = started.json()["statusQueryGetUri"]

    async def completed() -> httpx.Response:
        response = await http.get(status_url)
        assert response.status_code in {200, 202}, response.text
        if response.status_code == 202:
            assert response.json()["runtimeStatus"] in {"Pending", "Running"}
        assert response.status_code == 200
        return response

    body = (await assert_eventually(completed, timeout=30)).json()
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == [f"Hello {city}!" for city in CITIES]
    assert body["createdTime"].endswith("Z")
    assert body["lastUpdatedTime"].endswith("Z")


async def test_start_with_an_instance_id_and_a_json_input(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("http-")

    started = await http.post(
        f"{PREFIX}/orchestrators/hello_cities/{instance_id}", json=["Oslo", "Lima"]
    )

    assert started.status_code == 202, started.text
    assert started.json()["id"] == instance_id
    status = await client.wait_for_completion(instance_id, timeout=30)
    assert status.input == ["Oslo", "Lima"]
    assert status.output == ["Hello Oslo!", "Hello Lima!"]


async def test_starting_an_instance_id_in_use_is_a_conflict(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("http-")
    first = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}")
    assert first.status_code == 202, first.text

    second = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}")

    assert second.status_code == 409, second.text
    assert instance_id in second.json()["message"]


async def test_unknown_instance_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{PREFIX}/instances/{unique('nobody-')}")

    assert response.status_code == 404
    assert "message" in response.json()


async def test_unknown_orchestrator_is_404_and_starts_nothing(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("http-")

    response = await http.post(f"{PREFIX}/orchestrators/no_such_orchestrator/{instance_id}")

    assert response.status_code == 404, response.text
    assert "no_such_orchestrator" in response.json()["message"]
    assert await client.get_status(instance_id) is None


async def test_malformed_json_body_is_400_and_starts_nothing(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("http-")

    response = await http.post(
        f"{PREFIX}/orchestrators/hello_cities/{instance_id}",
        content=b'{"cities": ["Oslo",',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert "JSON" in response.json()["message"]
    assert await client.get_status(instance_id) is None
