"""A version change deployed while approval instances wait, on the real services.

The deployment starts at version 1.0 and approvals begin waiting for a decision. It is
stopped and started again at 2.0, whose orchestrator code adds a compliance check for new
instances (``tests.apps.functions.versioned_approval`` branches on ``context.version``):
- under ``current-or-older``, the old instances finish on their old path, new ones take the
  new one;
- under ``strict`` with ``reject``, an old instance's decision is not run by 2.0 but kept
  coming back, and a 1.0 deployment started again finishes it: nothing was lost;
- under ``strict`` with ``fail``, the old instance ends Failed with ``VersionMismatch``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from contracts import EventRaised, OrchestrationStatus, Topology
from deploy.processes import ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from tests.conftest import (
    AMQP_URL,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.helpers.waiting import assert_eventually

pytestmark = pytest.mark.e2e


# Fewer modules than the session's deployment: fewer queues to declare for each of the
# deployments a test starts. Readiness must then wait for these modules' activities only.
FUNCTION_MODULES = "workflows.samples,tests.apps.functions"


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Starts the services of a deployment of its own at a version, as often as asked."""
    database_url = await create_database()
    topology = Topology(namespace=unique("ver"), partitions=2)
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=topology.namespace,
        partitions=topology.partitions,
        function_modules=FUNCTION_MODULES,
    )
    activities = activity_names_under_test(FUNCTION_MODULES)
    client = await DurableClient.connect(settings, name="tests.versions")
    runs: list[ServiceGroup] = []

    @asynccontextmanager
    async def at_version(version: str, **strategy: str) -> AsyncIterator[ServiceGroup]:
        env = {
            **service_env(settings, free_port()),
            "DF_APP_VERSION": version,
            "DF_ORCHESTRATOR_PROCESSES": "1",
            "DF_VERSION_RETRY_SECONDS": "1",
            **{f"DF_VERSION_{name.upper()}": value for name, value in strategy.items()},
        }
        group = ServiceGroup(env, tmp_path / f"run-{len(runs)}")
        runs.append(group)
        group.start()
        try:
            await group.wait_ready(topology, activities)
            yield group
        finally:
            group.stop()

    at_version.client = client  # type: ignore[attr-defined]
    try:
        yield at_version
    finally:
        await client.close()
        await delete_broker_objects(topology, activities)
        await drop_database(database_url)


async def waiting(client: DurableClient, instance_id: str) -> None:
    async def started() -> bool:
        status = await client.get_status(instance_id)
        return status is not None and status.runtime_status is OrchestrationStatus.RUNNING

    await assert_eventually(started, timeout=30)


async def test_old_instances_finish_on_their_path_and_new_ones_take_the_new_one(deployment):
    client: DurableClient = deployment.client
    async with deployment("1.0"):
        old = await client.start_new("versioned_approval")
        await waiting(client, old)

    async with deployment("2.0", match="current-or-older"):
        new = await client.start_new("versioned_approval")
        await waiting(client, new)
        await client.raise_event(old, "Approval", "yes")
        await client.raise_event(new, "Approval", "yes")
        old_status = await client.wait_for_completion(old, timeout=30)
        new_status = await client.wait_for_completion(new, timeout=30)

    assert old_status.output == {"version": "1.0", "steps": ["decided: yes"]}
    assert old_status.version == "1.0"
    assert new_status.output == {
        "version": "2.0",
        "steps": ["compliance checked", "decided: yes"],
    }
    assert new_status.version == "2.0"


async def test_strict_reject_keeps_an_old_instance_waiting_until_a_process_of_its_version_runs(
    deployment,
):
    client: DurableClient = deployment.client
    async with deployment("1.0"):
        old = await client.start_new("versioned_approval")
        await waiting(client, old)

    async with deployment("2.0", match="strict", failure="reject") as strict:
        await client.raise_event(old, "Approval", "yes")

        def refused_again() -> bool:
            # The decision came back and was refused more than once: kept, not hot-looping.
            log = (strict["orchestrator"].log_path).read_text(errors="replace")
            return len(re.findall(rf"version_refused.*{old}|{old}.*version_refused", log)) >= 2

        await assert_eventually(refused_again, timeout=30)
        status = await client.get_status(old)
        assert status.runtime_status is OrchestrationStatus.RUNNING
        history = [stored.event for stored in await client.get_history(old)]
        assert not any(isinstance(e, EventRaised) for e in history)

    async with deployment("1.0", match="strict"):
        finished = await client.wait_for_completion(old, timeout=30)

    assert finished.output == {"version": "1.0", "steps": ["decided: yes"]}


async def test_strict_fail_fails_an_instance_of_another_version(deployment):
    client: DurableClient = deployment.client
    async with deployment("1.0"):
        old = await client.start_new("versioned_approval")
        await waiting(client, old)

    async with deployment("2.0", match="strict", failure="fail"):
        await client.raise_event(old, "Approval", "yes")
        status = await client.wait_for_completion(old, timeout=30)

    assert status.runtime_status is OrchestrationStatus.FAILED
    assert status.failure.error_type == "VersionMismatch"
    assert "started under '1.0'" in status.failure.message
