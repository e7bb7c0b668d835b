"""A deployment of its own for the operator-tool tests, and the mixed workload they inspect.

The three services run as real processes on a database and broker namespace of their own, so
the dead-letter counts and the event streams are this package's alone. ``durable-ops`` runs as
a subprocess with the deployment's ``DF_*`` settings, exactly as an operator runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from contracts import OrchestrationStatus
from deploy.processes import PROJECT_ROOT, ServiceGroup
from durable.client import DurableClient
from durable.settings import CommonSettings
from durable.store.database import create_pool
from tests.conftest import (
    AMQP_URL,
    TEST_FUNCTION_MODULES,
    activity_names_under_test,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    service_env,
    unique,
)
from tests.helpers.approval import HEAD, MANAGER, approval_bus, proposal
from tests.helpers.waiting import assert_eventually

OPS_FUNCTION_MODULES = f"{TEST_FUNCTION_MODULES},tests.operations.apps"


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[dict[str, Any]]:
        """The JSON lines of ``--json`` output."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


@dataclass
class OpsDeployment:
    settings: CommonSettings
    group: ServiceGroup
    client: DurableClient
    pool: asyncpg.Pool

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(PROJECT_ROOT),
            "DF_DATABASE_URL": self.settings.database_url,
            "DF_AMQP_URL": self.settings.amqp_url,
            "DF_NAMESPACE": self.settings.namespace,
            "DF_PARTITIONS": str(self.settings.partitions),
            "DF_FUNCTION_MODULES": self.settings.function_modules,
            **overrides,
        }

    async def start_ops(self, *args: str, **env: str) -> asyncio.subprocess.Process:
        """``python -m services.operations ARGS`` in the background."""
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.operations",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT,
            env=self.env(**env),
        )

    async def ops(self, *args: str, timeout: float = 120, **env: str) -> Result:
        """Run ``durable-ops ARGS`` to the end."""
        process = await self.start_ops(*args, **env)
        return await finish(process, timeout)

    async def eventually(self, check: Any, timeout: float = 60) -> Any:
        try:
            return await assert_eventually(check, timeout=timeout, interval=0.05)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.group.logs()}") from error

    async def wait_for_status(
        self, instance_id: str, *statuses: OrchestrationStatus, timeout: float = 60
    ) -> None:
        async def reached() -> bool:
            found = await self.client.get_status(instance_id)
            assert found is not None, f"no instance {instance_id}"
            assert found.runtime_status in statuses, (instance_id, found.runtime_status)
            return True

        await self.eventually(reached, timeout)


async def finish(process: asyncio.subprocess.Process, timeout: float = 120) -> Result:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture(scope="package")
async def deployment(
    tmp_path_factory: pytest.TempPathFactory, approver_broker_users: None
) -> AsyncIterator[OpsDeployment]:
    database_url = await create_database()
    settings = CommonSettings(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=unique("ops"),
        partitions=4,
        function_modules=OPS_FUNCTION_MODULES,
    )
    env = service_env(settings, free_port())
    group = ServiceGroup(env, tmp_path_factory.mktemp("ops-logs"))
    pool = await create_pool(database_url, min_size=1, max_size=8)
    client = await DurableClient.connect(settings, name="ops-tests")
    try:
        group.start()
        await group.wait_ready(settings.topology, activity_names_under_test())
        yield OpsDeployment(settings, group, client, pool)
    finally:
        group.stop()
        await client.close()
        await pool.close()
        await delete_broker_objects(settings.topology, activity_names_under_test())
        await drop_database(database_url)


@dataclass
class Workload:
    """The instances of the mixed workload, by what they exercise."""

    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, instance_id: str) -> str:
        self.ids.setdefault(kind, []).append(instance_id)
        return instance_id

    def all(self) -> list[str]:
        return [instance_id for ids in self.ids.values() for instance_id in ids]


