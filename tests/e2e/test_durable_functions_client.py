"""azure-functions-durable's own ``DurableOrchestrationClient``, unchanged, against the client
service: built from a Durable Functions client binding that points at it, calling its real
methods over HTTP, with no Functions host anywhere.

The SDK sends every call to the binding's ``rpcBaseUrl`` (our ``/durabletask/`` routes, where
inputs and event data are read as it encodes them) through one shared aiohttp session, with no
key: inside Azure those calls stay on the host's loopback. Outside it, the session is given the
key as a header, the one thing these tests set up beside the binding.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import azure.functions as func
import httpx
import pytest
from azure.durable_functions import DurableOrchestrationClient, OrchestrationRuntimeStatus
from azure.durable_functions.models.utils import http_utils

from durable.client.payloads import durable_client_binding
from tests.conftest import MANAGEMENT_KEY, unique
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e

Status = OrchestrationRuntimeStatus


@pytest.fixture
async def durable_functions(base_url: str) -> AsyncIterator[DurableOrchestrationClient]:
    session = aiohttp.ClientSession(headers={"x-functions-key": MANAGEMENT_KEY})
    http_utils._client_session = session
    binding = durable_client_binding(base_url, MANAGEMENT_KEY)
    yield DurableOrchestrationClient(json.dumps(binding))
    http_utils._client_session = None
    await session.close()


async def reaches(
    client: DurableOrchestrationClient, instance_id: str, status: OrchestrationRuntimeStatus
) -> object:
    async def reached() -> object:
        found = await client.get_status(instance_id)
        assert found.runtime_status == status, found.runtime_status
        return found

    return await assert_eventually(reached, timeout=30, interval=0.1)


def http_request(base_url: str) -> func.HttpRequest:
    """The request an HTTP-triggered starter function would have received."""
    return func.HttpRequest(method="POST", url=f"{base_url}/api/start", body=b"")


async def test_start_new_and_get_status_run_an_orchestration_with_its_input(
    durable_functions: DurableOrchestrationClient,
) -> None:
    instance_id = await durable_functions.start_new("hello_cities", None, ["Oslo", "Lima"])

    done = await reaches(durable_functions, instance_id, Status.Completed)
    detailed = await durable_functions.get_status(instance_id, show_history=True)
    unknown = await durable_functions.get_status(unique("nobody-"))

    assert done.name == "hello_cities"
    assert done.input_ == ["Oslo", "Lima"]
    assert done.output == ["Hello Oslo!", "Hello Lima!"]
    assert done.custom_status == {"greeting": "Lima", "done": 1, "of": 2}
    assert done.created_time <= done.last_updated_time
    assert detailed.historyEvents[0]["EventType"] == "ExecutionStarted"
    assert not unknown


async def test_start_new_refusals_surface_as_the_sdks_exceptions(
    durable_functions: DurableOrchestrationClient,
) -> None:
    instance_id = unique("df-")
    await durable_functions.start_new("waits_for_approval", instance_id, 60)

    with pytest.raises(Exception, match="no_such_orchestrator"):
        await durable_functions.start_new("no_such_orchestrator")
    with pytest.raises(Exception, match="already exists"):
        await durable_functions.start_new("waits_for_approval", instance_id, 60)
    await durable_functions.terminate(instance_id, "test done")


async def test_start_new_with_a_version_runs_the_instance_under_that_version(
    durable_functions: DurableOrchestrationClient, http: httpx.AsyncClient
) -> None:
    instance_id = await durable_functions.start_new("reports_version", None, None, "3.1")

    done = await reaches(durable_functions, instance_id, Status.Completed)
    assert done.output == "3.1"  # context.version
    status = (await http.get(f"/runtime/webhooks/durabletask/instances/{instance_id}")).json()
    assert status["version"] == "3.1"
    with pytest.raises(Exception, match="the version cannot be stored"):
        await durable_functions.start_new("reports_version", None, None, "9" * 101)


async def test_raise_event_delivers_the_events_data(
    durable_functions: DurableOrchestrationClient,
) -> None:
    instance_id = await durable_functions.start_new("waits_for_approval", unique("df-"), 60)
    await reaches(durable_functions, instance_id, Status.Running)

    await durable_functions.raise_event(instance_id, "Approval", {"approved": True, "by": "mia"})

    done = await reaches(durable_functions, instance_id, Status.Completed)
    assert done.output == {"answer": {"approved": True, "by": "mia"}}
    with pytest.raises(Exception, match="is gone"):
        await durable_functions.raise_event(instance_id, "Approval", True)


async def test_suspend_resume_and_terminate(
    durable_functions: DurableOrchestrationClient,
) -> None:
    instance_id = await durable_functions.start_new("waits_for_approval", unique("df-"), 60)
    await reaches(durable_functions, instance_id, Status.Running)

    await durable_functions.suspend(instance_id, "a pause")
    await reaches(durable_functions, instance_id, Status.Suspended)
    await durable_functions.resume(instance_id, "go on")
    await reaches(durable_functions, instance_id, Status.Running)
    await durable_functions.terminate(instance_id, "no longer needed")

    done = await reaches(durable_functions, instance_id, Status.Terminated)
    assert done.output == "no longer needed"


async def test_queries_and_purges(durable_functions: DurableOrchestrationClient) -> None:
    prefix = unique("df-query-")
    since = datetime.now(UTC)
    for n in range(2):
        await durable_functions.start_new("hello_cities", f"{prefix}-{n}", ["Oslo"])
        await reaches(durable_functions, f"{prefix}-{n}", Status.Completed)
    waiting = await durable_functions.start_new("waits_for_approval", f"{prefix}-w", 60)
    await reaches(durable_functions, waiting, Status.Running)
    until = datetime.now(UTC)

    everything = await durable_functions.get_status_by(instance_id_prefix=prefix)
    completed = await durable_functions.get_status_by(
        created_time_from=since, created_time_to=until, runtime_status=[Status.Completed]
    )
    some = await durable_functions.get_status_all()
    purged_one = await durable_functions.purge_instance_history(f"{prefix}-0")
    purged_none = await durable_functions.purge_instance_history(unique("nobody-"))
    purged_by = await durable_functions.purge_instance_history_by(
        created_time_from=since, created_time_to=until, runtime_status=[Status.Completed]
    )

    assert [s.instance_id for s in everything] == [f"{prefix}-0", f"{prefix}-1", waiting]
    assert [s.instance_id for s in completed] == [f"{prefix}-0", f"{prefix}-1"]
    assert some
    assert all(s.instance_id and s.runtime_status for s in some)
    assert (purged_one.instances_deleted, purged_none.instances_deleted) == (1, 0)
    assert purged_by.instances_deleted == 1
    remaining = await durable_functions.get_status_by(instance_id_prefix=prefix)
    assert [s.instance_id for s in remaining] == [waiting]
    await durable_functions.terminate(waiting, "test done")


async def test_restart_starts_the_same_orchestrator_again(
    durable_functions: DurableOrchestrationClient,
) -> None:
    instance_id = await durable_functions.start_new("hello_cities", None, ["Lima"])
    await reaches(durable_functions, instance_id, Status.Completed)

    restarted = await durable_functions.restart(instance_id)

    # Like the extension, the API answers a restart with the new instance's check-status
    # payload, which this SDK version hands back as it is.
    done = await reaches(durable_functions, restarted["id"], Status.Completed)
    assert done.input_ == ["Lima"]


async def test_wait_for_completion_or_create_check_status_response_needs_no_functions_host(
    durable_functions: DurableOrchestrationClient, base_url: str
) -> None:
    request = http_request(base_url)
    finished = await durable_functions.start_new("hello_cities", None, ["Oslo"])
    waiting = await durable_functions.start_new("waits_for_approval", unique("df-"), 60)

    outcome = await durable_functions.wait_for_completion_or_create_check_status_response(
        request, finished, timeout_in_milliseconds=30_000, retry_interval_in_milliseconds=100
    )
    pending = await durable_functions.wait_for_completion_or_create_check_status_response(
        request, waiting, timeout_in_milliseconds=300, retry_interval_in_milliseconds=100
    )

    assert outcome.status_code == 200
    assert json.loads(outcome.get_body()) == ["Hello Oslo!"]
    assert pending.status_code == 202
    links = json.loads(pending.get_body())
    assert pending.headers["Location"] == links["statusQueryGetUri"]
    # The links come from the binding's managementUrls and carry its key: they work as they are.
    async with httpx.AsyncClient(timeout=10.0) as anyone:
        polled = await anyone.get(links["statusQueryGetUri"])
        approved = await anyone.post(
            links["sendEventPostUri"].replace("{eventName}", "Approval"), json="yes"
        )
    assert polled.status_code == 202, polled.text
    assert approved.status_code == 202, approved.text
    done = await reaches(durable_functions, waiting, Status.Completed)
    assert done.output == {"answer": "yes"}
