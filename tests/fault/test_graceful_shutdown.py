"""SIGTERM: the services stop taking work, finish what is in flight, exit 0, lose nothing."""

from __future__ import annotations

import asyncio

import pytest

from contracts import OrchestrationStatus
from tests.fault.conftest import Deployment

pytestmark = pytest.mark.fault

INSTANCES = 40


async def test_sigterm_stops_services_cleanly_and_restarted_services_finish_the_work(
    deployment: Deployment,
) -> None:
    spec = {"steps": 4, "delay": 0.1}
    instance_ids = await asyncio.gather(
        *(deployment.client.start_new("slow_chain", input=spec) for _ in range(INSTANCES))
    )
    await deployment.wait_for_events("TaskCompleted", INSTANCES)

    for name in ("orchestrator", "activities"):
        service = deployment.group[name]
        exit_code = service.stop(timeout=30)
        assert exit_code == 0, f"{name} exited with {exit_code}\n{service.log_tail()}"
        assert "service.stopped" in service.log_tail(), service.log_tail()
    assert await deployment.count_ended_instances() < INSTANCES, "work ended before the stop"

    for name in ("orchestrator", "activities"):
        deployment.group[name].start()
    await deployment.wait_ready()

    async def all_completed() -> bool:
        statuses = [await deployment.client.get_status(i) for i in instance_ids]
        done = [s for s in statuses if s and s.runtime_status is OrchestrationStatus.COMPLETED]
        assert len(done) == INSTANCES, f"{len(done)} of {INSTANCES} completed"
        return True

    await deployment.eventually(all_completed, timeout=60, interval=0.1)

    async def outbox_empty() -> bool:
        left = await deployment.pool.fetchval("SELECT count(*) FROM outbox")
        assert left == 0, f"{left} outbox rows not yet published"
        return True

    await deployment.eventually(outbox_empty, timeout=30, interval=0.1)