@pytest.fixture(scope="package")
async def workload(deployment: OpsDeployment) -> Workload:
    """Chains, fan-outs, approvals with escalations, terminations (a parent and its child),
    a failure, a rewind, continue-as-new, a suspension, instances left waiting and versioned
    ones (a parent started under 2.0, its children under 2.0 and 3.0); returns
    once every one of them has settled."""
    d, c, w = deployment, deployment.client, Workload()
    s = OrchestrationStatus
    for _ in range(3):
        w.add("chain", await c.start_new("hello_cities"))
    w.add("chain", await c.start_new("slow_chain", input={"steps": 3, "delay": 0.01}))
    w.add("fan_out", await c.start_new("fan_out_fan_in", input=25))
    w.add("fan_out", await c.start_new("fan_out_fan_in", input=60))
    w.add("failed", await c.start_new("failing_orchestrator", input="on purpose"))
    rewound = w.add("rewound", await c.start_new("rewindable"))
    for number in range(2):
        w.add("waiting", await c.start_new("echo_then_wait", input=f"echo-{number}"))
    terminated = w.add("terminated", await c.start_new("waits_for_approval", input=3600))
    child = unique("child-")
    parent = w.add("terminated", await c.start_new("waits_on_child", input=child))
    w.add("terminated", child)
    suspended = w.add("suspended", await c.start_new("waits_for_approval", input=3600))
    w.add("versioned", await c.start_new("versioned_parent", input="3.0", version="2.0"))
    eternal = w.add(
        "continued", await c.start_new("eternal_inbox", input={"keep": False, "seen": []})
    )

    async with approval_bus(AMQP_URL, d.settings.topology) as bus:
        approved, escalated, expired = unique("p-ok-"), unique("p-up-"), unique("p-none-")
        for proposal_id in (approved, escalated, expired):
            w.add("approval", proposal_id)
            await bus.submit(proposal(proposal_id, amount=800))
        await bus.request(approved, 1)
        await bus.respond(approved, MANAGER, "approve")
        # The manager does not answer: a reminder, then the head of department, who approves.
        assignee, _ = await bus.request(escalated, 3)
        assert assignee == HEAD
        await bus.respond(escalated, HEAD, "approve")
        for proposal_id in (approved, escalated, expired):
            await bus.outcome(proposal_id, timeout=30)

    await d.wait_for_status(child, s.RUNNING)
    await c.terminate(terminated, "no longer needed")
    await c.terminate(parent, "cancelled with its child")
    await d.wait_for_status(suspended, s.RUNNING)
    await c.suspend(suspended, "on hold")
    for seen, item in enumerate(("a", "b"), start=1):
        await c.raise_event(eternal, "Item", item)

        async def moved_on(seen: int = seen) -> bool:
            status = await c.get_status(eternal)
            assert status is not None
            assert isinstance(status.input, dict)
            assert status.input["seen"] == ["a", "b"][:seen], status.input
            assert status.runtime_status is s.RUNNING
            return True

        await d.eventually(moved_on)
    await c.raise_event(eternal, "Item", "stop")
    await d.wait_for_status(rewound, s.FAILED)
    await c.rewind(rewound, "fixed the flaky call")

    expected = {
        "chain": s.COMPLETED,
        "fan_out": s.COMPLETED,
        "failed": s.FAILED,
        "rewound": s.COMPLETED,
        "waiting": s.RUNNING,
        "terminated": s.TERMINATED,
        "suspended": s.SUSPENDED,
        "continued": s.COMPLETED,
        "approval": s.COMPLETED,
        "versioned": s.COMPLETED,
    }
    for kind, ids in w.ids.items():
        for instance_id in ids:
            await d.wait_for_status(instance_id, expected[kind])
    for instance_id in w.ids["waiting"]:

        async def echoed(instance_id: str = instance_id) -> bool:
            status = await c.get_status(instance_id)
            assert status is not None
            assert status.custom_status is not None
            return True

        await d.eventually(echoed)
    return w
