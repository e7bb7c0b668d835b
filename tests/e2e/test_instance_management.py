"""Rewind and restart on the real services, through the client and the HTTP API."""

from __future__ import annotations

import uuid

import httpx
import pytest

from contracts import OrchestrationStatus
from deploy.processes import ServiceGroup
from durable.client import DurableClient, InstanceNotFailedError
from tests.helpers.http import PREFIX
from tests.helpers.waiting import wait_for_status

pytestmark = pytest.mark.e2e


async def failed_rewindable(client: DurableClient) -> str:
    instance_id = f"rewind-{uuid.uuid4().hex[:8]}"
    await client.start_new("rewindable", instance_id)
    status = await client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is OrchestrationStatus.FAILED
    return instance_id


async def test_a_rewound_instance_reruns_the_failed_activity_and_not_the_completed_ones(
    services: ServiceGroup, client: DurableClient
) -> None:
    instance_id = await failed_rewindable(client)

    await client.rewind(instance_id, "the flaky dependency is back")

    await wait_for_status(client, instance_id, OrchestrationStatus.COMPLETED)
    status = await client.get_status(instance_id)
    assert status is not None
    # count_calls ran once before the failure and once after: the first was not repeated.
    assert status.output == [1, "ok", 2]
    history = [s.event.event_type for s in await client.get_history(instance_id)]
    assert "ExecutionRewound" in history
    with pytest.raises(InstanceNotFailedError):
        await client.rewind(instance_id)


async def test_rewind_over_http_answers_202_then_404_and_412(
    services: ServiceGroup, client: DurableClient, http: httpx.AsyncClient
) -> None:
    instance_id = await failed_rewindable(client)

    accepted = await http.post(f"{PREFIX}/instances/{instance_id}/rewind", params={"reason": "x"})
    unknown = await http.post(f"{PREFIX}/instances/nope-{uuid.uuid4().hex}/rewind")

    assert accepted.status_code == 202, accepted.text
    assert unknown.status_code == 404

    # 202 means accepted, not done: the instance reads Failed until the orchestrator has
    # taken the rewind, so wait for Completed rather than for any end.
    await wait_for_status(client, instance_id, OrchestrationStatus.COMPLETED)
    again = await http.post(f"{PREFIX}/instances/{instance_id}/rewind")
    assert again.status_code == 412


async def test_restart_runs_the_orchestrator_again_with_the_same_input(
    services: ServiceGroup, client: DurableClient
) -> None:
    original = await client.start_new("hello_cities", input=["Oslo"])
    await client.wait_for_completion(original, timeout=30)

    renewed = await client.restart(original)
    same = await client.restart(original, new_instance_id=False)

    assert renewed != original
    assert same == original
    for instance_id in (renewed, same):
        status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.output == ["Hello Oslo!"]
