"""The client service's HTTP API: raising events, terminate, suspend, resume, restart and
rewind, with Durable Functions' status codes, on the real services."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contracts import EventRaised
from durable.client import DurableClient
from tests.conftest import unique
from tests.helpers.http import PREFIX, poll_until_ended, poll_until_status
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e


async def start_waiting(http: httpx.AsyncClient, deadline_seconds: float = 30) -> dict[str, Any]:
    """A ``waits_for_approval`` instance, once it is Running; its check-status payload."""
    started = await http.post(f"{PREFIX}/orchestrators/waits_for_approval", json=deadline_seconds)
    assert started.status_code == 202, started.text
    payload: dict[str, Any] = started.json()
    await poll_until_status(http, payload["statusQueryGetUri"], "Running")
    return payload


def event_url(payload: dict[str, Any], name: str) -> str:
    return str(payload["sendEventPostUri"]).replace("{eventName}", name)


def operation_url(payload: dict[str, Any], operation: str) -> str:
    return str(payload[f"{operation}PostUri"]).split("?")[0]


async def raised_events(client: DurableClient, instance_id: str) -> list[tuple[str, Any]]:
    history = [stored.event for stored in await client.get_history(instance_id)]
    return [(event.name, event.input) for event in history if isinstance(event, EventRaised)]


@pytest.mark.parametrize(
    ("content", "headers", "complaint"),
    [
        (b'"yes"', {"Content-Type": "text/plain"}, "application/json"),
        (b'"yes"', {}, "application/json"),
        (b"", {"Content-Type": "application/json"}, "Invalid JSON"),
        (b'{"approved": tru', {"Content-Type": "application/json"}, "Invalid JSON"),
    ],
)
async def test_raising_an_event_with_a_bad_body_is_400_and_sends_nothing(
    http: httpx.AsyncClient,
    client: DurableClient,
    content: bytes,
    headers: dict[str, str],
    complaint: str,
) -> None:
    waiting = await start_waiting(http)

    refused = await http.post(event_url(waiting, "Approval"), content=content, headers=headers)
    marker = await http.post(event_url(waiting, "Marker"), json={"n": 1})

    assert refused.status_code == 400, refused.text
    assert complaint in refused.json()["message"]
    assert marker.status_code == 202
    # Both would share the instance's partition, in order: once the marker is recorded, a
    # refused event that had been sent would be recorded before it.
    events = await assert_eventually(lambda: raised_events(client, waiting["id"]), timeout=30)
    assert events == [("Marker", {"n": 1})]
    await client.terminate(waiting["id"], "test done")


async def test_raising_an_event_on_an_unknown_instance_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post(
        f"{PREFIX}/instances/{unique('nobody-')}/raiseEvent/Approval", json=True
    )

    assert response.status_code == 404
    assert "message" in response.json()


async def test_operations_on_an_ended_instance_are_410(http: httpx.AsyncClient) -> None:
    started = (await http.post(f"{PREFIX}/orchestrators/hello_cities", json=[])).json()
    await poll_until_ended(http, started["statusQueryGetUri"])

    codes = {
        "raiseEvent": (await http.post(event_url(started, "Approval"), json=True)).status_code,
        **{
            operation: (await http.post(operation_url(started, operation))).status_code
            for operation in ("terminate", "suspend", "resume")
        },
    }

    assert codes == {"raiseEvent": 410, "terminate": 410, "suspend": 410, "resume": 410}


@pytest.mark.parametrize("operation", ["terminate", "suspend", "resume"])
async def test_operations_on_an_unknown_instance_are_404(
    http: httpx.AsyncClient, operation: str
) -> None:
    response = await http.post(f"{PREFIX}/instances/{unique('nobody-')}/{operation}")

    assert response.status_code == 404
    assert "message" in response.json()


async def test_terminate_ends_the_instance_with_the_reason_as_output(
    http: httpx.AsyncClient,
) -> None:
    waiting = await start_waiting(http)

    response = await http.post(
        operation_url(waiting, "terminate"), params={"reason": "no longer needed"}
    )

    assert response.status_code == 202, response.text
    assert response.content == b""
    body = (await poll_until_ended(http, waiting["statusQueryGetUri"])).json()
    assert (body["runtimeStatus"], body["output"]) == ("Terminated", "no longer needed")
    again = await http.post(operation_url(waiting, "terminate"))
    assert again.status_code == 410


async def test_suspend_and_resume_hold_an_event_until_the_instance_resumes(
    http: httpx.AsyncClient,
) -> None:
    waiting = await start_waiting(http)
    status_url = waiting["statusQueryGetUri"]

    suspended = await http.post(operation_url(waiting, "suspend"), params={"reason": "audit"})
    await poll_until_status(http, status_url, "Suspended")
    suspended_again = await http.post(operation_url(waiting, "suspend"))
    approval = await http.post(event_url(waiting, "Approval"), json={"approved": True})
    still = await http.get(status_url)
    resumed = await http.post(operation_url(waiting, "resume"), params={"reason": "done"})

    assert (suspended.status_code, suspended_again.status_code) == (202, 202)
    assert approval.status_code == 202
    assert (still.status_code, still.json()["runtimeStatus"]) == (202, "Suspended")
    assert resumed.status_code == 202
    body = (await poll_until_ended(http, status_url)).json()
    assert body["output"] == {"answer": {"approved": True}}
    history = (await http.get(status_url, params={"showHistory": "true"})).json()
    kinds = [(e["EventType"], e.get("Reason")) for e in history["historyEvents"]]
    assert ("ExecutionSuspended", "audit") in kinds
    assert ("ExecutionResumed", "done") in kinds


async def test_restart_starts_the_orchestrator_again_with_the_same_input(
    http: httpx.AsyncClient,
) -> None:
    first = (await http.post(f"{PREFIX}/orchestrators/hello_cities", json=["Oslo"])).json()
    await poll_until_ended(http, first["statusQueryGetUri"])

    restarted = await http.post(first["restartPostUri"])

    assert restarted.status_code == 202, restarted.text
    again = restarted.json()
    assert again["id"] != first["id"]
    assert restarted.headers["Location"] == again["statusQueryGetUri"]
    body = (await poll_until_ended(http, again["statusQueryGetUri"])).json()
    assert (body["name"], body["input"], body["output"]) == (
        "hello_cities",
        ["Oslo"],
        ["Hello Oslo!"],
    )


async def test_restart_under_the_same_id_needs_the_instance_to_have_ended(
    http: httpx.AsyncClient, client: DurableClient
) -> None:
    waiting = await start_waiting(http)
    same_id = {"restartWithNewInstanceId": "false"}

    while_running = await http.post(waiting["restartPostUri"], params=same_id)
    await client.terminate(waiting["id"], "stop")
    await poll_until_ended(http, waiting["statusQueryGetUri"])
    after_end = await http.post(waiting["restartPostUri"], params=same_id)

    assert while_running.status_code == 409, while_running.text
    assert after_end.status_code == 202, after_end.text
    assert after_end.json()["id"] == waiting["id"]
    running = await poll_until_status(http, waiting["statusQueryGetUri"], "Running")
    assert running.json()["input"] == 30
    await client.terminate(waiting["id"], "test done")


async def test_restart_of_an_unknown_instance_is_400(http: httpx.AsyncClient) -> None:
    # Durable Functions: "InstanceId does not match a valid orchestration instance" (400).
    response = await http.post(f"{PREFIX}/instances/{unique('nobody-')}/restart")

    assert response.status_code == 400
    assert "does not match" in response.json()["message"]


async def test_rewind_refuses_unknown_and_not_failed_instances_and_accepts_failed_ones(
    http: httpx.AsyncClient,
) -> None:
    completed = (await http.post(f"{PREFIX}/orchestrators/hello_cities", json=[])).json()
    failed = (await http.post(f"{PREFIX}/orchestrators/failing_orchestrator", json=1)).json()
    await poll_until_ended(http, completed["statusQueryGetUri"])
    await poll_until_ended(http, failed["statusQueryGetUri"])

    unknown = await http.post(f"{PREFIX}/instances/{unique('nobody-')}/rewind")
    not_failed = await http.post(f"{PREFIX}/instances/{completed['id']}/rewind")
    accepted = await http.post(f"{PREFIX}/instances/{failed['id']}/rewind")

    assert unknown.status_code == 404
    assert not_failed.status_code == 412
    assert accepted.status_code == 202, accepted.text
