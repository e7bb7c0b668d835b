"""The client service's HTTP API: starting instances and reading their status (Durable
Functions' routes, codes, headers and payloads) on the real services."""

from __future__ import annotations

import httpx
import pytest

from durable.client import DurableClient
from tests.conftest import MANAGEMENT_KEY, unique
from tests.helpers.http import PREFIX, poll_until_ended, poll_until_status
from tests.helpers.waiting import assert_eventually
from workflows.samples import CITIES

pytestmark = pytest.mark.e2e

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
STATUS_FIELDS = {
    "name",
    "instanceId",
    "runtimeStatus",
    "input",
    "customStatus",
    "output",
    "createdTime",
    "lastUpdatedTime",
}


async def test_start_answers_202_with_the_check_status_payload_and_location(
    http: httpx.AsyncClient, base_url: str
) -> None:
    response = await http.post(f"{PREFIX}/orchestrators/hello_cities")

    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == CHECK_STATUS_FIELDS
    instance_url = f"{base_url}{PREFIX}/instances/{body['id']}"
    # Every link carries the key the start was made with, as Durable Functions' links do.
    code = f"code={MANAGEMENT_KEY}"
    assert body["statusQueryGetUri"] == f"{instance_url}?{code}"
    assert body["sendEventPostUri"] == f"{instance_url}/raiseEvent/{{eventName}}?{code}"
    assert body["terminatePostUri"] == f"{instance_url}/terminate?reason={{text}}&{code}"
    assert body["purgeHistoryDeleteUri"] == f"{instance_url}?{code}"
    assert body["restartPostUri"] == f"{instance_url}/restart?{code}"
    assert body["suspendPostUri"] == f"{instance_url}/suspend?reason={{text}}&{code}"
    assert body["resumePostUri"] == f"{instance_url}/resume?reason={{text}}&{code}"
    assert response.headers["Location"] == f"{instance_url}?{code}"
    assert response.headers["Retry-After"] == "10"
    assert response.headers["Content-Type"].startswith("application/json")


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
    assert running.headers["Retry-After"] == "5"
    assert set(running.json()) == STATUS_FIELDS

    done = await poll_until_ended(http, status_url)
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


async def test_starting_an_instance_id_in_use_is_a_conflict_and_changes_nothing(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("http-")
    first = await http.post(f"{PREFIX}/orchestrators/waits_for_approval/{instance_id}", json=30)
    assert first.status_code == 202, first.text

    second = await http.post(f"{PREFIX}/orchestrators/waits_for_approval/{instance_id}", json=5)

    assert second.status_code == 409, second.text
    assert instance_id in second.json()["message"]
    status = await client.get_status(instance_id)
    assert status is not None
    assert status.input == 30
    await client.terminate(instance_id, "test done")


async def test_starting_the_id_of_an_ended_instance_replaces_it(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    instance_id = unique("http-")
    await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}", json=["Oslo"])
    first = await client.wait_for_completion(instance_id, timeout=30)

    again = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}", json=["Lima"])

    assert again.status_code == 202, again.text
    second = await client.wait_for_completion(instance_id, timeout=30)
    assert second.execution_id != first.execution_id
    assert second.output == ["Hello Lima!"]
    starts = [
        s for s in await client.get_history(instance_id) if s.event.event_type == "ExecutionStarted"
    ]
    assert len(starts) == 1


async def test_unknown_instance_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{PREFIX}/instances/{unique('nobody-')}")

    assert response.status_code == 404
    assert "message" in response.json()


async def test_unknown_orchestrator_is_400_and_starts_nothing(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    # Durable Functions answers 400 when "the specified orchestrator function doesn't exist".
    instance_id = unique("http-")

    response = await http.post(f"{PREFIX}/orchestrators/no_such_orchestrator/{instance_id}")

    assert response.status_code == 400, response.text
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


@pytest.mark.parametrize("instance_id", ["@entity", "a%3Fb", "a%23b", "a%5Cb", "x" * 257])
async def test_an_instance_id_durable_functions_refuses_is_400_and_starts_nothing(
    http: httpx.AsyncClient, client: DurableClient, instance_id: str
) -> None:
    response = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}")

    assert response.status_code == 400, response.text
    assert "instance id" in response.json()["message"]
    assert (await client.get_status_by(instance_id_prefix=instance_id[:5])).instances == []


