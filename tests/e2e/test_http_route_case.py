"""Routes in any letter case on the real client service, as the Functions host matches them:
literal segments in any case reach the same handler, while instance ids, event names and
function names keep the case they were sent in."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import unique
from tests.helpers.http import poll_until_ended, poll_until_status

pytestmark = pytest.mark.e2e

SHOUTED = "/RUNTIME/Webhooks/DurableTask"
"""``PREFIX`` as a caller might spell it."""


async def test_an_instance_started_and_answered_through_mixed_case_routes_keeps_its_ids_case(
    http: httpx.AsyncClient,
) -> None:
    instance_id = unique("MixedCase-Id-")

    started = await http.post(f"{SHOUTED}/Orchestrators/waits_for_approval/{instance_id}", json=30)
    assert started.status_code == 202, started.text
    assert started.json()["id"] == instance_id
    running = await poll_until_status(
        http, f"{SHOUTED}/INSTANCES/{instance_id}", "Running", timeout=30
    )
    assert running.json()["instanceId"] == instance_id
    assert running.json()["name"] == "waits_for_approval"

    raised = await http.post(
        f"{SHOUTED}/Instances/{instance_id}/RaiseEvent/Approval", json={"approved": True}
    )
    assert raised.status_code == 202, raised.text

    done = await poll_until_ended(http, f"{SHOUTED}/instances/{instance_id}")
    assert done.json()["instanceId"] == instance_id
    assert done.json()["output"] == {"answer": {"approved": True}}


async def test_the_id_in_another_case_is_another_instance(http: httpx.AsyncClient) -> None:
    instance_id = unique("CaseKept-")
    started = await http.post(f"{SHOUTED}/orchestrators/hello_cities/{instance_id}")
    assert started.status_code == 202, started.text

    other = await http.get(f"{SHOUTED}/Instances/{instance_id.lower()}")

    assert other.status_code == 404, other.text


async def test_a_function_name_keeps_its_case_so_a_misspelt_one_is_unknown(
    http: httpx.AsyncClient,
) -> None:
    started = await http.post(f"{SHOUTED}/Orchestrators/Hello_Cities")

    assert started.status_code == 400, started.text
    assert "Hello_Cities" in started.json()["message"]


async def test_the_sdks_routes_in_any_case_still_decode_their_json_string_bodies(
    http: httpx.AsyncClient,
) -> None:
    # Under /durabletask/, Durable Functions' SDKs send a value as a JSON string holding its
    # JSON text; the route is told apart by its prefix, which is respelt before it is read.
    instance_id = unique("SdkCase-")
    started = await http.post(
        f"/DurableTask/Orchestrators/waits_for_approval/{instance_id}", json="30"
    )
    assert started.status_code == 202, started.text
    await poll_until_status(http, f"/durabletask/instances/{instance_id}", "Running", timeout=30)

    raised = await http.post(
        f"/DURABLETASK/instances/{instance_id}/raiseevent/Approval", json='{"approved": true}'
    )
    assert raised.status_code == 202, raised.text

    done = await poll_until_ended(http, f"/durabletask/Instances/{instance_id}")
    assert done.json()["output"] == {"answer": {"approved": True}}


async def test_terminate_and_a_method_not_served_answer_in_any_case(
    http: httpx.AsyncClient,
) -> None:
    instance_id = unique("Terminated-")
    started = await http.post(f"{SHOUTED}/orchestrators/waits_for_approval/{instance_id}", json=30)
    assert started.status_code == 202, started.text

    wrong_method = await http.get(f"{SHOUTED}/Instances/{instance_id}/Terminate")
    terminated = await http.post(
        f"{SHOUTED}/Instances/{instance_id}/TERMINATE", params={"reason": "Case Kept"}
    )

    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert terminated.status_code == 202, terminated.text
    done = await poll_until_ended(http, f"{SHOUTED}/Instances/{instance_id}")
    assert done.json()["runtimeStatus"] == "Terminated"
    assert done.json()["output"] == "Case Kept"


@pytest.mark.parametrize("escape", ["%2F", "%00"])
async def test_an_escaped_slash_or_nul_is_refused_in_a_mixed_case_url_too(
    http: httpx.AsyncClient, escape: str
) -> None:
    answer = await http.get(f"{SHOUTED}/Instances/abc{escape}def")

    assert answer.status_code == 400, answer.text
