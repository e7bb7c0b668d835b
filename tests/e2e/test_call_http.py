"""Durable HTTP on the real services: ``call_http`` against a local server that answers 202
twice, then 200; polls wait on durable timers, and every answer is in the history."""

from __future__ import annotations

import pytest

from contracts import OrchestrationStatus, TaskCompleted, TaskScheduled, TimerFired
from contracts.http import HTTP_ACTIVITY
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from tests.helpers.http_server import job_server

pytestmark = pytest.mark.e2e


async def test_call_http_polls_a_202_with_location_until_the_server_answers_200(
    services: ServiceGroup, client: DurableClient
) -> None:
    with job_server(accepted_answers=2) as server:
        instance_id = await client.start_new(
            "calls_http",
            input={
                "method": "POST",
                "uri": f"{server.base_url}/jobs/report-1",
                "content": {"n": 1},
            },
        )
        status = await client.wait_for_completion(instance_id, timeout=60)

    assert status.runtime_status is OrchestrationStatus.COMPLETED, status
    assert status.output == {"status": 200, "content": '{"job": "report-1", "polls": 2}'}
    assert [(r.method, r.path) for r in server.requests] == [
        ("POST", "/jobs/report-1"),
        ("GET", "/status/report-1"),
        ("GET", "/status/report-1"),
    ]
    assert server.requests[0].body == b'{"n": 1}'
    history = [stored.event for stored in await client.get_history(instance_id)]
    calls = [e for e in history if isinstance(e, TaskScheduled)]
    assert [e.name for e in calls] == [HTTP_ACTIVITY] * 3
    assert len([e for e in history if isinstance(e, TimerFired)]) == 2
    answers = [e.result["status_code"] for e in history if isinstance(e, TaskCompleted)]
    assert answers == [202, 202, 200]


async def test_call_http_with_polling_off_answers_the_202(
    services: ServiceGroup, client: DurableClient
) -> None:
    with job_server(accepted_answers=2) as server:
        instance_id = await client.start_new(
            "calls_http", input={"uri": f"{server.base_url}/jobs/report-2", "polling": False}
        )
        status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.output == {"status": 202, "content": None}
    assert len(server.requests) == 1


async def test_call_http_to_an_unreachable_host_fails_with_an_error_the_orchestrator_catches(
    services: ServiceGroup, client: DurableClient
) -> None:
    with job_server() as server:
        gone = server.base_url  # nobody listens there once the server has stopped

    instance_id = await client.start_new("calls_http", input={"uri": f"{gone}/jobs/x"})
    status = await client.wait_for_completion(instance_id, timeout=30)

    assert status.runtime_status is OrchestrationStatus.COMPLETED
    assert status.output["failed"] == "ConnectError"