async def test_start_with_timeout_answers_200_with_the_output_when_it_completes_in_time(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        f"{PREFIX}/orchestrators/hello_cities",
        params={"timeout": "30", "pollingInterval": "0.1"},
    )

    assert response.status_code == 200, response.text
    assert response.json() == [f"Hello {city}!" for city in CITIES]


async def test_start_with_timeout_answers_202_when_the_instance_is_still_running(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    response = await http.post(
        f"{PREFIX}/orchestrators/waits_for_approval",
        json=30,
        params={"timeout": "0.3", "pollingInterval": "0.1"},
    )

    assert response.status_code == 202, response.text
    assert set(response.json()) == CHECK_STATUS_FIELDS
    assert response.headers["Location"] == response.json()["statusQueryGetUri"]
    await client.terminate(response.json()["id"], "test done")


@pytest.mark.parametrize(
    "params",
    [
        {"timeout": "soon", "pollingInterval": "1"},
        {"timeout": "1", "pollingInterval": "-1"},
        {"timeout": "1", "pollingInterval": "5"},
    ],
)
async def test_start_with_bad_wait_parameters_is_400_and_starts_nothing(
    http: httpx.AsyncClient, client: DurableClient, params: dict[str, str]
) -> None:
    instance_id = unique("http-")

    response = await http.post(f"{PREFIX}/orchestrators/hello_cities/{instance_id}", params=params)

    assert response.status_code == 400, response.text
    assert response.json()["message"]
    assert await client.get_status(instance_id) is None


async def test_show_input_false_leaves_the_input_out(http: httpx.AsyncClient) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/hello_cities", json=["Oslo"])
    status_url = started.json()["statusQueryGetUri"]

    with_input = await http.get(status_url)
    without_input = await http.get(status_url, params={"showInput": "false"})

    assert with_input.json()["input"] == ["Oslo"]
    assert without_input.json()["input"] is None
    assert "historyEvents" not in with_input.json()


async def test_show_history_gives_durable_functions_history_events(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/hello_cities", json=["Oslo", "Lima"])
    status_url = started.json()["statusQueryGetUri"]
    await poll_until_ended(http, status_url)

    plain = (await http.get(status_url, params={"showHistory": "true"})).json()
    detailed = (
        await http.get(status_url, params={"showHistory": "True", "showHistoryOutput": "true"})
    ).json()

    events = plain["historyEvents"]
    assert [e["EventType"] for e in events] == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert events[0]["FunctionName"] == "hello_cities"
    assert "Input" not in events[0]
    assert all(e["FunctionName"] == "say_hello" for e in events[1:3])
    assert all(e["ScheduledTime"] <= e["Timestamp"] for e in events[1:3])
    assert events[3]["OrchestrationStatus"] == "Completed"
    assert all("Result" not in e for e in events)
    assert all(e["Timestamp"].endswith("Z") for e in events)
    results = [e.get("Result") for e in detailed["historyEvents"]]
    assert results == [None, "Hello Oslo!", "Hello Lima!", ["Hello Oslo!", "Hello Lima!"]]


async def test_a_failed_instance_reports_its_failure_as_the_output(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/failing_orchestrator", json=7)
    status_url = started.json()["statusQueryGetUri"]

    body = (await poll_until_ended(http, status_url)).json()
    as_500 = await http.get(status_url, params={"returnInternalServerErrorOnFailure": "true"})

    assert body["runtimeStatus"] == "Failed"
    assert body["output"] == (
        "Orchestrator function 'failing_orchestrator' failed: orchestrator gave up on 7"
    )
    assert as_500.status_code == 500
    assert as_500.json()["runtimeStatus"] == "Failed"
    history = (await http.get(status_url, params={"showHistory": "true"})).json()
    last = history["historyEvents"][-1]
    assert (last["EventType"], last["OrchestrationStatus"]) == ("ExecutionCompleted", "Failed")
    assert last["FailureDetails"]["ErrorType"] == "ValueError"


@pytest.mark.parametrize("params", [{"showHistory": "yes"}, {"showInput": "0"}])
async def test_a_bad_boolean_in_the_status_query_is_400(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/hello_cities")

    response = await http.get(started.json()["statusQueryGetUri"], params=params)

    assert response.status_code == 400
    assert "true or false" in response.json()["message"]


async def test_a_waiting_instance_shows_its_timer_in_the_history(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=30)
    status_url = started.json()["statusQueryGetUri"]
    running = await poll_until_status(http, status_url, "Running")

    history = (await http.get(status_url, params={"showHistory": "true"})).json()

    assert running.status_code == 202
    assert [e["EventType"] for e in history["historyEvents"]] == [
        "ExecutionStarted",
        "TimerCreated",
    ]
    assert history["historyEvents"][1]["FireAt"].endswith("Z")
    await client.terminate(started.json()["id"], "test done")


async def test_openapi_documents_every_route_with_its_status_codes(
    http: httpx.AsyncClient,
) -> None:
    spec = (await http.get("/openapi.json")).json()
    docs = await http.get("/docs")

    assert docs.status_code == 200
    routes = {
        (method.upper(), path.removeprefix(PREFIX)): operation
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    expected = {
        ("POST", "/orchestrators/{functionName}"): {"202", "400", "409"},
        ("POST", "/orchestrators/{functionName}/{instanceId}"): {"202", "400", "409"},
        ("GET", "/instances/{instanceId}"): {"200", "202", "400", "404"},
        ("GET", "/instances"): {"200", "400"},
        ("DELETE", "/instances/{instanceId}"): {"200", "404", "412"},
        ("DELETE", "/instances"): {"200", "400", "404"},
        ("POST", "/instances/{instanceId}/raiseEvent/{eventName}"): {
            "202",
            "400",
            "403",
            "404",
            "410",
        },
        ("POST", "/instances/{instanceId}/terminate"): {"202", "404", "410"},
        ("POST", "/instances/{instanceId}/suspend"): {"202", "404", "410"},
        ("POST", "/instances/{instanceId}/resume"): {"202", "404", "410"},
        ("POST", "/instances/{instanceId}/restart"): {"202", "400", "409"},
        ("POST", "/instances/{instanceId}/rewind"): {"202", "404", "412"},
        ("POST", "/entities/{entityName}/{entityKey}"): {"202", "400", "404"},
        ("GET", "/entities/{entityName}/{entityKey}"): {"200", "400", "404"},
        ("GET", "/entities/{entityName}"): {"200", "400"},
        ("GET", "/entities"): {"200", "400"},
    }
    assert set(routes) == set(expected)
    for route, codes in expected.items():
        operation = routes[route]
        assert operation["summary"], route
        assert operation["description"], route
        assert codes <= set(operation["responses"]), route
        # Any request can be refused for its URL, its key or its size, or meet an outage.
        assert {"400", "401", "413", "503"} <= set(operation["responses"]), route
        assert "422" not in operation["responses"], route


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/instances/some-id", {"GET", "DELETE"}), ("/instances", {"GET", "DELETE"})],
)
async def test_a_method_a_url_is_not_served_with_is_405_naming_every_method_it_is(
    http: httpx.AsyncClient, path: str, methods: set[str]
) -> None:
    # The router named only its first route's methods: "Allow: GET" where DELETE works too.
    answer = await http.request("OPTIONS", f"{PREFIX}{path}")

    assert answer.status_code == 405
    assert methods <= set(answer.headers["Allow"].split(", "))
    assert "OPTIONS is not allowed here" in answer.json()["message"]


async def test_a_url_no_route_serves_is_404_in_the_apis_error_shape(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.get(f"{PREFIX}/no/such/route")

    assert answer.status_code == 404
    assert answer.json() == {"message": "Not Found"}
